// Package indexes creates the secondary indexes segpub's audience queries
// use. Production tables arrive with only their keys; these indexes are
// added by an explicit operator command (segpub migrate indexes), never at
// start-up, and concurrently so the tables stay writable.
package indexes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/schema"
)

// Index is one index segpub may create.
type Index struct {
	Name  string
	Table string // quoted identifier
	// Columns is the index's column list, as in CREATE INDEX.
	Columns string
	// Why says which query uses it.
	Why string
}

// For returns the indexes of a project. Names stay within PostgreSQL's 63
// bytes for the longest project id (48 characters).
func For(t schema.Tables) []Index {
	p := t.Project
	return []Index{
		{
			Name: "sp_uid_" + p, Table: t.User,
			Columns: `(notifly_user_id COLLATE "C")`,
			Why:     "streams users in byte order of notifly_user_id (the order de-duplication and throttle waves follow) without sorting the table, and bounds resumed runs and partitions",
		},
		{
			Name: "sp_duid_" + p, Table: t.Device,
			Columns: `(notifly_user_id COLLATE "C", notifly_device_id COLLATE "C")`,
			Why:     "merge-joins devices to users in the same order, and serves device-condition look-ups per user",
		},
		{
			Name: "sp_drcu_" + p, Table: t.DeliveryResult,
			Columns: "(campaign_id, notifly_user_id, created_at)",
			Why:     "answers previously_received and delivery conditions with an index probe per user instead of scanning delivery results",
		},
	}
}

// Outcome is what Create did with one index.
type Outcome struct {
	Index  string `json:"index"`
	Table  string `json:"table"`
	Action string `json:"action"` // created, exists, rebuilt
}

// Create creates each missing index with CREATE INDEX CONCURRENTLY. An index
// left invalid by an interrupted concurrent build is dropped and rebuilt.
// Running it again changes nothing.
// done, when set, is called after each index.
func Create(ctx context.Context, pool *pgxpool.Pool, t schema.Tables, log *slog.Logger, done ...func()) ([]Outcome, error) {
	var out []Outcome
	step := func() {
		for _, d := range done {
			d()
		}
	}
	defer step() // the last index
	for i, ix := range For(t) {
		if i > 0 {
			step()
		}
		var valid *bool
		err := pool.QueryRow(ctx, `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relname = $1 AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())`, ix.Name).Scan(&valid)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return out, fmt.Errorf("look up index %s: %w", ix.Name, err)
		}
		action := "created"
		switch {
		case valid != nil && *valid:
			out = append(out, Outcome{Index: ix.Name, Table: schema.Unquoted(ix.Table), Action: "exists"})
			log.Info("index exists", "index", ix.Name)
			continue
		case valid != nil:
			action = "rebuilt"
			if _, err := pool.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS "`+ix.Name+`"`); err != nil {
				return out, fmt.Errorf("drop invalid index %s: %w", ix.Name, err)
			}
		}
		log.Info("creating index", "index", ix.Name, "table", schema.Unquoted(ix.Table))
		if _, err := pool.Exec(ctx, `CREATE INDEX CONCURRENTLY IF NOT EXISTS "`+ix.Name+`" ON `+ix.Table+` `+ix.Columns); err != nil {
			return out, fmt.Errorf("create index %s: %w", ix.Name, err)
		}
		if _, err := pool.Exec(ctx, `ANALYZE `+ix.Table); err != nil {
			return out, fmt.Errorf("analyze %s: %w", ix.Table, err)
		}
		out = append(out, Outcome{Index: ix.Name, Table: schema.Unquoted(ix.Table), Action: action})
	}
	return out, nil
}

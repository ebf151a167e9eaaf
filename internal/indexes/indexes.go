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
	// Why says which query uses it, as a verb phrase: explain warns
	// "missing index …: it <Why>".
	Why string
}

// For returns the indexes of a project. Names stay within PostgreSQL's 63
// bytes for the longest project id (48 characters).
//
// Only indexes that pay are here: `segpub bench indexes` measured every
// audience query with the eight indexes proposed for the Node.js
// publisher's tables and with indexes on
// notifly_user_id in byte order, and for streaming whole audiences none of
// them beat the scans, hash joins and sorts PostgreSQL plans on keys alone
// (an ordered user index even misled the planner into a slower plan). Three
// of the proposed ones pay (docs/benchmarks.md): on delivery_result, which
// grows with every campaign sent, so that one campaign's deliveries are a
// range; on devices, through which an id list probes its users' devices
// instead of hashing the whole device table; and the covering event index,
// which an event condition reads index-only, already grouped by user. The
// fourth serves frequency caps (docs/governance.md): one channel's
// deliveries in a window are a range of it, read index-only.
func For(t schema.Tables) []Index {
	p := t.Project
	return []Index{
		{
			Name: "sp_drcu_" + p, Table: t.DeliveryResult,
			Columns: "(campaign_id, notifly_user_id, created_at)",
			Why:     "reads one campaign's deliveries (previously_received, delivery conditions) with a range scan instead of scanning every delivery ever recorded",
		},
		{
			Name: "sp_dut_" + p, Table: t.Device,
			Columns: "(notifly_user_id, device_token, platform)",
			Why:     "lets user_ids audiences probe the devices of each listed user instead of hashing the whole device table",
		},
		{
			Name: "sp_evc_" + p, Table: t.EventCounts,
			Columns: "(notifly_user_id, name, dt) INCLUDE (count, sum_event_value)",
			Why:     "lets event conditions sum one event's window index-only, in user order, without reading the table",
		},
		{
			Name: "sp_drch_" + p, Table: t.DeliveryResult,
			Columns: "(channel, created_at) INCLUDE (notifly_user_id)",
			Why:     "counts one channel's deliveries in a frequency cap's window with an index-only range scan instead of scanning every delivery ever recorded (1.7x on a 7-day cap, docs/governance.md)",
		},
	}
}

// Retired returns the names of indexes earlier versions of segpub created
// and that measured as not paying (docs/benchmarks.md); Create drops them.
// An ordered index on users even led the planner to a slower plan.
func Retired(t schema.Tables) []string {
	return []string{"sp_uid_" + t.Project, "sp_duid_" + t.Project}
}

// Outcome is what Create did with one index.
type Outcome struct {
	Index  string `json:"index"`
	Table  string `json:"table"`
	Action string `json:"action"` // created, exists, rebuilt, dropped
}

// Create creates each missing index with CREATE INDEX CONCURRENTLY and
// drops retired ones. An index left invalid by an interrupted concurrent
// build is dropped and rebuilt. Running it again changes nothing.
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
	for _, name := range Retired(t) {
		var table string
		err := pool.QueryRow(ctx, `SELECT t.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
WHERE c.relname = $1 AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())`, name).Scan(&table)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("look up index %s: %w", name, err)
		}
		log.Info("dropping retired index", "index", name, "table", table)
		if _, err := pool.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS "`+name+`"`); err != nil {
			return out, fmt.Errorf("drop retired index %s: %w", name, err)
		}
		out = append(out, Outcome{Index: name, Table: table, Action: "dropped"})
	}
	return out, nil
}

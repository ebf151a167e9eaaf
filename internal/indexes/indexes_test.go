package indexes

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

func seededProject(t *testing.T, users int) (*pgxpool.Pool, schema.Tables) {
	t.Helper()
	pool := dbtest.Pool(t)
	tables, _ := schema.For(dbtest.NewProjectID())
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: tables.Project, Users: users}); err != nil {
		t.Fatal(err)
	}
	return pool, tables
}

// The indexes are the ones the engine's queries use: a bounded audience
// query (a resumed run, a partition) reads users through sp_uid_.
func TestIndexesUsed(t *testing.T) {
	t.Parallel()
	pool, tables := seededProject(t, 20000)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	out, err := Create(ctx, pool, tables, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].Action != "created" {
		t.Fatalf("outcomes %+v", out)
	}
	q, err := audience.Compile(audience.Spec{Tables: tables, Channel: job.ChannelPush, Audience: job.Audience{Type: job.AudienceAll},
		Reference: time.Now(), After: "8", Before: "81"})
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	rows, err := pool.Query(ctx, "EXPLAIN "+q.SQL, q.Args...)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "sp_uid_"+tables.Project) {
		t.Fatalf("bounded query does not use sp_uid_:\n%s", strings.Join(plan, "\n"))
	}
	again, err := Create(ctx, pool, tables, log)
	if err != nil || again[0].Action != "exists" {
		t.Fatalf("second run: %+v %v", again, err)
	}
}

// An index left invalid by an interrupted concurrent build is rebuilt.
func TestInvalidIndexRebuilt(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	pool := dbtest.Pool(t)
	ctx := context.Background()
	name := For(tables)[0].Name
	dbtest.Exec(t, `CREATE INDEX "`+name+`" ON `+tables.User+` (notifly_user_id)`)
	dbtest.Exec(t, `UPDATE pg_index SET indisvalid = false WHERE indexrelid = '"`+name+`"'::regclass`)
	out, err := Create(ctx, pool, tables, slog.New(slog.DiscardHandler))
	if err != nil || out[0].Action != "rebuilt" {
		t.Fatalf("%+v %v", out, err)
	}
	var valid bool
	if err := pool.QueryRow(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = '"`+name+`"'::regclass`).Scan(&valid); err != nil || !valid {
		t.Fatalf("valid=%v err=%v", valid, err)
	}
}

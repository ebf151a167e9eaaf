package state

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/dbtest"
)

// latest is the newest migration of this build.
func latest(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	_, v, err := Version(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Every status the code knows is one the table accepts, and the table
// accepts no other: a status added to Status without a migration (or the
// reverse) fails here, not in production.
func TestStatusesMatchSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.IsolatedPool(t)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var def string
	if err := pool.QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conname = 'segpub_runs_status_check' AND conrelid = 'segpub_runs'::regclass`).Scan(&def); err != nil {
		t.Fatalf("segpub_runs has no status check: %v", err)
	}
	var inCheck []string
	for _, m := range regexp.MustCompile(`'([a-z_]+)'::text`).FindAllStringSubmatch(def, -1) {
		inCheck = append(inCheck, m[1])
	}
	var known []string
	for _, s := range Statuses() {
		known = append(known, string(s))
	}
	slices.Sort(inCheck)
	slices.Sort(known)
	if !slices.Equal(inCheck, known) {
		t.Fatalf("the table's status check allows %v, the code has %v (add a migration)", inCheck, known)
	}
	// And the table enforces it.
	errRollback := errors.New("rolled back")
	insert := func(status string) error {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO segpub_runs (request_id, project_id, campaign_id, action, status, reference_time)
VALUES ('r-status', 'p', 'c', 'publish', $1, now())`, status)
			if err != nil {
				return err
			}
			return errRollback
		})
		if errors.Is(err, errRollback) {
			return nil
		}
		return err
	}
	for _, s := range known {
		if err := insert(s); err != nil {
			t.Fatalf("status %s refused: %v", s, err)
		}
	}
	if err := insert("stopped"); err == nil {
		t.Fatal("an unknown status was stored")
	}
}

// A database segpub created before its migrations were numbered (today's
// tables, or older ones without the columns added since) migrates with its
// rows as they were, and reads as any other.
func TestMigrateFromPreMigrationSchema(t *testing.T) {
	t.Parallel()
	pre, err := os.ReadFile("testdata/pre-migration.sql")
	if err != nil {
		t.Fatal(err)
	}
	for name, older := range map[string]string{
		"last definition": "",
		// The first definitions, before partitioned runs, operators'
		// controls, job fingerprints and dead letters' bytes.
		"first definitions": `ALTER TABLE segpub_runs DROP COLUMN parent, DROP COLUMN job, DROP COLUMN plan, DROP COLUMN control, DROP COLUMN job_fingerprint;
ALTER TABLE segpub_dead_letters DROP COLUMN raw, ALTER COLUMN body SET NOT NULL`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := dbtest.IsolatedPool(t)
			exec := func(sql string, args ...any) {
				t.Helper()
				if _, err := pool.Exec(ctx, sql, args...); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			exec(string(pre))
			if older != "" {
				exec(older)
			}
			exec(`INSERT INTO segpub_schema (name, digest) VALUES ('ledger table', 'd1'), ('scheduler tables', 'd2'), ('console tables', 'd3')`)
			exec(`INSERT INTO segpub_runs (request_id, project_id, campaign_id, action, status, attempts, reference_time, candidates, published, result, finished_at)
VALUES ('r-done', 'p', 'c', 'publish', 'completed', 1, '2026-11-24T09:00:00Z', 10, 7, '{"published":7}', now()),
       ('r-retry', 'p', 'c', 'publish', 'retrying', 2, '2026-11-24T09:00:00Z', 4, 3, NULL, NULL)`)
			exec(`INSERT INTO segpub_campaigns (id, project_id, campaign, schedule) VALUES ('cmp', 'p', '{"id":"cmp"}', '{}')`)
			exec(`INSERT INTO segpub_dead_letters (request_id, kind, reason, attempts, failed_at, body) VALUES ('r-dl', 'rejected', 'bad', 1, now(), '{}')`)
			exec(`INSERT INTO segpub_messages (id, body) VALUES ('m1', '{"job":1}')`)

			if err := Migrate(ctx, pool); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			current, want, err := Version(ctx, pool)
			if err != nil || current != want || want == 0 {
				t.Fatalf("version %d of %d after migrating: %v", current, want, err)
			}
			runs := &Runs{pool: pool}
			done, err := runs.Get(ctx, "r-done")
			if err != nil || done.Status != Completed || done.Published != 7 || string(done.Result) != `{"published": 7}` {
				t.Fatalf("completed run after migrating: %+v %v", done, err)
			}
			// The run that was between attempts is claimed and goes on.
			c, err := runs.Claim(ctx, Start{RequestID: "r-retry", ProjectID: "p", CampaignID: "c", Action: "publish", Reference: time.Now()}, "w1", time.Minute)
			if err != nil || !c.Granted || c.Run.Attempts != 3 || c.Run.Published != 3 {
				t.Fatalf("claim after migrating: %+v %v", c, err)
			}
			// Columns added since the table was created are there.
			if _, err := runs.Pause(ctx, "r-retry"); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM segpub_campaigns) + (SELECT count(*) FROM segpub_dead_letters) + (SELECT count(*) FROM segpub_messages)`).Scan(&n); err != nil || n != 3 {
				t.Fatalf("%d rows of campaigns, dead letters and messages kept: %v", n, err)
			}
			var body json.RawMessage
			if err := pool.QueryRow(ctx, `SELECT body FROM segpub_dead_letters`).Scan(&body); err != nil {
				t.Fatal(err)
			}
			// A body jsonb cannot hold is kept as its bytes (migration 9).
			recs := RecordsOn(pool)
			if err := recs.AddDeadLetter(ctx, DeadLetter{RequestID: "r-nul", Kind: "rejected", Reason: "bad", Attempts: 1, FailedAt: time.Now()},
				[]byte(`{"job":"\u0000"}`)); err != nil {
				t.Fatal(err)
			}
			list, err := recs.DeadLetters(ctx, 10)
			if err != nil || len(list) != 2 {
				t.Fatalf("dead letters after migrating: %+v %v", list, err)
			}
			if _, b, raw, err := recs.DeadLetter(ctx, list[0].ID); err != nil || b != nil || string(raw) != `{"job":"\u0000"}` {
				t.Fatalf("dead letter kept as bytes: %q %q %v", b, raw, err)
			}
		})
	}
}

// A database that has every migration runs none again: here the table's
// status check would wait for a transaction holding segpub_runs (and
// stall every query queued behind it) if it were applied again.
func TestMigrateAppliedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.IsolatedPool(t)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE segpub_runs IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := Migrate(short, pool); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	var applied int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+VersionTable+` WHERE version_id > 0`).Scan(&applied); err != nil || applied != latest(t, pool) {
		t.Fatalf("%d migrations recorded, want %d: %v", applied, latest(t, pool), err)
	}
}

// Many processes migrating a fresh database at once all succeed, and each
// migration is applied once.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.IsolatedPool(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() { errs <- Migrate(ctx, pool) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var applied, distinct int64
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version_id) FROM `+VersionTable+` WHERE version_id > 0`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != latest(t, pool) || distinct != applied {
		t.Fatalf("%d migrations recorded (%d distinct), want %d once each", applied, distinct, latest(t, pool))
	}
}

package cleaner

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/scheduler"
)

// A pass deletes finished runs past their retention (never a run that may
// still run, nor a finished sub-run whose parent still runs), occurrences
// past theirs, and the destinations of partitioned runs that have ended.
func TestClean(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t)
	if _, err := ledger.New(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := scheduler.NewStore(ctx, pool); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("clean-%d-", time.Now().UnixNano())
	run := func(id, status, parent string, finishedAgo time.Duration) {
		t.Helper()
		var finished any
		if finishedAgo > 0 {
			finished = time.Now().Add(-finishedAgo)
		}
		var par any
		if parent != "" {
			par = tag + parent
		}
		if _, err := pool.Exec(ctx, `INSERT INTO segpub_runs (request_id, project_id, campaign_id, action, status, reference_time, finished_at, parent, created_at)
VALUES ($1, 'p', 'c', 'publish', $2, now(), $3, $4, now() - interval '60 days')`, tag+id, status, finished, par); err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	run("old-done", "completed", "", 40*day)
	run("old-failed", "failed", "", 31*day)
	run("recent-done", "completed", "", 29*day)
	run("old-running", "running", "", 0)
	run("old-retrying", "retrying", "", 0)
	run("parent-running", "running", "", 0)
	run("old-sub", "completed", "parent-running", 40*day)
	run("part-2h", "completed", "", 2*time.Hour)
	run("part-10m", "completed", "", 10*time.Minute)
	for _, id := range []string{"part-2h", "part-10m", "parent-running"} {
		if _, err := pool.Exec(ctx, `INSERT INTO segpub_partition_destinations (request_id, part, fp) SELECT $1, 0, g FROM generate_series(1, 12000) g`, tag+id); err != nil {
			t.Fatal(err)
		}
	}
	for i, ago := range []time.Duration{40 * day, 29 * day} {
		if _, err := pool.Exec(ctx, `INSERT INTO segpub_occurrences (campaign_id, occurrence, request_id, status) VALUES ($1, $2, $3, 'sent')`,
			tag+"cmp", time.Now().Add(-ago), fmt.Sprintf("%socc-%d", tag, i)); err != nil {
			t.Fatal(err)
		}
	}

	c, err := New(Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Clean(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Skipped {
		t.Fatal("pass skipped: lock held")
	}
	var runs []string
	rows, _ := pool.Query(ctx, `SELECT substr(request_id, length($1) + 1) FROM segpub_runs WHERE request_id LIKE $1 || '%' ORDER BY 1`, tag)
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		runs = append(runs, id)
	}
	if want := "[old-retrying old-running old-sub parent-running part-10m part-2h recent-done]"; fmt.Sprint(runs) != want {
		t.Fatalf("runs left %v, want %s", runs, want)
	}
	var dest map[string]int64 = map[string]int64{}
	rows, _ = pool.Query(ctx, `SELECT substr(request_id, length($1) + 1), count(*) FROM segpub_partition_destinations WHERE request_id LIKE $1 || '%' GROUP BY 1`, tag)
	for rows.Next() {
		var id string
		var n int64
		_ = rows.Scan(&id, &n)
		dest[id] = n
	}
	if len(dest) != 2 || dest["part-10m"] != 12000 || dest["parent-running"] != 12000 {
		t.Fatalf("destinations left %v", dest)
	}
	var occ int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM segpub_occurrences WHERE campaign_id = $1`, tag+"cmp").Scan(&occ); err != nil || occ != 1 {
		t.Fatalf("%d occurrences left (%v), want 1", occ, err)
	}
	if d.Runs < 2 || d.Destinations < 12000 || d.Occurrences < 1 {
		t.Fatalf("reported %+v", d)
	}

	// Another process holding the lock: the pass is skipped.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		t.Fatal(err)
	}
	d, err = c.Clean(ctx)
	_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, lockKey)
	if err != nil || !d.Skipped {
		t.Fatalf("with the lock held elsewhere: %+v, %v", d, err)
	}
}

// Retentions shorter than what the guarantees need are refused, naming
// the field.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	for _, cfg := range []Config{
		{Pool: pool, RunRetention: time.Hour},
		{Pool: pool, OccurrenceRetention: 24 * time.Hour},
		{Pool: pool, DestinationRetention: -time.Second},
		{Pool: pool, Interval: -time.Second},
		{},
	} {
		if _, err := New(cfg); err == nil {
			t.Fatalf("%+v accepted", cfg)
		}
	}
	c, err := New(Config{Pool: pool})
	if err != nil || c.cfg.RunRetention != DefaultRunRetention || c.cfg.Interval != DefaultInterval {
		t.Fatalf("defaults: %+v, %v", c.cfg, err)
	}
}

// Start cleans at once and Stop waits for the pass.
func TestStartStop(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Pool: dbtest.Pool(t), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err == nil {
		t.Fatal("second Start accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

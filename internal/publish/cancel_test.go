package publish

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/pgtimeout"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// blockedSink holds the first batch until the run stops, so the audience
// query is still streaming, blocked on its client, when it does.
type blockedSink struct {
	Plain
	got chan struct{}
}

func (s *blockedSink) Publish(ctx context.Context, _ *Batch) error {
	select {
	case s.got <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

// A stopped run (its context cancelled) leaves no statement of its own
// running on the server.
func TestCancelledRunLeavesNoStatement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	shared := dbtest.Pool(t)
	project := dbtest.NewProjectID()
	t.Cleanup(func() {
		tables, _ := schema.For(project)
		for _, s := range tables.DropStatements() {
			_, _ = shared.Exec(context.Background(), s)
		}
	})
	// Enough rows that the query cannot hand them all to the socket.
	if _, err := seed.Run(ctx, shared, seed.Config{ProjectID: project, Users: 60_000}); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(dbtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	name := "cancelled-run-" + project
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	if err := (pgtimeout.Session{StatementTimeout: pgtimeout.DefaultStatementTimeout}).Apply(&cfg.ConnConfig.Config); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	runner, err := New(Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	j, err := job.Parse([]byte(`{"version":1,"action":"publish","request_id":"r-cancel","project_id":"` + project + `",
"campaign":{"id":"c","channel":"push_notification","audience":{"type":"all"},"message":{"title":"t","body":"b"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	active := func() int {
		var n int
		if err := shared.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	sink := &blockedSink{got: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		_, err := runner.Run(runCtx, j, sink)
		done <- err
	}()
	select {
	case <-sink.got:
	case err := <-done:
		t.Fatalf("the run ended before its first batch: %v", err)
	}
	// The audience query, and its parallel workers, if any.
	if active() == 0 {
		t.Fatal("no active statement while the run streams: nothing to stop")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Logf("run ended with %v", err)
	}
	end := time.Now().Add(10 * time.Second)
	n := active()
	for n != 0 && time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
		n = active()
	}
	if n != 0 {
		t.Fatalf("%d statements of the stopped run still active on the server", n)
	}
}

package worker

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/reliability"
)

// keySink counts every publish of every idempotency key before the
// channel stream de-duplicates: it sees what segpub sent, not what the
// stream kept.
type keySink struct {
	publish.Sink
	mu   sync.Mutex
	sent map[string]int
}

func (s *keySink) Publish(ctx context.Context, b *publish.Batch) error {
	if err := s.Sink.Publish(ctx, b); err != nil {
		return err
	}
	s.mu.Lock()
	for _, m := range b.Messages {
		s.sent[string(m.Key)]++
	}
	s.mu.Unlock()
	return nil
}

// Many small jobs, each delivered twice (half of the copies at once, while
// the first may still run, half after it completed), then a sample
// replayed as if days later: every expected message is sent exactly once.
// The guard is the request_id ledger in PostgreSQL: the test counts sends
// before the channel stream's own de-duplication, so a queue's window
// cannot hide a duplicate. The expected messages come from running each
// job directly through the engine, outside the queue, ledger and worker.
// SEGPUB_RELIABILITY_JOBS sets the number of jobs (default 300).
func TestRedeliveryAndReplay(t *testing.T) {
	t.Parallel()
	jobs := 300
	if n, err := strconv.Atoi(os.Getenv("SEGPUB_RELIABILITY_JOBS")); err == nil && n > 0 {
		jobs = n
	}
	const users = 2000
	b := setup(t, users)
	sink := &keySink{Sink: b.sink, sent: map[string]int{}}
	b.worker(Config{Owner: "w0", Concurrency: 4, Sink: sink})
	b.worker(Config{Owner: "w1", Concurrency: 4, Sink: sink})
	ctx := context.Background()
	text := func(i int) []byte {
		return fmt.Appendf(nil, `{"version":1,"action":"publish","request_id":%q,"project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"cmp","channel":"push_notification","audience":{"type":"user_ids","user_ids":["ext-%d","ext-%d"]},"message":{"title":"hi"}}}`,
			b.id("r-many-"+strconv.Itoa(i)), b.tables.Project, i%users, (i*7+1)%users)
	}
	// Expected: each job run once, directly.
	expected := map[string]bool{}
	for i := range jobs {
		j, err := job.Parse(text(i))
		if err != nil {
			t.Fatal(err)
		}
		ks := &keySink{Sink: discard{}, sent: map[string]int{}}
		if _, err := b.runner.Run(ctx, j, ks); err != nil {
			t.Fatal(err)
		}
		for k := range ks.sent {
			expected[k] = true
		}
	}
	start := time.Now()
	for i := range jobs {
		if err := b.jobs.Send(ctx, text(i), ""); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // a copy right behind it
			if err := b.jobs.Send(ctx, text(i), ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitAll := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var done int
			if err := dbtest.Pool(t).QueryRow(ctx, `SELECT count(*) FROM segpub_runs WHERE request_id LIKE $1 AND status = 'completed'`,
				"r-many-%-"+b.tables.Project).Scan(&done); err != nil {
				t.Fatal(err)
			}
			if done == jobs {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d jobs completed", done, jobs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitAll()
	// The other half's copies, after completion.
	for i := 1; i < jobs; i += 2 {
		if err := b.jobs.Send(ctx, text(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	// Days later: the runs finished three days ago, and a tenth of the
	// jobs come again.
	dbtest.Exec(t, `UPDATE segpub_runs SET finished_at = finished_at - interval '3 days', created_at = created_at - interval '3 days'
WHERE request_id LIKE $1`, "r-many-%-"+b.tables.Project)
	for i := 0; i < jobs; i += 10 {
		if err := b.jobs.Send(ctx, text(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	// Every copy has been handled once the job stream (a work queue: an
	// acknowledged message leaves it) is empty.
	jobStream := "J" + strings.TrimPrefix(b.stream, "CH")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info, err := b.conn.JS.Stream(ctx, jobStream)
		if err != nil {
			t.Fatal(err)
		}
		if info.CachedInfo().State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("copies still pending")
		}
		time.Sleep(100 * time.Millisecond)
	}
	wall := time.Since(start)
	sink.mu.Lock()
	keys := make([][]byte, 0, len(expected))
	for k := range expected {
		keys = append(keys, []byte(k))
	}
	counts := reliability.ClassifyCounts(keys, sink.sent)
	sink.mu.Unlock()
	if len(expected) == 0 {
		t.Fatal("no message expected: the test tests nothing")
	}
	copies := jobs + (jobs+1)/2 + jobs/2 + (jobs+9)/10
	reliability.Check(t, counts, wall, reliability.Field{Name: "jobs", Value: strconv.Itoa(jobs)},
		reliability.Field{Name: "deliveries", Value: strconv.Itoa(copies)})
	var runs int
	if err := dbtest.Pool(t).QueryRow(ctx, `SELECT count(*) FROM segpub_runs WHERE request_id LIKE $1`, "r-many-%-"+b.tables.Project).Scan(&runs); err != nil || runs != jobs {
		t.Fatalf("%d runs in the ledger for %d jobs (%v)", runs, jobs, err)
	}
}

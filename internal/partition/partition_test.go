package partition

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// sent is a job queue that only keeps what is sent to it.
type sent struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (q *sent) Receive(ctx context.Context) (queue.Delivery, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (q *sent) MaxMessageBytes() int { return 1 << 20 }
func (q *sent) Close() error         { return nil }
func (q *sent) Send(_ context.Context, body []byte, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bodies = append(q.bodies, body)
	return nil
}

func (q *sent) take() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.bodies
	q.bodies = nil
	return out
}

type capture struct {
	publish.Plain
	mu   sync.Mutex
	msgs []string
}

func (c *capture) Publish(_ context.Context, b *publish.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range b.Messages {
		c.msgs = append(c.msgs, string(m.Body))
	}
	return nil
}

// A job split by Split, its scan and publish tasks run as a worker runs
// them (Open, Range, the engine, Record, the range's run completed in the
// ledger, Advance), publishes exactly the messages of one run of the whole
// job, and the run completes with the same counts. Messages that are not
// sub-jobs, and sub-jobs of unknown runs, are told apart.
func TestPhases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tables, led, engine, c, q := world(t)
	raw := []byte(`{"version":1,"action":"publish","request_id":"r-phases-` + tables.Project + `","project_id":"` + tables.Project + `",
"scheduled_at":"2026-11-24T18:00:00+09:00","campaign":{"id":"cmp","channel":"push_notification","audience":{"type":"all"},
"message":{"title":"hi"},"throttle":{"max_per_interval":300,"interval_minutes":10}}}`)
	j, err := job.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	whole := &capture{}
	want, err := engine.Run(ctx, j, whole)
	if err != nil {
		t.Fatal(err)
	}

	if task, err := c.Open(ctx, raw); task != nil || err != nil {
		t.Fatalf("a job message opened as a sub-job: %+v %v", task, err)
	}
	stale, _ := json.Marshal(message{Part: &ref{Parent: "r-no-such-run", Phase: Scan}})
	if _, err := c.Open(ctx, stale); !errors.Is(err, ErrStale) {
		t.Fatalf("sub-job of an unknown run: %v", err)
	}

	claim, err := led.Claim(ctx, ledger.Start{RequestID: j.RequestID, ProjectID: j.ProjectID, CampaignID: j.Campaign.ID,
		Action: string(j.Action), Reference: j.ScheduledAt}, "w", time.Minute)
	if err != nil || !claim.Granted {
		t.Fatalf("claim: %+v %v", claim, err)
	}
	parts, err := c.Split(ctx, j, raw, "w")
	if err != nil || parts < 2 {
		t.Fatalf("split in %d ranges: %v", parts, err)
	}
	// A publish sub-job seen while the run still scans (the scans' last
	// advance sent it, then failed to commit) waits for the phase.
	early, _ := json.Marshal(message{Part: &ref{Parent: j.RequestID, Phase: Publish}})
	if _, err := c.Open(ctx, early); !errors.Is(err, ErrEarly) {
		t.Fatalf("publish sub-job of a scanning run: %v", err)
	}
	got := &capture{}
	var done *publish.Result
	for _, phase := range []Phase{Scan, Publish} {
		bodies := q.take()
		if len(bodies) != parts {
			t.Fatalf("%s: %d sub-jobs sent for %d ranges", phase, len(bodies), parts)
		}
		for i, body := range bodies {
			task, err := c.Open(ctx, body)
			if err != nil || task == nil || task.Phase != phase || task.Part != i || task.Job.RequestID != j.RequestID {
				t.Fatalf("%s %d: opened %+v %v", phase, i, task, err)
			}
			if cl, err := led.Claim(ctx, task.Start(), "w", time.Minute); err != nil || !cl.Granted {
				t.Fatalf("%s %d: claim %+v %v", phase, i, cl, err)
			}
			rng, err := task.Range(ctx)
			if err != nil {
				t.Fatal(err)
			}
			res, err := engine.RunWith(ctx, task.Job, rng, got, publish.Checkpoint{}, publish.Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(res)
			step, err := task.Complete(ctx, res, func(ctx context.Context) error {
				return led.Finish(ctx, task.RunID, "w", ledger.Outcome{Status: ledger.Completed, Candidates: res.Candidates,
					Published: res.Published, Result: body})
			})
			if err != nil {
				t.Fatal(err)
			}
			last := i == parts-1
			if step.Publishing != (last && phase == Scan) || (step.Completed != nil) != (last && phase == Publish) {
				t.Fatalf("%s %d of %d: step %+v", phase, i, parts, step)
			}
			done = step.Completed
		}
	}
	sort.Strings(got.msgs)
	sort.Strings(whole.msgs)
	if strings.Join(got.msgs, "\n") != strings.Join(whole.msgs, "\n") {
		t.Fatalf("the ranges published %d messages, one run %d, or they differ", len(got.msgs), len(whole.msgs))
	}
	if done.Candidates != want.Candidates || done.Published != want.Published || done.Skipped != want.Skipped {
		t.Fatalf("partitioned result %+v, one run %+v", done, want)
	}
	if r, err := led.Get(ctx, j.RequestID); err != nil || r.Status != ledger.Completed || r.Published != want.Published {
		t.Fatalf("run %+v %v", r, err)
	}
	// A late copy of a sub-job of the completed run.
	late, _ := json.Marshal(message{Part: &ref{Parent: j.RequestID, Phase: Publish}})
	if _, err := c.Open(ctx, late); !errors.Is(err, ErrFinished) {
		t.Fatalf("sub-job of a completed run: %v", err)
	}
}

// world is a seeded project of 2,000 users, its ledger and engine, and a
// Coordinator splitting over 500 users, whose sub-jobs go to q.
func world(t *testing.T) (schema.Tables, *ledger.Ledger, *publish.Runner, *Coordinator, *sent) {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	tables, _ := schema.For(dbtest.NewProjectID())
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(ctx, pool, seed.Config{ProjectID: tables.Project, Users: 2000}); err != nil {
		t.Fatal(err)
	}
	led, err := ledger.New(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := publish.New(publish.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	q := &sent{}
	c, err := New(Config{Audience: pool, State: pool, Queue: q, Engine: engine, Rows: 500})
	if err != nil {
		t.Fatal(err)
	}
	return tables, led, engine, c, q
}

// A job the whole run would reject is not split: its ranges would not
// count the audience against the throttle, so the plan fails with the
// rejection, nothing is recorded or sent, and the job runs whole (and is
// rejected there).
func TestSplitChecksTheWholeRun(t *testing.T) {
	t.Parallel()
	tables, _, _, c, q := world(t)
	// Ten yearly waves fit from 9990: the audience does not.
	j, err := job.Parse([]byte(`{"version":1,"action":"publish","request_id":"r-over-` + tables.Project + `","project_id":"` + tables.Project + `",
"scheduled_at":"9990-01-01T00:00:00Z","campaign":{"id":"cmp","channel":"push_notification","audience":{"type":"all"},
"message":{"title":"hi"},"throttle":{"max_per_interval":1,"interval_minutes":527040}}}`))
	if err != nil {
		t.Fatal(err)
	}
	parts, err := c.Split(context.Background(), j, nil, "w")
	if parts != 0 || !errors.Is(err, ErrUnplanned) || !job.IsRejection(err) || !strings.Contains(err.Error(), "campaign.throttle: ") {
		t.Fatalf("split in %d: %v", parts, err)
	}
	if n := len(q.take()); n != 0 {
		t.Fatalf("%d sub-jobs sent", n)
	}
}

// Waves per base time (local_time with a throttle) cannot be carried from
// range to range by one message offset: such a job runs whole.
func TestLocalTimeWavesRunWhole(t *testing.T) {
	t.Parallel()
	tables, _, _, c, _ := world(t)
	for _, tc := range []struct {
		fields string
		split  bool
	}{
		{`"throttle":{"max_per_interval":300,"interval_minutes":10}`, true},
		{`"delivery":{"local_time":{"time":"09:00","time_zone":"tz"},"most_recent_device_only":true}`, true},
		{`"throttle":{"max_per_interval":300,"interval_minutes":10},"delivery":{"local_time":{"time":"09:00","time_zone":"tz"}}`, false},
	} {
		j, err := job.Parse([]byte(`{"version":1,"action":"publish","request_id":"r-lt","project_id":"` + tables.Project + `",
"scheduled_at":"2026-11-24T18:00:00+09:00","campaign":{"id":"cmp","channel":"push_notification","audience":{"type":"all"},
"message":{"title":"hi"},` + tc.fields + `}}`))
		if err != nil {
			t.Fatal(err)
		}
		bounds, _, err := c.Bounds(context.Background(), j, 500)
		if err != nil || (len(bounds) > 0) != tc.split {
			t.Fatalf("%s: bounds %q, %v; want split %v", tc.fields, bounds, err, tc.split)
		}
	}
}

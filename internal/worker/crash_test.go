package worker

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
)

// crashRunner ends its worker slot in the middle of a run, as an OOM or a
// kill ends a process: nothing after it runs, nothing is recorded, the
// message is neither acknowledged nor handed back.
type crashRunner struct{ calls atomic.Int64 }

func (c *crashRunner) RunWith(context.Context, *job.Job, *publish.Range, publish.Sink, publish.Checkpoint, publish.Hooks) (*publish.Result, error) {
	c.calls.Add(1)
	runtime.Goexit()
	return nil, nil
}

// A job that crashes its worker every time is dead-lettered once it has
// been claimed more than SEGPUB_MAX_ATTEMPTS times, instead of crashing
// workers forever.
func TestCrashLoopDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t, 20)
	cr := &crashRunner{}
	// Each crash takes a slot with it, as it would take a process.
	b.worker(Config{Runner: cr, MaxAttempts: 2, Concurrency: 4})
	ctx := context.Background()
	if err := b.jobs.Send(ctx, b.jobText("r-crash"), ""); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	d, err := b.dead.Receive(rctx)
	if err != nil {
		t.Fatalf("no dead letter after %d crashes: %v", cr.calls.Load(), err)
	}
	var dl DeadLetter
	_ = json.Unmarshal(d.Body(), &dl)
	if dl.Kind != "exhausted" || dl.Attempts != 3 || !strings.Contains(dl.Reason, "crashed or was killed") || cr.calls.Load() != 2 {
		t.Fatalf("dead letter %+v after %d crashes", dl, cr.calls.Load())
	}
	if r := b.waitStatus("r-crash", ledger.Failed); r.Attempts != 3 || !strings.Contains(r.Error, "claimed 3 times, at most 2 attempts") {
		t.Fatalf("ledger %+v", r)
	}
}

// blockRunner runs until its context ends, and says when it started.
type blockRunner struct{ started chan struct{} }

func (r *blockRunner) RunWith(ctx context.Context, j *job.Job, _ *publish.Range, _ publish.Sink, _ publish.Checkpoint, _ publish.Hooks) (*publish.Result, error) {
	r.started <- struct{}{}
	<-ctx.Done()
	return &publish.Result{RequestID: j.RequestID}, ctx.Err()
}

// A run handed back by a graceful stop does not use up an attempt: a job
// interrupted by more deploys than it has attempts still runs to the end.
func TestGracefulStopsKeepAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t, 20)
	ctx := context.Background()
	if err := b.jobs.Send(ctx, b.jobText("r-deploys"), ""); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		br := &blockRunner{started: make(chan struct{}, 1)}
		w := b.worker(Config{Runner: br, MaxAttempts: 2, Owner: "w" + string(rune('a'+i))})
		select {
		case <-br.started:
		case <-time.After(30 * time.Second):
			t.Fatalf("stop %d: the job never started", i)
		}
		stopCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		if err := w.Stop(stopCtx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stop %d: %v", i, err)
		}
		cancel()
		if r, err := b.ledger.Get(ctx, b.id("r-deploys")); err != nil || r.Status != ledger.HandedBack || r.Attempts != 0 {
			t.Fatalf("after stop %d: %+v %v", i, r, err)
		}
	}
	b.worker(Config{MaxAttempts: 2, Owner: "wz"})
	if r := b.waitStatus("r-deploys", ledger.Completed); r.Attempts != 1 {
		t.Fatalf("ledger %+v", r)
	}
}

// stuckRunner's first run ignores cancellation until release is closed;
// later runs are the real engine's.
type stuckRunner struct {
	Runner
	started chan struct{}
	release chan struct{}
	calls   atomic.Int64
}

func (r *stuckRunner) RunWith(ctx context.Context, j *job.Job, rng *publish.Range, sink publish.Sink, cp publish.Checkpoint, hooks publish.Hooks) (*publish.Result, error) {
	if r.calls.Add(1) == 1 {
		close(r.started)
		<-r.release
		return &publish.Result{RequestID: j.RequestID}, ctx.Err()
	}
	return r.Runner.RunWith(ctx, j, rng, sink, cp, hooks)
}

// Stop returns even when a job ignores its cancellation: the job is
// abandoned (so the process can exit within its grace), and its attempt
// counts, as after a crash; another worker then runs it.
func TestStopAbandonsStuckJob(t *testing.T) {
	t.Parallel()
	b := setup(t, 20)
	sr := &stuckRunner{Runner: b.runner, started: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(sr.release) })
	w, err := New(Config{Queue: b.jobs, DeadLetter: b.dead, Ledger: b.ledger, Runner: sr, Sink: b.sink, Lease: 3 * time.Second,
		Owner: "w1", HandBackWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.jobs.Send(ctx, b.jobText("r-stuck"), ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sr.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the job never started")
	}
	stopped := make(chan error, 1)
	go func() {
		stopCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		stopped <- w.Stop(stopCtx)
	}()
	select {
	case err := <-stopped:
		if !errors.Is(err, ErrAbandoned) {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Stop did not return while a job ignored its cancellation")
	}
	b.worker(Config{Owner: "w2", Runner: sr})
	if r := b.waitStatus("r-stuck", ledger.Completed); r.Attempts != 2 {
		t.Fatalf("ledger %+v", r)
	}
}

// Errors that come from a job's content are rejections: dead-lettered on
// the first attempt, never retried. Each of these was retried as an outage.
func TestContentErrorsRejected(t *testing.T) {
	t.Parallel()
	b := setup(t, 50)
	b.worker(Config{MaxAttempts: 3})
	ctx := context.Background()
	jobs := map[string]string{
		"r-nul":      strings.Replace(string(b.jobText("r-nul")), `"title":"hi"`, `"title":"h\u0000i"`, 1),
		"r-project":  strings.Replace(string(b.jobText("r-project")), `"project_id":"`+b.tables.Project+`"`, `"project_id":"nosuch_`+b.tables.Project+`"`, 1),
		"r-year0":    strings.Replace(string(b.jobText("r-year0")), `2026-11-24T18:00:00+09:00`, `0000-01-01T00:00:00Z`, 1),
		"r-offset":   strings.Replace(string(b.jobText("r-offset")), `+09:00`, `+24:00`, 1),
		"r-throttle": strings.Replace(strings.Replace(string(b.jobText("r-throttle")), `2026-11-24T18:00:00+09:00`, `9999-12-01T00:00:00Z`, 1), `"message":{"title":"hi"}`, `"message":{"title":"hi"},"throttle":{"max_per_interval":1,"interval_minutes":527040}`, 1),
	}
	want := map[string]string{
		"r-nul":      "campaign.message.title: contains a NUL character",
		"r-project":  `project_id: no project "nosuch_` + b.tables.Project + `" in the database`,
		"r-year0":    `scheduled_at: "0000-01-01T00:00:00Z" is out of range`,
		"r-offset":   "scheduled_at: not an RFC 3339 time",
		"r-throttle": "campaign.throttle: ",
	}
	for _, text := range jobs {
		if err := b.jobs.Send(ctx, []byte(text), ""); err != nil {
			t.Fatal(err)
		}
	}
	for range jobs {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		d, err := b.dead.Receive(rctx)
		cancel()
		if err != nil {
			t.Fatalf("dead letter: %v", err)
		}
		var dl DeadLetter
		if err := json.Unmarshal(d.Body(), &dl); err != nil {
			t.Fatal(err)
		}
		_ = d.Ack(ctx)
		// Jobs rejected while parsing have no request_id: the reason
		// tells them apart.
		id := ""
		for k, w := range want {
			if strings.HasPrefix(dl.Reason, w) {
				id = k
			}
		}
		if dl.Kind != "rejected" || dl.Attempts != 1 || id == "" {
			t.Errorf("dead letter %s (%s, attempt %d): not one of the expected rejections", dl.Reason, dl.Kind, dl.Attempts)
		}
		delete(want, id)
	}
	if len(want) > 0 {
		t.Fatalf("not dead-lettered: %v", want)
	}
}

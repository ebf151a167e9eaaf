package worker

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/metrics"
	"github.com/segpub/segpub/internal/publish"
)

// waitFor polls the ledger until ok holds for the run, and returns it.
func (b *bundle) waitFor(requestID, what string, ok func(*ledger.Run) bool) *ledger.Run {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var r *ledger.Run
	var err error
	for time.Now().Before(deadline) {
		if r, err = b.ledger.Get(context.Background(), b.id(requestID)); err == nil && ok(r) {
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.t.Fatalf("run %s never showed %s: %+v %v", requestID, what, r, err)
	return nil
}

// finalCounts checks that a completed run's counts are its result's.
func finalCounts(t *testing.T, r *ledger.Run) {
	t.Helper()
	var res publish.Result
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatal(err)
	}
	if r.Candidates != res.Candidates || r.Published != res.Published || res.Published == 0 {
		t.Fatalf("completed run shows %d candidates, %d published; its result %d, %d", r.Candidates, r.Published, res.Candidates, res.Published)
	}
}

// gateSink publishes its first pass batches, then holds every other until
// the gate opens: the run stays running, part published, as long as a test
// needs.
type gateSink struct {
	publish.Sink
	pass  int64
	calls atomic.Int64
	gate  chan struct{}
}

func newGate(t *testing.T, s publish.Sink, pass int64) *gateSink {
	g := &gateSink{Sink: s, pass: pass, gate: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gateSink) open() {
	select {
	case <-g.gate:
	default:
		close(g.gate)
	}
}

func (g *gateSink) Publish(ctx context.Context, b *publish.Batch) error {
	if g.calls.Add(1) > g.pass {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return g.Sink.Publish(ctx, b)
}

// `segpub status` of a running run shows its live counts: the engine's
// progress reaches the ledger through the worker's heartbeat.
func TestStatusShowsLiveProgress(t *testing.T) {
	t.Parallel()
	b := setup(t, 3000)
	gate := newGate(t, b.sink, 1)
	b.worker(Config{Owner: "w1", Sink: gate})
	if err := b.jobs.Send(context.Background(), b.jobText("r-live"), ""); err != nil {
		t.Fatal(err)
	}
	running := b.waitFor("r-live", "live candidates and published while running", func(r *ledger.Run) bool {
		return r.Status == ledger.Running && r.Candidates > 0 && r.Published > 0
	})
	if running.Published > running.Candidates {
		t.Fatalf("running run shows %d published of %d candidates", running.Published, running.Candidates)
	}
	gate.open()
	finalCounts(t, b.waitStatus("r-live", ledger.Completed))
}

// A partitioned run's status sums its partitions while it runs, and shows
// its result's counts once completed.
func TestStatusOfPartitionedRun(t *testing.T) {
	t.Parallel()
	b := setup(t, 3000)
	gate := newGate(t, b.sink, 1)
	b.worker(Config{Owner: "w1", Partitions: b.partitions(400, nil, nil, nil), Sink: gate})
	if err := b.jobs.Send(context.Background(), b.jobText("r-parts"), ""); err != nil {
		t.Fatal(err)
	}
	b.waitFor("r-parts", "its partitions' counts while publishing", func(r *ledger.Run) bool {
		return r.Status == ledger.Publishing && r.Candidates > 0 && r.Published > 0
	})
	gate.open()
	finalCounts(t, b.waitStatus("r-parts", ledger.Completed))
}

// A worker that is shutting down hands a job back without touching its run:
// a handed-back run keeps its status, counts and empty error (it used to
// read "retrying" with "claim run ...: context canceled" and 0 published).
func TestShutdownLeavesHandedBackRun(t *testing.T) {
	t.Parallel()
	b := setup(t, 10)
	ctx := context.Background()
	text := b.jobText("r-back")
	claim, err := b.ledger.Claim(ctx, ledger.Start{RequestID: b.id("r-back"), ProjectID: b.tables.Project, CampaignID: "cmp",
		Action: "publish", Reference: time.Now()}, "w0", time.Minute)
	if err != nil || !claim.Granted {
		t.Fatalf("claim: %+v %v", claim, err)
	}
	if err := b.ledger.Finish(ctx, b.id("r-back"), "w0", ledger.Outcome{Status: ledger.HandedBack, Candidates: 200, Published: 113}); err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Queue: b.jobs, Ledger: b.ledger, Runner: b.runner, Sink: b.sink, Owner: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.jobs.Send(ctx, text, ""); err != nil {
		t.Fatal(err)
	}
	d, err := b.jobs.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	w.handle(stopped, d)
	r, err := b.ledger.Get(ctx, b.id("r-back"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != ledger.HandedBack || r.Error != "" || r.Published != 113 || r.Candidates != 200 {
		t.Fatalf("after a shutdown: %+v", r)
	}
	// The message went back to the queue for another worker.
	rctx, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	if _, err := b.jobs.Receive(rctx); err != nil {
		t.Fatalf("the job was not handed back: %v", err)
	}
}

// One device with a 1 MB token no longer fails the campaign in serve (it
// failed with "nats: maximum payload exceeded", nobody got the campaign,
// and the failed result still said published=197): behind the metrics
// wrapper serve uses, its message is skipped and counted, and everyone else
// gets theirs.
func TestOversizedTokenDoesNotFailServe(t *testing.T) {
	t.Parallel()
	b := setup(t, 500)
	ctx := context.Background()
	pool := dbtest.Pool(t)
	var user string
	if err := pool.QueryRow(ctx, `SELECT notifly_user_id FROM `+b.tables.User+` ORDER BY notifly_user_id LIMIT 1 OFFSET 100`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+b.tables.Device+` (notifly_device_id, notifly_user_id, device_token, platform, updated_at)
VALUES ('huge-token', $1, repeat('t', 1 << 20), 'ios', now())`, user); err != nil {
		t.Fatal(err)
	}
	b.worker(Config{Owner: "w1", Sink: metrics.New().Sink(b.sink)})
	text := b.jobText("r-huge")
	if err := b.jobs.Send(ctx, text, ""); err != nil {
		t.Fatal(err)
	}
	run := b.waitStatus("r-huge", ledger.Completed)
	var res publish.Result
	if err := json.Unmarshal(run.Result, &res); err != nil {
		t.Fatal(err)
	}
	if res.Unpublishable.MessageTooLarge != 1 || res.Published == 0 || int64(len(b.channelMessages())) != res.Published ||
		res.Candidates != res.Published+res.Skipped.Total()+res.Unpublishable.Total() {
		t.Fatalf("result %s; the stream holds %d messages", run.Result, len(b.channelMessages()))
	}
}

package publish

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// windowSink acknowledges batches after random delays, so they complete
// out of order, and fails the batch starting at failAt (-1: never). It
// records how many Publish calls ran at once.
type windowSink struct {
	window  int
	failAt  int64
	mu      sync.Mutex
	acked   map[int64]int // First -> messages
	running atomic.Int32
	peak    atomic.Int32
}

func (s *windowSink) Capabilities() Capabilities { return Capabilities{Window: s.window} }

func (s *windowSink) Close() error { return nil }

func (s *windowSink) Publish(ctx context.Context, b *Batch) error {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	select {
	case <-time.After(time.Duration(rand.IntN(3000)) * time.Microsecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.First == s.failAt {
		return errors.New("queue unavailable")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked[b.First] = len(b.Messages)
	return nil
}

// holdSink acknowledges the first batch and holds every other until its
// context ends.
type holdSink struct{}

func (holdSink) Capabilities() Capabilities { return Capabilities{Window: 1} }
func (holdSink) Close() error               { return nil }
func (holdSink) Publish(ctx context.Context, b *Batch) error {
	if b.First == 0 {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

// With several batches in flight, checkpoints still advance in publishing
// order and only past acknowledged batches; a failure stops the run with
// no Publish call left running, and resuming from the last checkpoint
// publishes exactly what an uninterrupted run does.
func TestWindowedOutput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users("u", 3000, `'user' || i || '@x.com'`)
	runner, j := b.smallBatchEmailRun()
	full, err := runner.Run(context.Background(), j, &captureSink{})
	if err != nil {
		t.Fatal(err)
	}

	ok := &windowSink{window: 6, failAt: -1, acked: map[int64]int{}}
	var cps []Checkpoint
	res, err := runner.Resume(context.Background(), j, ok, Checkpoint{}, func(c Checkpoint) error {
		ok.mu.Lock()
		defer ok.mu.Unlock()
		// Every message before the checkpoint is acknowledged.
		var covered int64
		for first := int64(0); first < c.Published; first += 100 {
			n, done := ok.acked[first]
			if !done {
				t.Errorf("checkpoint at %d before batch %d was acknowledged", c.Published, first)
				break
			}
			covered += int64(n)
		}
		if covered != c.Published {
			t.Errorf("checkpoint at %d covers %d acknowledged messages", c.Published, covered)
		}
		cps = append(cps, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != full.Published || res.Published != 3000 {
		t.Fatalf("windowed run published %d, a plain run %d", res.Published, full.Published)
	}
	if ok.peak.Load() < 2 || ok.peak.Load() > 6 {
		t.Fatalf("peak batches in flight %d, want 2..6", ok.peak.Load())
	}
	for i := 1; i < len(cps); i++ {
		if cps[i].Published <= cps[i-1].Published || cps[i].After <= cps[i-1].After {
			t.Fatalf("checkpoints out of order: %+v then %+v", cps[i-1], cps[i])
		}
	}

	bad := &windowSink{window: 6, failAt: 1500, acked: map[int64]int{}}
	var last Checkpoint
	_, err = runner.Resume(context.Background(), j, bad, Checkpoint{}, func(c Checkpoint) error { last = c; return nil })
	if err == nil {
		t.Fatal("run with a failing batch succeeded")
	}
	if n := bad.running.Load(); n != 0 {
		t.Fatalf("%d Publish calls still running after the run returned", n)
	}
	if last.Published > 1500 {
		t.Fatalf("checkpoint %d passed the failed batch at 1500", last.Published)
	}
	rest := &captureSink{}
	res, err = runner.Resume(context.Background(), j, rest, last, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := last.Published + int64(len(rest.raw)); got != 3000 || res.Published != 3000 {
		t.Fatalf("resume after the failure: checkpoint %d + %d resent, result %d; want 3000", last.Published, len(rest.raw), res.Published)
	}
}

// A run whose context ends while batches are still waiting to be sent
// fails, even when nothing was in flight at that moment and the checker
// had finished: it must not end as if it had published everything.
func TestOutputStoppedWithBatchesLeft(t *testing.T) {
	t.Parallel()
	r := &Runner{cfg: (&Config{}).withDefaults()}
	outCh := make(chan *Batch, 3)
	for i := range 3 {
		outCh <- &Batch{First: int64(i), Messages: []Message{{Key: []byte("k"), Body: []byte("{}")}}, published: int64(i + 1)}
	}
	close(outCh)
	freeOut := make(chan *Batch, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var acked atomic.Int64
	var variants map[string]int64
	// The first batch is acknowledged at once; the others only when the
	// run's context ends, so that the first checkpoint is due (and
	// recorded) before any other batch can be acknowledged: checkpoints
	// coalesce behind batches acknowledged meanwhile.
	sink := &holdSink{}
	onAck := func(Checkpoint) error {
		cancel() // the worker is stopped right after the first batch
		return nil
	}
	err := r.output(ctx, &plan{publish: true}, sink, 1, outCh, freeOut, onAck, &acked, &variants, func() {})
	if err == nil {
		t.Fatalf("output returned nil with %d of 3 messages acknowledged", acked.Load())
	}
	if acked.Load() != 1 {
		t.Fatalf("acknowledged %d messages, want 1", acked.Load())
	}
}

// A slow checkpoint record (a commit on a busy database) does not hold up
// the window: the batches acknowledged while one record is made share the
// next, which still covers only acknowledged batches, in order, and the
// last one covers the whole run.
func TestSlowCheckpointsCoalesce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users("u", 3000, `'user' || i || '@x.com'`)
	runner, j := b.smallBatchEmailRun()
	sink := &windowSink{window: 6, failAt: -1, acked: map[int64]int{}}
	var cps []Checkpoint
	res, err := runner.Resume(context.Background(), j, sink, Checkpoint{}, func(c Checkpoint) error {
		sink.mu.Lock()
		for first := int64(0); first < c.Published; first += 100 {
			if _, done := sink.acked[first]; !done {
				t.Errorf("checkpoint at %d before batch %d was acknowledged", c.Published, first)
				break
			}
		}
		sink.mu.Unlock()
		cps = append(cps, c)
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 3000 {
		t.Fatalf("published %d, want 3000", res.Published)
	}
	// 30 batches of 100: recorded one by one they would take 600 ms.
	if len(cps) == 0 || len(cps) >= 30 {
		t.Fatalf("%d checkpoint records for 30 batches, want fewer", len(cps))
	}
	if last := cps[len(cps)-1]; last.Published != 3000 {
		t.Fatalf("last checkpoint at %d, want 3000", last.Published)
	}
	for i := 1; i < len(cps); i++ {
		if cps[i].Published <= cps[i-1].Published {
			t.Fatalf("checkpoints out of order: %+v then %+v", cps[i-1], cps[i])
		}
	}
}

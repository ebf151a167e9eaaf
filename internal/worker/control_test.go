package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
)

// waitFor polls cond for up to 60 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// controlWorld runs three workers publishing batches of 100 slowly, so a
// run is paused or cancelled part way; every publish to the channel stream
// is counted, repeats included.
func controlWorld(t *testing.T, partitionRows int) (*bundle, *countSink, *eventLog) {
	t.Helper()
	b := setup(t, 3000)
	runner, err := publish.New(publish.Config{Pool: dbtest.Pool(t), BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	counter := &countSink{Sink: &slowSink{Sink: b.sink, delay: 30 * time.Millisecond}}
	evs := &eventLog{}
	for i := range 3 {
		b.worker(Config{Owner: fmt.Sprintf("w%d", i), Runner: runner, Sink: counter, Partitions: b.partitions(partitionRows, runner, nil, nil), Events: evs})
	}
	return b, counter, evs
}

// stopped waits until none of the runs a pause or cancel waits for is
// running any more.
func stopped(t *testing.T, b *bundle, c *ledger.Control) {
	t.Helper()
	waitFor(t, "the stop to take effect", func() bool {
		left, err := b.ledger.Active(context.Background(), c.Waiting)
		return err == nil && len(left) == 0
	})
}

func resume(t *testing.T, b *bundle, id string) {
	t.Helper()
	c, err := b.ledger.Resume(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range c.Requeue {
		if err := b.jobs.Send(context.Background(), body, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// A paused run stops after the batch in hand with its checkpoint; nothing
// is published while it is paused; resumed on any worker it publishes the
// rest, and over both parts every message of the job is published exactly
// once (no repeats even at the sink). Whole and partitioned alike.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	for _, rows := range []int{0, 400} {
		t.Run(fmt.Sprintf("partition rows %d", rows), func(t *testing.T) {
			t.Parallel()
			b, counter, evs := controlWorld(t, rows)
			text := b.jobText("r-pause")
			if err := b.jobs.Send(context.Background(), text, ""); err != nil {
				t.Fatal(err)
			}
			want := b.fileOutput(text)
			waitFor(t, "publishing to start", func() bool { return counter.n.Load() >= 300 })
			c, err := b.ledger.Pause(context.Background(), b.id("r-pause"))
			if err != nil {
				t.Fatal(err)
			}
			stopped(t, b, c)
			// Paused, whole or partitioned, as `segpub status` and the
			// console read it, with what the stream holds.
			run := b.waitStatus("r-pause", ledger.Paused)
			if run.Published != counter.n.Load() {
				t.Fatalf("paused run records %d published, the stream got %d", run.Published, counter.n.Load())
			}
			at := counter.n.Load()
			if at >= int64(len(want)) {
				t.Fatalf("the run finished (%d messages) before it paused", at)
			}
			// A redelivered copy of a paused job does not run it.
			if err := b.jobs.Send(context.Background(), text, ""); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			if n := counter.n.Load(); n != at {
				t.Fatalf("%d messages published while paused", n-at)
			}
			resume(t, b, b.id("r-pause"))
			run = b.waitStatus("r-pause", ledger.Completed)
			got := b.channelMessages()
			sortBytes(got)
			sortBytes(want)
			sameMessages(t, got, want)
			if n := counter.n.Load(); n != int64(len(want)) {
				t.Fatalf("%d publishes for %d messages: some were published twice", n, len(want))
			}
			var res publish.Result
			if err := json.Unmarshal(run.Result, &res); err != nil || res.Published != int64(len(want)) {
				t.Fatalf("result %s: %v", run.Result, err)
			}
			if rows == 0 {
				// The resumed attempt starts from what the first published,
				// not from 0/0.
				evs.mu.Lock()
				defer evs.mu.Unlock()
				found := false
				for _, e := range evs.events {
					if e.Type == "started" && e.Attempt == 2 {
						found = true
						if e.Published != at {
							t.Fatalf("attempt 2 started with %d published, the first had published %d", e.Published, at)
						}
					}
				}
				if !found {
					t.Fatalf("no started event of attempt 2 in %+v", evs.events)
				}
			}
		})
	}
}

// A cancelled run stops after the batch in hand and records exactly what
// was acknowledged; nothing is published once the cancel has taken effect,
// and a redelivered copy never runs it again. Whole and partitioned alike.
func TestCancel(t *testing.T) {
	t.Parallel()
	for _, rows := range []int{0, 400} {
		t.Run(fmt.Sprintf("partition rows %d", rows), func(t *testing.T) {
			t.Parallel()
			b, counter, _ := controlWorld(t, rows)
			text := b.jobText("r-cancel")
			if err := b.jobs.Send(context.Background(), text, ""); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "publishing to start", func() bool { return counter.n.Load() >= 300 })
			c, err := b.ledger.Cancel(context.Background(), b.id("r-cancel"))
			if err != nil {
				t.Fatal(err)
			}
			stopped(t, b, c)
			run := b.waitStatus("r-cancel", ledger.Cancelled)
			at := counter.n.Load()
			if run.Published != at {
				t.Fatalf("cancelled run records %d published, the stream got %d", run.Published, at)
			}
			if rows == 0 {
				var res publish.Result
				if err := json.Unmarshal(run.Result, &res); err != nil || res.Status != publish.StatusCancelled || res.Published != at {
					t.Fatalf("result %s: %v", run.Result, err)
				}
			}
			if err := b.jobs.Send(context.Background(), text, ""); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			if n := counter.n.Load(); n != at {
				t.Fatalf("%d messages published after the cancel took effect", n-at)
			}
			if r, _ := b.ledger.Get(context.Background(), b.id("r-cancel")); r.Status != ledger.Cancelled {
				t.Fatalf("status after a redelivered copy: %s", r.Status)
			}
			if _, err := b.ledger.Resume(context.Background(), b.id("r-cancel")); err == nil || !strings.Contains(err.Error(), "finished") {
				t.Fatalf("resume of a cancelled run: %v", err)
			}
		})
	}
}

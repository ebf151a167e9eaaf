// Package queuetest is the suite every queue.Queue must pass (JetStream,
// SQS): what is sent is received whole, once acknowledged it is gone, a
// nacked or unextended message comes back with its attempt counted, an
// extended one stays with its consumer, de-duplication where the queue
// does it, the size limit, and Receive ending with its context.
package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/queue"
)

// Harness is what a queue implementation gives the suite.
type Harness struct {
	// Queue is a fresh, empty queue, used by this subtest alone.
	Queue queue.Queue
	// Consumer returns another consumer of the same queue: a second
	// worker, as another process would open it.
	Consumer func(t *testing.T) queue.Queue
	// Visibility is how long a received message may go without Extend
	// before the queue hands it to another consumer (ack wait,
	// visibility timeout). At least a second: the suite waits a few of
	// them.
	Visibility time.Duration
	// Dedup is true when a second Send with the same dedupID is dropped
	// (JetStream; SQS FIFO queues).
	Dedup bool
}

// Run runs the suite. setup makes a fresh queue per subtest.
func Run(t *testing.T, setup func(t *testing.T) Harness) {
	t.Run("SendReceiveAck", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		if err := h.Queue.Send(ctx, []byte(`{"a":1}`), ""); err != nil {
			t.Fatal(err)
		}
		d := receive(t, h.Queue, 10*time.Second)
		if d == nil || string(d.Body()) != `{"a":1}` || d.Attempt() != 1 {
			t.Fatalf("received %s", describe(d))
		}
		if err := d.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		// Gone for good: not back after the visibility period either.
		if d := receive(t, h.Queue, h.Visibility+2*time.Second); d != nil {
			t.Fatalf("acknowledged message came back: %s", describe(d))
		}
	})
	t.Run("ManyMessages", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		want := map[string]bool{}
		for _, b := range []string{"one", "two", "three", "four"} {
			if err := h.Queue.Send(ctx, []byte(b), ""); err != nil {
				t.Fatal(err)
			}
			want[b] = true
		}
		for range len(want) {
			d := receive(t, h.Queue, 10*time.Second)
			if d == nil {
				t.Fatalf("still waiting for %v", want)
			}
			if !want[string(d.Body())] {
				t.Fatalf("unexpected or repeated message %q", d.Body())
			}
			delete(want, string(d.Body()))
			if err := d.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("MaxMessageBytes", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		limit := h.Queue.MaxMessageBytes()
		if limit <= 0 {
			t.Fatalf("MaxMessageBytes %d", limit)
		}
		if err := h.Queue.Send(ctx, bytes.Repeat([]byte("x"), limit+1), ""); !errors.Is(err, queue.ErrTooLarge) {
			t.Fatalf("a message one byte over the limit: %v, want queue.ErrTooLarge", err)
		}
		at := bytes.Repeat([]byte("y"), limit)
		if err := h.Queue.Send(ctx, at, ""); err != nil {
			t.Fatalf("a message at the limit: %v", err)
		}
		d := receive(t, h.Queue, 10*time.Second)
		if d == nil || !bytes.Equal(d.Body(), at) {
			t.Fatalf("message at the limit: received %s", describe(d))
		}
		_ = d.Ack(ctx)
	})
	t.Run("NackRedelivers", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		if err := h.Queue.Send(ctx, []byte("job"), ""); err != nil {
			t.Fatal(err)
		}
		for attempt := 1; attempt <= 3; attempt++ {
			d := receive(t, h.Queue, 10*time.Second)
			if d == nil || string(d.Body()) != "job" || d.Attempt() != attempt {
				t.Fatalf("delivery %d: %s", attempt, describe(d))
			}
			if err := d.Nack(ctx, 0); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("NackWithDelay", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		if err := h.Queue.Send(ctx, []byte("later"), ""); err != nil {
			t.Fatal(err)
		}
		d := receive(t, h.Queue, 10*time.Second)
		if d == nil {
			t.Fatal("nothing received")
		}
		// The delay is far longer than the test: the message must not
		// come back while it runs, though the visibility period passes.
		if err := d.Nack(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
		if d := receive(t, h.Queue, h.Visibility+2*time.Second); d != nil {
			t.Fatalf("nacked with an hour's delay, back at once: %s", describe(d))
		}
	})
	t.Run("RedeliveredWithoutAck", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		if err := h.Queue.Send(ctx, []byte("dropped"), ""); err != nil {
			t.Fatal(err)
		}
		if d := receive(t, h.Queue, 10*time.Second); d == nil || d.Attempt() != 1 {
			t.Fatalf("first delivery: %s", describe(d))
		}
		// The consumer died: another gets it after the visibility period.
		d := receive(t, h.Consumer(t), h.Visibility+10*time.Second)
		if d == nil || string(d.Body()) != "dropped" || d.Attempt() != 2 {
			t.Fatalf("redelivery: %s", describe(d))
		}
		_ = d.Ack(ctx)
	})
	t.Run("ExtendBeyondVisibility", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		if err := h.Queue.Send(ctx, []byte("long job"), ""); err != nil {
			t.Fatal(err)
		}
		d := receive(t, h.Queue, 10*time.Second)
		if d == nil {
			t.Fatal("nothing received")
		}
		other := h.Consumer(t)
		work := 3 * h.Visibility
		stolen := make(chan queue.Delivery, 1)
		go func() {
			defer close(stolen)
			if d := receive(t, other, work); d != nil {
				stolen <- d
			}
		}()
		// Work for three visibility periods, extending twice in each.
		for range 6 {
			time.Sleep(h.Visibility / 2)
			if err := d.Extend(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if s, ok := <-stolen; ok {
			t.Fatalf("another consumer received the job while it was being extended: %s", describe(s))
		}
		// Without extension it comes back after the visibility period.
		d2 := receive(t, other, h.Visibility+10*time.Second)
		if d2 == nil || string(d2.Body()) != "long job" || d2.Attempt() != 2 {
			t.Fatalf("after extensions stopped: %s", describe(d2))
		}
		_ = d2.Ack(ctx)
	})
	t.Run("DedupID", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		for range 2 {
			if err := h.Queue.Send(ctx, []byte("job"), "r-1"); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Queue.Send(ctx, []byte("other job"), "r-2"); err != nil {
			t.Fatal(err)
		}
		want := 3
		if h.Dedup {
			want = 2
		}
		got := map[string]int{}
		for range want {
			d := receive(t, h.Queue, 10*time.Second)
			if d == nil {
				t.Fatalf("received %v, want %d messages", got, want)
			}
			got[string(d.Body())]++
			_ = d.Ack(ctx)
		}
		if d := receive(t, h.Queue, 2*time.Second); d != nil {
			t.Fatalf("after %v, one more: %s (dedup %v)", got, describe(d), h.Dedup)
		}
		if got["other job"] != 1 || got["job"] != want-1 {
			t.Fatalf("received %v (dedup %v)", got, h.Dedup)
		}
	})
	t.Run("ReceiveEndsWithContext", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if d, err := h.Queue.Receive(ctx); !errors.Is(err, context.Canceled) || d != nil {
			t.Fatalf("cancelled context: %v, %v", d, err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if d, err := h.Queue.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) || d != nil {
			t.Fatalf("empty queue, context ended: %v, %v", d, err)
		}
		// Cancelled while waiting, not before.
		ctx, cancel = context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := h.Queue.Receive(ctx)
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled while waiting: %v", err)
		}
	})
	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		if err := h.Queue.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// receive waits up to within for a message; nil when none came.
func receive(t *testing.T, q queue.Queue, within time.Duration) queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	d, err := q.Receive(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t.Errorf("receive: %v", err)
		}
		return nil
	}
	return d
}

func describe(d queue.Delivery) string {
	if d == nil {
		return "nothing"
	}
	return fmt.Sprintf("attempt %d of %q", d.Attempt(), d.Body())
}

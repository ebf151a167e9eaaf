// Package sinktest is the suite every channel sink must pass (file, SQS,
// JetStream): what goes in comes out, once, whole, with its key, in batches
// of any size.
package sinktest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// Harness is what a sink implementation gives the suite.
type Harness struct {
	// Sink publishes to the channels of one isolated destination.
	Sink publish.Sink
	// Read returns the bodies the destination holds for a channel, in
	// the order it holds them; it may wait for them to arrive.
	Read func(t *testing.T, ch job.Channel, want int) [][]byte
	// Ordered is true when the destination keeps publishing order.
	Ordered bool
}

// Run runs the suite. setup makes a fresh, empty destination per subtest.
func Run(t *testing.T, setup func(t *testing.T) Harness) {
	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		b := batch(job.ChannelEmail, 0, 25)
		if err := h.Sink.Publish(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		check(t, h, job.ChannelEmail, b.Messages)
	})
	t.Run("ChannelsSeparate", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		a, s := batch(job.ChannelPush, 0, 3), batch(job.ChannelText, 100, 4)
		for _, b := range []*publish.Batch{a, s} {
			if err := h.Sink.Publish(context.Background(), b); err != nil {
				t.Fatal(err)
			}
		}
		check(t, h, job.ChannelPush, a.Messages)
		check(t, h, job.ChannelText, s.Messages)
	})
	t.Run("ManyBatches", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		var all []publish.Message
		for i := 0; i < 7; i++ {
			b := batch(job.ChannelKakaoAlimtalk, i*57, 57)
			if err := h.Sink.Publish(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			all = append(all, b.Messages...)
		}
		check(t, h, job.ChannelKakaoAlimtalk, all)
	})
	t.Run("LargeMessages", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		// 40 KiB messages: a batch of ten of them would pass SQS's
		// 256 KiB request limit, so the sink must split by bytes too.
		b := batchOf(job.ChannelEmail, 0, 12, 40<<10)
		if err := h.Sink.Publish(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		check(t, h, job.ChannelEmail, b.Messages)
	})
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		if err := h.Sink.Publish(context.Background(), batch(job.ChannelEmail, 0, 0)); err != nil {
			t.Fatal(err)
		}
	})
}

func check(t *testing.T, h Harness, ch job.Channel, want []publish.Message) {
	t.Helper()
	got := h.Read(t, ch, len(want))
	if len(got) != len(want) {
		t.Fatalf("%s: got %d messages, want %d", ch, len(got), len(want))
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[string(g)]++
	}
	for i, w := range want {
		if seen[string(w.Body)] != 1 {
			t.Fatalf("%s: message %d seen %d times", ch, i, seen[string(w.Body)])
		}
		if h.Ordered && !bytes.Equal(got[i], w.Body) {
			t.Fatalf("%s: message %d out of order", ch, i)
		}
	}
}

func batch(ch job.Channel, first, n int) *publish.Batch { return batchOf(ch, first, n, 0) }

// batchOf builds a batch like the engine does: bodies are lines of Data,
// keys are inside the bodies.
func batchOf(ch job.Channel, first, n, pad int) *publish.Batch {
	b := &publish.Batch{Channel: ch, First: int64(first)}
	type span struct{ start, end int }
	var spans []span
	for i := first; i < first+n; i++ {
		key := fmt.Sprintf("%064x", i+1)
		start := len(b.Data)
		b.Data = fmt.Appendf(b.Data, `{"idempotency_key":"%s","channel":%q,"n":%d,"pad":%q}`, key, ch, i, strings.Repeat("x", pad))
		spans = append(spans, span{start, len(b.Data)})
		b.Data = append(b.Data, '\n')
	}
	for _, s := range spans {
		body := b.Data[s.start:s.end]
		b.Messages = append(b.Messages, publish.Message{Key: body[20:84], Body: body})
	}
	return b
}

// BatchFromLines builds a batch whose bodies are the given JSON lines, each
// starting with {"idempotency_key":"<64 hex>".
func BatchFromLines(ch job.Channel, lines []string) *publish.Batch {
	b := &publish.Batch{Channel: ch}
	var ends []int
	for _, l := range lines {
		b.Data = append(b.Data, l...)
		ends = append(ends, len(b.Data))
		b.Data = append(b.Data, '\n')
	}
	start := 0
	for _, end := range ends {
		body := b.Data[start:end]
		b.Messages = append(b.Messages, publish.Message{Key: body[20:84], Body: body})
		start = end + 1
	}
	return b
}

// Package sinktest is the suite every channel sink must pass (file, SQS,
// JetStream): what goes in comes out, once, whole, with its key, in batches
// of any size; and a message over the sink's size limit is skipped by the
// engine without failing the run (this part needs the test database).
package sinktest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/metrics"
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

// Run runs the suite on the sink as it is and again behind the metrics
// wrapper serve puts around every channel sink: a decorator must forward
// everything the sink can do. setup makes a fresh, empty destination per
// subtest.
func Run(t *testing.T, setup func(t *testing.T) Harness) {
	t.Run("Direct", func(t *testing.T) { run(t, setup) })
	t.Run("Metrics", func(t *testing.T) {
		run(t, func(t *testing.T) Harness {
			h := setup(t)
			inner := h.Sink
			h.Sink = metrics.New().Sink(inner)
			if got, want := h.Sink.Capabilities(), inner.Capabilities(); got.Window != want.Window ||
				got.MaxMessageBytes != want.MaxMessageBytes || got.Staging != want.Staging || (got.Duplicates == nil) != (want.Duplicates == nil) {
				t.Fatalf("the metrics wrapper declares %+v, the sink %+v", got, want)
			}
			return h
		})
	})
}

func run(t *testing.T, setup func(t *testing.T) Harness) {
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
	t.Run("AtLimit", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		limit := h.Sink.Capabilities().MaxMessageBytes
		if limit == 0 {
			t.Skip("no message size limit")
		}
		// A message of exactly the limit gets through: the engine
		// never skips a message the destination would take.
		base := len(batchOf(job.ChannelEmail, 0, 1, 0).Messages[0].Body)
		b := batchOf(job.ChannelEmail, 0, 1, limit-base)
		if got := len(b.Messages[0].Body); got != limit {
			t.Fatalf("built a %d-byte message, want %d", got, limit)
		}
		if err := h.Sink.Publish(context.Background(), b); err != nil {
			t.Fatalf("a message of the reported limit, %d bytes, was refused: %v", limit, err)
		}
		check(t, h, job.ChannelEmail, b.Messages)
	})
	t.Run("Oversized", func(t *testing.T) {
		t.Parallel()
		oversized(t, setup(t))
	})
	t.Run("Window", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		// Batches published at once, as the engine does with a window:
		// each arrives whole, once.
		w := max(1, h.Sink.Capabilities().Window)
		errs := make(chan error, w)
		var all []publish.Message
		for i := range w {
			b := batch(job.ChannelPush, i*31, 31)
			all = append(all, b.Messages...)
			go func() { errs <- h.Sink.Publish(context.Background(), b) }()
		}
		for range w {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		h.Ordered = h.Ordered && w == 1
		check(t, h, job.ChannelPush, all)
	})
	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		// What Publish acknowledged is still there once the sink is
		// closed: a sink that buffers flushes on Close.
		b := batch(job.ChannelText, 0, 9)
		if err := h.Sink.Publish(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		if err := h.Sink.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		check(t, h, job.ChannelText, b.Messages)
	})
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		if err := h.Sink.Publish(context.Background(), batch(job.ChannelEmail, 0, 0)); err != nil {
			t.Fatal(err)
		}
	})
}

// oversized runs a push job through the engine into the sink: one device's
// token is as long as the sink's limit, so its message (which carries the
// token twice) is over it. The run must complete, count that candidate as
// unpublishable and publish everyone else (docs/channel-message.md and
// docs/decisions.md); a sink with no limit publishes it.
func oversized(t *testing.T, h Harness) {
	tables := dbtest.Project(t)
	limit := h.Sink.Capabilities().MaxMessageBytes
	tokenLen := max(limit, 2<<20)
	ins := func(user, token string) {
		dbtest.Exec(t, `INSERT INTO `+tables.User+` (notifly_user_id, external_user_id, user_properties, random_bucket_number) VALUES ($1, $1, '{}', 0)`, user)
		dbtest.Exec(t, `INSERT INTO `+tables.Device+` (notifly_device_id, notifly_user_id, device_token, platform, updated_at) VALUES ($1, $2, $3, 'ios', now())`, "d-"+user, user, token)
	}
	ins("u1", "token-1")
	ins("u2", strings.Repeat("t", tokenLen))
	ins("u3", "token-3")
	j, err := job.Parse(fmt.Appendf(nil, `{"version":1,"action":"publish","request_id":"r-oversized","project_id":%q,
"campaign":{"id":"c1","channel":"push_notification","audience":{"type":"all"},"message":{"title":"hi"}}}`, tables.Project))
	if err != nil {
		t.Fatal(err)
	}
	runner, err := publish.New(publish.Config{Pool: dbtest.Pool(t), BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runner.Run(context.Background(), j, h.Sink)
	if err != nil {
		t.Fatalf("one oversized message failed the run: %v", err)
	}
	want := int64(2)
	if limit == 0 {
		want = 3
	}
	if res.Candidates != 3 || res.Published != want || res.Unpublishable.MessageTooLarge != 3-want {
		t.Fatalf("limit %d: result %+v", limit, res)
	}
	got := h.Read(t, job.ChannelPush, int(want))
	if int64(len(got)) != want {
		t.Fatalf("destination holds %d messages, want %d", len(got), want)
	}
	for _, m := range got {
		if limit > 0 && len(m) > limit {
			t.Fatalf("a %d-byte message went out past the %d-byte limit", len(m), limit)
		}
	}
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

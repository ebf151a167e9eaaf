package jssink

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/sink/sinktest"
)

var streamN atomic.Int64

// harness connects through url (an embedded server per test, or the
// standalone one) with a stream of the test's own.
func harness(t *testing.T, url string) sinktest.Harness {
	return harnessWith(t, url, func(*Config) {})
}

func harnessWith(t *testing.T, url string, configure func(*Config)) sinktest.Harness {
	c := &natsjs.Connector{DefaultDir: t.TempDir()}
	t.Cleanup(c.Close)
	conn, err := c.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	n := streamN.Add(1)
	stream := fmt.Sprintf("T%d_%d", time.Now().UnixNano(), n)
	subject := fmt.Sprintf("t%d.%d.{channel}", time.Now().UnixNano(), n)
	cfg := Config{Conn: conn, Stream: stream, Subject: subject}
	configure(&cfg)
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.JS.DeleteStream(context.Background(), stream) })
	return sinktest.Harness{Sink: s, Ordered: true, Read: func(t *testing.T, ch job.Channel, want int) [][]byte {
		return read(t, conn.JS, stream, s.SubjectFor(string(ch)), want)
	}}
}

func read(t *testing.T, js jetstream.JetStream, stream, subject string, want int) [][]byte {
	t.Helper()
	cons, err := js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m.Data())
		}
	}
	// Nothing beyond what was expected.
	if extra, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond)); err == nil {
		for m := range extra.Messages() {
			out = append(out, m.Data())
		}
	}
	return out
}

func TestEmbedded(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, func(t *testing.T) sinktest.Harness { return harness(t, "embedded:") })
}

// The embedded server supports fast batches; the suite holds for the
// per-message path on it too.
func TestEmbeddedPerMessageAcks(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		return harnessWith(t, "embedded:", func(c *Config) { c.PerMessageAcks = true })
	})
}

// A batch whose fast publish fails (here: the stream's batch setting was
// turned off after the sink opened it, so the server refuses the batch)
// is published again message by message: every message arrives once.
func TestBatchRefusedFallsBack(t *testing.T) {
	t.Parallel()
	c := &natsjs.Connector{DefaultDir: t.TempDir()}
	t.Cleanup(c.Close)
	conn, err := c.Connect(context.Background(), "embedded:")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), Config{Conn: conn, Stream: "FALLBACK", Subject: "fallback.{channel}", AckTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.PerMessageAcks {
		t.Fatalf("embedded server %s: fast batches not selected", conn.NC.ConnectedServerVersion())
	}
	if _, err := conn.JS.UpdateStream(context.Background(), jetstream.StreamConfig{
		Name: "FALLBACK", Subjects: []string{"fallback.*"}, Storage: jetstream.FileStorage, Duplicates: 24 * time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := 0; i < 40; i++ {
		lines = append(lines, fmt.Sprintf(`{"idempotency_key":"%064x"}`, i))
	}
	b := sinktest.BatchFromLines(job.ChannelPush, lines)
	if err := s.publishBatch(context.Background(), s.SubjectFor(string(job.ChannelPush)), b); err == nil {
		t.Fatal("fast batch to a stream without batch publishing: no error")
	}
	if err := s.Publish(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := read(t, conn.JS, "FALLBACK", s.SubjectFor(string(job.ChannelPush)), 40)
	if len(got) != 40 {
		t.Fatalf("stream holds %d messages, want 40", len(got))
	}
	for i, g := range got {
		if string(g) != lines[i] {
			t.Fatalf("message %d: %s, want %s", i, g, lines[i])
		}
	}
	// The batches after a failed one go message by message for a while,
	// without waiting for a refusal again.
	if err := s.Publish(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := s.cooldown.Load(); n != cooldownBatches-1 {
		t.Fatalf("cooldown after one more batch: %d, want %d", n, cooldownBatches-1)
	}
	if d := s.Duplicates(); d != 40 {
		t.Fatalf("stream dropped %d duplicates of the batch published again, want 40", d)
	}
}

func TestAtLeast(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{"2.12.0": true, "2.15.2": true, "3.0.0": true, "2.11.9": false, "2.9.10": false, "": false, "x": false, "2.12.0-beta.1": true} {
		if got := atLeast(v, 2, 12); got != want {
			t.Errorf("atLeast(%q, 2, 12) = %v, want %v", v, got, want)
		}
	}
}

// The standalone server CI and developers run at 127.0.0.1:4222.
func TestStandalone(t *testing.T) {
	t.Parallel()
	sinktest.Run(t, func(t *testing.T) sinktest.Harness { return harness(t, standaloneURL(t)) })
}

// A batch published twice (a resumed run) is stored once: the stream drops
// copies by idempotency key.
func TestRepublishDeduplicated(t *testing.T) {
	t.Parallel()
	h := harness(t, "embedded:")
	body := func(i int) string { return fmt.Sprintf(`{"idempotency_key":"%064x"}`, i) }
	var lines []string
	for i := 0; i < 50; i++ {
		lines = append(lines, body(i))
	}
	b := sinktest.BatchFromLines(job.ChannelPush, lines)
	for range 2 {
		if err := h.Sink.Publish(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if d := h.Sink.(*Sink).Duplicates(); d != 50 {
		t.Fatalf("stream dropped %d duplicates, want 50", d)
	}
	got := h.Read(t, job.ChannelPush, 100)
	if len(got) != 50 || !strings.Contains(string(got[49]), fmt.Sprintf("%064x", 49)) {
		t.Fatalf("got %d messages after publishing 50 twice", len(got))
	}
}

func standaloneURL(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("SEGPUB_TEST_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

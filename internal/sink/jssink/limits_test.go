package jssink

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue/jsqueue"
)

func embedded(t *testing.T, query string) *natsjs.Conn {
	t.Helper()
	c := &natsjs.Connector{DefaultDir: t.TempDir()}
	t.Cleanup(c.Close)
	conn, err := c.Connect(context.Background(), "embedded:"+query)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// The embedded default bounds every stream's disk use: channel streams by
// bytes and age (the oldest messages go), job queues by bytes (new jobs
// are refused).
func TestEmbeddedStreamLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := embedded(t, "")
	if _, err := New(ctx, Config{Conn: conn, Stream: "CH", Subject: "ch.{channel}"}); err != nil {
		t.Fatal(err)
	}
	info, err := conn.JS.Stream(ctx, "CH")
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	if cfg.MaxBytes != natsjs.DefaultEmbeddedMaxBytes || cfg.MaxAge != natsjs.DefaultEmbeddedMaxAge || cfg.Discard != jetstream.DiscardOld {
		t.Errorf("channel stream limits: max_bytes %d, max_age %s, discard %v", cfg.MaxBytes, cfg.MaxAge, cfg.Discard)
	}
	if _, err := jsqueue.New(ctx, jsqueue.Config{Conn: conn, Stream: "Q", Subject: "q"}); err != nil {
		t.Fatal(err)
	}
	if info, err = conn.JS.Stream(ctx, "Q"); err != nil {
		t.Fatal(err)
	}
	cfg = info.CachedInfo().Config
	if cfg.MaxBytes != natsjs.DefaultEmbeddedMaxBytes || cfg.MaxAge != 0 || cfg.Discard != jetstream.DiscardNew {
		t.Errorf("job queue limits: max_bytes %d, max_age %s, discard %v", cfg.MaxBytes, cfg.MaxAge, cfg.Discard)
	}
}

// max_bytes and max_age in the URL set the limits, and the stream keeps to
// them: publishing more than max_bytes drops the oldest messages.
func TestStreamLimitsFromURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := embedded(t, "?max_bytes=200000&max_age=48h")
	s, err := New(ctx, Config{Conn: conn, Stream: "CH", Subject: "ch.{channel}"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		b := &publish.Batch{Channel: job.ChannelEmail, First: int64(i * 100)}
		for k := range 100 {
			body := fmt.Sprintf(`{"n":%d,"pad":%q}`, i*100+k, strings.Repeat("x", 500))
			key := fmt.Sprintf("%064d", i*100+k)
			b.Messages = append(b.Messages, publish.Message{Key: []byte(key), Body: []byte(body)})
		}
		if err := s.Publish(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	info, err := conn.JS.Stream(ctx, "CH")
	if err != nil {
		t.Fatal(err)
	}
	st, cfg := info.CachedInfo().State, info.CachedInfo().Config
	if cfg.MaxBytes != 200000 || cfg.MaxAge != 48*time.Hour {
		t.Errorf("limits: max_bytes %d, max_age %s", cfg.MaxBytes, cfg.MaxAge)
	}
	if st.Bytes > 200000 || st.LastSeq != 1000 || st.Msgs >= 1000 {
		t.Errorf("stream holds %d bytes, %d messages, last sequence %d: want at most 200000 bytes, the oldest dropped", st.Bytes, st.Msgs, st.LastSeq)
	}
}

func TestStreamLimitsValidated(t *testing.T) {
	t.Parallel()
	for query, want := range map[string]string{
		"?max_bytes=-1":  "max_bytes",
		"?max_bytes=1GB": "max_bytes",
		"?max_age=soon":  "max_age",
		"?max_age=1h":    "shorter than the channel stream's de-duplication window",
	} {
		conn := embedded(t, query)
		if _, err := New(context.Background(), Config{Conn: conn, Stream: "CH", Subject: "ch.{channel}"}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming %s", query, err, want)
		}
	}
}

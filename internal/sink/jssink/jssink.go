// Package jssink publishes channel messages to NATS JetStream, one subject
// per channel. Each message carries its idempotency key as Nats-Msg-Id, so
// the stream drops a copy a resumed or retried run publishes again.
// Publishing is asynchronous with a bounded number of acknowledgements
// outstanding; Publish returns once the stream has acknowledged the whole
// batch.
package jssink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/publish"
)

// Config configures a Sink. Stream and Subject default to the connection
// URL's stream and subject parameters.
type Config struct {
	Conn *natsjs.Conn
	// Stream holds every channel's messages. Default: SEGPUB_CHANNELS.
	Stream string
	// Subject is the per-channel subject, {channel} replaced. Default:
	// segpub.channel.{channel}.
	Subject string
	// MaxInFlight bounds unacknowledged publishes. Default: 4096.
	MaxInFlight int
	// Duplicates is the stream's de-duplication window. Default: 24h.
	Duplicates time.Duration
	// Failpoints lets tests fail a batch after it was sent and before its
	// acknowledgements arrive. Nil in production.
	Failpoints *failpoint.Set
	// Retries is how many times a publish whose acknowledgement failed
	// is retried (it may have been stored: the retry carries the same
	// Nats-Msg-Id). Default: 5.
	Retries int
}

// Sink is a JetStream channel sink.
type Sink struct {
	cfg Config
	js  jetstream.JetStream
	// duplicates counts publishes the stream dropped as repeats of a key
	// it already held: the messages a resumed run published twice before
	// de-duplication.
	duplicates atomic.Int64
}

// Duplicates returns how many publishes the stream dropped as duplicates.
func (s *Sink) Duplicates() int64 { return s.duplicates.Load() }

// New creates (or updates) the channel stream.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if cfg.Conn == nil {
		return nil, errors.New("jssink: Config.Conn is required")
	}
	cfg.Stream = cmp.Or(cfg.Stream, cfg.Conn.Param("stream", "SEGPUB_CHANNELS"))
	cfg.Subject = cmp.Or(cfg.Subject, cfg.Conn.Param("subject", "segpub.channel.{channel}"))
	cfg.MaxInFlight = cmp.Or(cfg.MaxInFlight, 4096)
	cfg.Duplicates = cmp.Or(cfg.Duplicates, 24*time.Hour)
	cfg.Retries = cmp.Or(cfg.Retries, 5)
	if !strings.Contains(cfg.Subject, "{channel}") {
		return nil, fmt.Errorf("jssink: Config.Subject %q has no {channel}", cfg.Subject)
	}
	js, err := jetstream.New(cfg.Conn.NC, jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight))
	if err != nil {
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       cfg.Stream,
		Subjects:   []string{strings.ReplaceAll(cfg.Subject, "{channel}", "*")},
		Storage:    jetstream.FileStorage,
		Duplicates: cfg.Duplicates,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Stream, err)
	}
	return &Sink{cfg: cfg, js: js}, nil
}

// SubjectFor returns a channel's subject.
func (s *Sink) SubjectFor(channel string) string {
	return strings.ReplaceAll(s.cfg.Subject, "{channel}", channel)
}

// Publish publishes a batch and waits for every acknowledgement.
func (s *Sink) Publish(ctx context.Context, b *publish.Batch) error {
	subject := s.SubjectFor(string(b.Channel))
	futures := make([]jetstream.PubAckFuture, len(b.Messages))
	for i, m := range b.Messages {
		f, err := s.js.PublishAsync(subject, m.Body, jetstream.WithMsgID(string(m.Key)))
		if err != nil {
			return fmt.Errorf("publish to %s: %w", subject, err)
		}
		futures[i] = f
	}
	if err := s.cfg.Failpoints.Hit(failpoint.BeforeAck); err != nil {
		return err
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack != nil && ack.Duplicate {
				s.duplicates.Add(1)
			}
		case err := <-f.Err():
			if err := s.retry(ctx, subject, b.Messages[i], err); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// retry republishes one message synchronously, with backoff; JetStream
// drops it if the first attempt was stored after all.
func (s *Sink) retry(ctx context.Context, subject string, m publish.Message, first error) error {
	err := first
	for attempt := 1; attempt <= s.cfg.Retries; attempt++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt*attempt) * 100 * time.Millisecond):
		}
		var ack *jetstream.PubAck
		if ack, err = s.js.Publish(ctx, subject, m.Body, jetstream.WithMsgID(string(m.Key))); err == nil {
			if ack.Duplicate {
				s.duplicates.Add(1)
			}
			return nil
		}
	}
	return fmt.Errorf("publish message %s to %s: %d attempts failed: %w", m.Key, subject, s.cfg.Retries+1, err)
}

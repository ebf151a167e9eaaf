// Package jssink publishes channel messages to NATS JetStream, one subject
// per channel. Each message carries its idempotency key as Nats-Msg-Id, so
// the stream drops a copy a resumed or retried run publishes again.
// Publish returns once the stream has stored the whole batch.
//
// On servers that support it (NATS 2.12 and later), a batch goes out as one
// fast-ingest batch: the stream acknowledges every few hundred messages
// instead of each one, which spares the broker an acknowledgement per
// message (20-30% more messages per second into an embedded server). On
// older servers, and after a fast batch failed, messages are published
// asynchronously with one acknowledgement each and a bounded number
// outstanding.
package jssink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

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
	// PerMessageAcks turns fast-ingest batches off: every message is
	// acknowledged on its own, as on servers before 2.12. Default: off
	// where the server supports batches; URL parameter acks=each.
	PerMessageAcks bool
	// AckTimeout bounds the wait for a fast batch's acknowledgements;
	// a batch that times out is published again message by message.
	// Default: 30s.
	AckTimeout time.Duration
	// Window is how many batches the engine hands over at once (see
	// publish.Capabilities). Default: DefaultWindow.
	Window int
}

// DefaultWindow keeps the stream in publishing order: a fast batch already
// keeps 750 messages in flight, and on the embedded server a second batch
// in flight measured no faster. A remote server far away may want 2 or more
// (the stream then interleaves batches; keys still de-duplicate).
const DefaultWindow = 1

// batchFlow is how many messages of a fast batch the stream stores per
// acknowledgement, and batchWindow how many acknowledgements may be
// outstanding: up to 750 messages in flight, about what the asynchronous
// path keeps (the server caps the flow at 500). After a fast batch fails,
// the next cooldownBatches batches go message by message, so a stream that
// refuses batches costs one timeout per cooldown, not one per batch.
const (
	batchFlow       = 250
	batchWindow     = 3
	cooldownBatches = 100
)

// Sink is a JetStream channel sink.
type Sink struct {
	cfg Config
	js  jetstream.JetStream
	// duplicates counts publishes the stream dropped as repeats of a key
	// it already held: the messages a resumed run published twice before
	// de-duplication.
	duplicates atomic.Int64
	// cooldown counts the batches still to publish message by message
	// after a fast batch failed.
	cooldown atomic.Int64
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
	if cfg.Window < 0 || cfg.Window > 64 {
		return nil, fmt.Errorf("jssink: Config.Window %d out of range 1..64", cfg.Window)
	}
	cfg.Window = cmp.Or(cfg.Window, DefaultWindow)
	cfg.Duplicates = cmp.Or(cfg.Duplicates, 24*time.Hour)
	cfg.Retries = cmp.Or(cfg.Retries, 5)
	cfg.AckTimeout = cmp.Or(cfg.AckTimeout, 30*time.Second)
	cfg.PerMessageAcks = cfg.PerMessageAcks || cfg.Conn.Param("acks", "") == "each" ||
		!atLeast(cfg.Conn.NC.ConnectedServerVersion(), 2, 12)
	if !strings.Contains(cfg.Subject, "{channel}") {
		return nil, fmt.Errorf("jssink: Config.Subject %q has no {channel}", cfg.Subject)
	}
	js, err := jetstream.New(cfg.Conn.NC, jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight))
	if err != nil {
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	limits, err := cfg.Conn.Limits()
	if err != nil {
		return nil, err
	}
	if limits.MaxAge > 0 && limits.MaxAge < cfg.Duplicates {
		return nil, fmt.Errorf("JetStream URL parameter max_age: %s is shorter than the channel stream's de-duplication window %s", limits.MaxAge, cfg.Duplicates)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       cfg.Stream,
		Subjects:   []string{strings.ReplaceAll(cfg.Subject, "{channel}", "*")},
		Storage:    jetstream.FileStorage,
		Duplicates: cfg.Duplicates,
		// Channel messages are for the senders that read the stream:
		// past its limits the oldest go (docs/configuration.md).
		MaxBytes: cmp.Or(limits.MaxBytes, -1),
		MaxAge:   limits.MaxAge,
		Discard:  jetstream.DiscardOld,
		// Set only where batches are used: servers before 2.12 do not
		// know the setting.
		AllowBatchPublish: !cfg.PerMessageAcks,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Stream, err)
	}
	return &Sink{cfg: cfg, js: js}, nil
}

// Capabilities: Publish may run for several batches at once (the stream
// de-duplicates by key whatever the order); messages are limited by the
// server's max_payload; the stream reports the duplicates it dropped.
func (s *Sink) Capabilities() publish.Capabilities {
	return publish.Capabilities{Window: s.cfg.Window, MaxMessageBytes: s.maxMessageBytes(), Duplicates: s.Duplicates}
}

// Close releases nothing: the connection belongs to its connector, and
// Publish returns only once the stream has stored its batch.
func (s *Sink) Close() error { return nil }

// headerAllowance is the room kept in a NATS message for its headers
// (Nats-Msg-Id with a 64-character key, about 90 bytes, and a fast batch's
// own), which count toward the server's max_payload.
const headerAllowance = 1024

// maxMessageBytes is the largest message body the server takes: its
// max_payload less room for the headers. The engine skips larger messages
// instead of failing the run on "maximum payload exceeded".
func (s *Sink) maxMessageBytes() int {
	return max(int(s.cfg.Conn.NC.MaxPayload())-headerAllowance, 1)
}

// SubjectFor returns a channel's subject.
func (s *Sink) SubjectFor(channel string) string {
	return strings.ReplaceAll(s.cfg.Subject, "{channel}", channel)
}

// Publish publishes a batch and waits until the stream has stored all of it.
func (s *Sink) Publish(ctx context.Context, b *publish.Batch) error {
	subject := s.SubjectFor(string(b.Channel))
	if s.cfg.PerMessageAcks || len(b.Messages) == 0 || s.cooling() {
		return s.publishEach(ctx, subject, b)
	}
	err := s.publishBatch(ctx, subject, b)
	if err == nil || ctx.Err() != nil || errors.Is(err, failpoint.ErrInjected) {
		return err
	}
	s.cooldown.Store(cooldownBatches)
	// Part of the batch may be stored: publishing it again message by
	// message stores the rest, and the stream drops what it has.
	return s.publishEach(ctx, subject, b)
}

// cooling reports whether this batch falls in a cooldown, and counts it.
func (s *Sink) cooling() bool {
	for {
		n := s.cooldown.Load()
		if n <= 0 {
			return false
		}
		if s.cooldown.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// publishBatch publishes b as one fast-ingest batch. With gaps not allowed
// (the default), a batch the stream acknowledges as committed was stored
// whole and in order.
func (s *Sink) publishBatch(ctx context.Context, subject string, b *publish.Batch) error {
	fp, err := jetstreamext.NewFastPublisher(s.js, jetstreamext.FastPublishFlowControl{
		Flow: batchFlow, MaxOutstandingAcks: batchWindow, AckTimeout: s.cfg.AckTimeout,
	})
	if err != nil {
		return fmt.Errorf("start batch to %s: %w", subject, err)
	}
	for i, m := range b.Messages {
		msg := &nats.Msg{Subject: subject, Data: m.Body, Header: nats.Header{jetstream.MsgIDHeader: []string{string(m.Key)}}}
		if _, err := fp.AddMsg(msg); err != nil {
			_, _ = fp.Close(ctx)
			return fmt.Errorf("batch to %s, message %d: %w", subject, i, err)
		}
	}
	if err := s.cfg.Failpoints.Hit(failpoint.BeforeAck); err != nil {
		_, _ = fp.Close(ctx)
		return err
	}
	ack, err := fp.Close(ctx)
	if err != nil {
		return fmt.Errorf("commit batch to %s: %w", subject, err)
	}
	// A batch the stream held every key of stores nothing and commits at
	// sequence 0. A batch it held only some keys of does not say how many:
	// the count is a lower bound.
	if ack.Sequence == 0 {
		s.duplicates.Add(int64(ack.BatchSize))
	}
	return nil
}

// publishEach publishes every message with an acknowledgement of its own.
func (s *Sink) publishEach(ctx context.Context, subject string, b *publish.Batch) error {
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

// atLeast reports whether a server version ("2.12.1", "2.14.0-beta") is at
// least major.minor.
func atLeast(version string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(version, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

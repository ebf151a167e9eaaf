// Package jsqueue is a queue.Queue on NATS JetStream: a work-queue stream
// and a durable pull consumer that every segpub process shares, so each job
// goes to one worker at a time and returns if that worker dies.
package jsqueue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/queue"
)

// Config configures a Queue. Stream, Subject and Consumer default to the
// connection URL's stream, subject and consumer parameters.
type Config struct {
	Conn *natsjs.Conn
	// Stream is the stream's name. Default: SEGPUB_JOBS.
	Stream string
	// Subject is where jobs are published. Default: segpub.jobs.
	Subject string
	// Consumer is the durable consumer all workers share. Default:
	// segpub-worker.
	Consumer string
	// AckWait is how long a job may go without an Extend before JetStream
	// redelivers it. Default: 60s.
	AckWait time.Duration
	// Duplicates is the stream's de-duplication window for Send's
	// dedupID. Default: 24h.
	Duplicates time.Duration
	// MaxMessageBytes bounds a job message. Default: 1 MiB (the server's
	// default max_payload).
	MaxMessageBytes int
}

func (c *Config) defaults() {
	c.Stream = cmp.Or(c.Stream, c.Conn.Param("stream", "SEGPUB_JOBS"))
	c.Subject = cmp.Or(c.Subject, c.Conn.Param("subject", "segpub.jobs"))
	c.Consumer = cmp.Or(c.Consumer, c.Conn.Param("consumer", "segpub-worker"))
	c.AckWait = cmp.Or(c.AckWait, 60*time.Second)
	c.Duplicates = cmp.Or(c.Duplicates, 24*time.Hour)
	if n, err := strconv.Atoi(c.Conn.Param("max_message_bytes", "")); err == nil && c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = n
	}
	c.MaxMessageBytes = cmp.Or(c.MaxMessageBytes, 1<<20)
}

func (c *Config) validate() error {
	if c.AckWait < time.Second {
		return fmt.Errorf("jsqueue: Config.AckWait %s is under a second", c.AckWait)
	}
	return nil
}

// Queue is a JetStream work queue.
type Queue struct {
	cfg  Config
	cons jetstream.Consumer
}

// New creates (or updates) the stream and the consumer.
func New(ctx context.Context, cfg Config) (*Queue, error) {
	if cfg.Conn == nil {
		return nil, errors.New("jsqueue: Config.Conn is required")
	}
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	limits, err := cfg.Conn.Limits()
	if err != nil {
		return nil, err
	}
	stream, err := cfg.Conn.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       cfg.Stream,
		Subjects:   []string{cfg.Subject},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Duplicates: cfg.Duplicates,
		// A full queue refuses new jobs (submit fails and says so)
		// rather than dropping queued ones, and a job never expires
		// unrun: only max_bytes applies to queues.
		MaxBytes: cmp.Or(limits.MaxBytes, -1),
		Discard:  jetstream.DiscardNew,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		FilterSubject: cfg.Subject,
		// Attempts are counted by the worker, which dead-letters with
		// the reason; JetStream must not drop a message on its own.
		MaxDeliver: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", cfg.Consumer, err)
	}
	return &Queue{cfg: cfg, cons: cons}, nil
}

// Receive waits for the next job.
func (q *Queue) Receive(ctx context.Context) (queue.Delivery, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The fetch ends with ctx: a fetch left waiting after ctx ended
		// would take a job nobody is going to run, and hold it for the
		// ack wait.
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := q.cons.Next(jetstream.FetchContext(fctx))
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err == nil:
			md, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read job metadata: %w", err)
			}
			return &delivery{msg: msg, attempt: int(md.NumDelivered), enqueued: md.Timestamp}, nil
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrNoMessages), errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrInvalidOption):
			continue
		case errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected):
			// The server is restarting: wait, as a long poll would.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		default:
			return nil, fmt.Errorf("receive from %s: %w", q.cfg.Stream, err)
		}
	}
}

// Send publishes a job; dedupID becomes Nats-Msg-Id.
func (q *Queue) Send(ctx context.Context, body []byte, dedupID string) error {
	if len(body) > q.cfg.MaxMessageBytes {
		return fmt.Errorf("send %d bytes to %s: %w", len(body), q.cfg.Stream, queue.ErrTooLarge)
	}
	var opts []jetstream.PublishOpt
	if dedupID != "" {
		opts = append(opts, jetstream.WithMsgID(dedupID))
	}
	if _, err := q.cfg.Conn.JS.Publish(ctx, q.cfg.Subject, body, opts...); err != nil {
		return fmt.Errorf("send to %s: %w", q.cfg.Stream, err)
	}
	return nil
}

// MaxMessageBytes returns the largest job Send accepts.
func (q *Queue) MaxMessageBytes() int { return q.cfg.MaxMessageBytes }

// Close does nothing: the connection belongs to the Connector.
func (q *Queue) Close() error { return nil }

type delivery struct {
	msg      jetstream.Msg
	attempt  int
	enqueued time.Time
}

// EnqueuedAt is when the job was stored in the stream.
func (d *delivery) EnqueuedAt() time.Time { return d.enqueued }

func (d *delivery) Body() []byte   { return d.msg.Data() }
func (d *delivery) Attempt() int   { return d.attempt }
func (d *delivery) String() string { return "jetstream message, attempt " + strconv.Itoa(d.attempt) }

func (d *delivery) Ack(ctx context.Context) error {
	if err := d.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("ack job: %w", err)
	}
	return nil
}

func (d *delivery) Nack(_ context.Context, delay time.Duration) error {
	if err := d.msg.NakWithDelay(delay); err != nil {
		return fmt.Errorf("nak job: %w", err)
	}
	return nil
}

func (d *delivery) Extend(_ context.Context) error {
	if err := d.msg.InProgress(); err != nil {
		return fmt.Errorf("extend job: %w", err)
	}
	return nil
}

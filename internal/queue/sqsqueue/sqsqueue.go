// Package sqsqueue is a queue.Queue on Amazon SQS: long polling, batch
// receive, visibility extended while a job runs, delete on success. Several
// segpub processes on several machines share the queue, as SQS intends.
package sqsqueue

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/segpub/segpub/internal/queue"
)

// API is the part of the SQS client the queue uses.
type API interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Config configures a Queue.
type Config struct {
	Client API
	// URL is the queue URL.
	URL string
	// Visibility is how long a received job stays invisible to other
	// workers; Extend renews it. Default: 60s.
	Visibility time.Duration
	// WaitTime is the long-poll wait. Default: 20s (the SQS maximum).
	WaitTime time.Duration
	// Batch is how many messages one receive asks for. Default: 1, so a
	// worker never holds jobs it is not running (they would wait out
	// their visibility instead of going to an idle worker).
	Batch int
	// MaxMessageBytes is the largest body Send accepts: 256 KiB on older
	// queues, up to 1 MiB on newer ones. Default: 262144.
	MaxMessageBytes int
	// GroupID is the MessageGroupId of messages sent to a FIFO queue.
	// Default: segpub.
	GroupID string
}

func (c *Config) validate() error {
	switch {
	case c.Client == nil:
		return errors.New("sqsqueue: Config.Client is required")
	case c.URL == "":
		return errors.New("sqsqueue: Config.URL is required")
	case c.Batch < 0 || c.Batch > 10:
		return fmt.Errorf("sqsqueue: Config.Batch %d out of range 1..10", c.Batch)
	case c.WaitTime > 20*time.Second:
		return fmt.Errorf("sqsqueue: Config.WaitTime %s over SQS's 20s", c.WaitTime)
	case c.Visibility != 0 && (c.Visibility < time.Second || c.Visibility > 12*time.Hour):
		return fmt.Errorf("sqsqueue: Config.Visibility %s out of range 1s..12h", c.Visibility)
	}
	return nil
}

// Queue is an SQS queue.
type Queue struct {
	cfg  Config
	fifo bool

	mu      sync.Mutex
	pending []types.Message
}

// New returns a Queue.
func New(cfg Config) (*Queue, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Visibility = cmp.Or(cfg.Visibility, 60*time.Second)
	cfg.WaitTime = cmp.Or(cfg.WaitTime, 20*time.Second)
	cfg.Batch = cmp.Or(cfg.Batch, 1)
	cfg.MaxMessageBytes = cmp.Or(cfg.MaxMessageBytes, 256<<10)
	cfg.GroupID = cmp.Or(cfg.GroupID, "segpub")
	return &Queue{cfg: cfg, fifo: strings.HasSuffix(cfg.URL, ".fifo")}, nil
}

// Receive long-polls until a job arrives or ctx ends.
func (q *Queue) Receive(ctx context.Context) (queue.Delivery, error) {
	for {
		q.mu.Lock()
		if len(q.pending) > 0 {
			m := q.pending[0]
			q.pending = q.pending[1:]
			q.mu.Unlock()
			return q.delivery(m), nil
		}
		q.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, err := q.cfg.Client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(q.cfg.URL),
			MaxNumberOfMessages:         int32(q.cfg.Batch),
			WaitTimeSeconds:             int32(q.cfg.WaitTime / time.Second),
			VisibilityTimeout:           int32(q.cfg.Visibility / time.Second),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp},
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("receive from %s: %w", q.cfg.URL, err)
		}
		q.mu.Lock()
		q.pending = append(q.pending, out.Messages...)
		q.mu.Unlock()
	}
}

func (q *Queue) delivery(m types.Message) *delivery {
	d := &delivery{q: q, body: []byte(aws.ToString(m.Body)), receipt: aws.ToString(m.ReceiptHandle), attempt: 1}
	if n, err := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil && n > 0 {
		d.attempt = n
	}
	if ms, err := strconv.ParseInt(m.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); err == nil {
		d.sent = time.UnixMilli(ms)
	}
	return d
}

// Send enqueues a job; on a FIFO queue dedupID is its
// MessageDeduplicationId, and an empty one a unique id.
func (q *Queue) Send(ctx context.Context, body []byte, dedupID string) error {
	if len(body) > q.cfg.MaxMessageBytes {
		return fmt.Errorf("send %d bytes to %s: %w", len(body), q.cfg.URL, queue.ErrTooLarge)
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(q.cfg.URL), MessageBody: aws.String(string(body))}
	if q.fifo {
		in.MessageGroupId = aws.String(q.cfg.GroupID)
		// FIFO queues refuse a message without a de-duplication id
		// unless content-based de-duplication is on; an empty dedupID
		// means "no de-duplication" (dead letters send it), so it gets
		// an id of its own.
		if dedupID == "" {
			dedupID = rand.Text()
		}
		in.MessageDeduplicationId = aws.String(dedupID)
	}
	if _, err := q.cfg.Client.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("send to %s: %w", q.cfg.URL, err)
	}
	return nil
}

// MaxMessageBytes returns the configured limit.
func (q *Queue) MaxMessageBytes() int { return q.cfg.MaxMessageBytes }

// Close does nothing; the client is shared.
func (q *Queue) Close() error { return nil }

type delivery struct {
	q       *Queue
	body    []byte
	receipt string
	attempt int
	sent    time.Time
}

func (d *delivery) Body() []byte          { return d.body }
func (d *delivery) Attempt() int          { return d.attempt }
func (d *delivery) EnqueuedAt() time.Time { return d.sent }

func (d *delivery) Ack(ctx context.Context) error {
	if _, err := d.q.cfg.Client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(d.q.cfg.URL), ReceiptHandle: aws.String(d.receipt)}); err != nil {
		return fmt.Errorf("delete job from %s: %w", d.q.cfg.URL, err)
	}
	return nil
}

// Nack makes the job visible again after delay (at most 12 hours).
func (d *delivery) Nack(ctx context.Context, delay time.Duration) error {
	return d.visibility(ctx, min(delay, 12*time.Hour))
}

// Extend keeps the job invisible for another visibility period.
func (d *delivery) Extend(ctx context.Context) error { return d.visibility(ctx, d.q.cfg.Visibility) }

func (d *delivery) visibility(ctx context.Context, v time.Duration) error {
	_, err := d.q.cfg.Client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(d.q.cfg.URL), ReceiptHandle: aws.String(d.receipt), VisibilityTimeout: int32(v / time.Second),
	})
	if err != nil {
		return fmt.Errorf("change visibility on %s: %w", d.q.cfg.URL, err)
	}
	return nil
}

// Package queue declares the job queue segpub consumes and the destinations
// it sends to. Implementations live in subpackages (jsqueue for NATS
// JetStream, sqsqueue for Amazon SQS), pass queuetest, and are chosen by
// URL in internal/endpoint.
package queue

import (
	"context"
	"errors"
	"time"
)

// Queue is a work queue shared by several consumers: each message goes to
// one consumer at a time and comes back if that consumer does not
// acknowledge it.
type Queue interface {
	// Receive waits for the next message. It returns ctx.Err() when ctx
	// ends.
	Receive(ctx context.Context) (Delivery, error)
	// Send enqueues a message. dedupID, when not empty, lets queues that
	// de-duplicate drop a second copy (JetStream's Nats-Msg-Id, SQS FIFO's
	// MessageDeduplicationId).
	Send(ctx context.Context, body []byte, dedupID string) error
	// MaxMessageBytes is the largest body Send accepts.
	MaxMessageBytes() int
	Close() error
}

// Delivery is one received message.
type Delivery interface {
	Body() []byte
	// Attempt is 1 on the first delivery, 2 on the first redelivery...
	Attempt() int
	// Ack removes the message: it has been handled.
	Ack(ctx context.Context) error
	// Nack hands the message back for redelivery after delay.
	Nack(ctx context.Context, delay time.Duration) error
	// Extend tells the queue the message is still being worked on, so it
	// is not redelivered to another consumer meanwhile.
	Extend(ctx context.Context) error
}

// ErrTooLarge is returned by Send for a body over MaxMessageBytes.
var ErrTooLarge = errors.New("message too large for the queue")

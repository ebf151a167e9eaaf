// Package control pauses, resumes and cancels runs in flight, for operators
// (`segpub run`) and for any program that embeds segpub. The ledger records
// the request; the worker holding a run carries it out after the batch in
// hand (internal/worker); this package waits for that, and sends a resumed
// run's job back to the job queue.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segpub/segpub/internal/ledger"
)

// Sender is the part of the job queue a resume uses.
type Sender interface {
	Send(ctx context.Context, body []byte, dedupID string) error
}

// ErrStillRunning is returned when a pause or cancel has not taken effect
// within the wait: the request stands, and the worker will carry it out.
var ErrStillRunning = errors.New("the run has not stopped yet")

// pollEvery is how often Wait reads the ledger.
const pollEvery = 100 * time.Millisecond

// Pause pauses a run and waits, up to wait, until no worker runs it any
// more (0: returns at once).
func Pause(ctx context.Context, led *ledger.Ledger, requestID string, wait time.Duration) (*ledger.Control, error) {
	c, err := led.Pause(ctx, requestID)
	if err != nil {
		return nil, err
	}
	return c, Wait(ctx, led, c, wait)
}

// Cancel cancels a run and waits, up to wait, until no worker runs it any
// more: from then on nothing more of it is published.
func Cancel(ctx context.Context, led *ledger.Ledger, requestID string, wait time.Duration) (*ledger.Control, error) {
	c, err := led.Cancel(ctx, requestID)
	if err != nil {
		return nil, err
	}
	return c, Wait(ctx, led, c, wait)
}

// Resume resumes a paused run: its kept job messages go back to the job
// queue, where any worker takes them and the run goes on from its
// checkpoint.
func Resume(ctx context.Context, led *ledger.Ledger, q Sender, requestID string) (*ledger.Control, error) {
	c, err := led.Resume(ctx, requestID)
	if err != nil {
		return nil, err
	}
	// A de-duplication id of its own: queues that de-duplicate (JetStream,
	// SQS FIFO) would drop a message with the original's as a repeat.
	stamp := time.Now().UnixNano()
	for i, body := range c.Requeue {
		if err := q.Send(ctx, body, fmt.Sprintf("%s#resume-%d-%d", requestID, stamp, i)); err != nil {
			return c, fmt.Errorf("resume run %s: send its job again: %w", requestID, err)
		}
	}
	return c, nil
}

// Reopen lets a failed run (its job exhausted its attempts, now in the
// dead-letter queue) go on from its checkpoint once its cause is fixed:
// the ledger makes it claimable again and the job goes back to the job
// queue. body is the job (the dead letter's "job"); it must carry the
// run's request_id. Nil sends the job the ledger kept, if any.
func Reopen(ctx context.Context, led *ledger.Ledger, q Sender, requestID string, body []byte) (*ledger.Control, error) {
	if body != nil {
		var j struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(body, &j); err != nil {
			return nil, fmt.Errorf("reopen run %s: the job is not JSON: %w", requestID, err)
		}
		if j.RequestID != requestID {
			return nil, fmt.Errorf("reopen run %s: the job's request_id is %q; a job under another request_id is another run (segpub submit)", requestID, j.RequestID)
		}
	}
	c, err := led.Reopen(ctx, requestID, body != nil)
	if err != nil {
		return nil, err
	}
	if body != nil {
		c.Requeue = []json.RawMessage{body}
	}
	stamp := time.Now().UnixNano()
	for i, b := range c.Requeue {
		if err := q.Send(ctx, b, fmt.Sprintf("%s#reopen-%d-%d", requestID, stamp, i)); err != nil {
			return c, fmt.Errorf("reopen run %s: send its job again: %w", requestID, err)
		}
	}
	return c, nil
}

// Wait waits, up to wait, until none of the runs c waits for is running.
// A wait of 0 does not wait: the request stands either way.
func Wait(ctx context.Context, led *ledger.Ledger, c *ledger.Control, wait time.Duration) error {
	if len(c.Waiting) == 0 || wait == 0 {
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		left, err := led.Active(ctx, c.Waiting)
		if err != nil {
			return err
		}
		if len(left) == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: %d still running (%v)", ErrStillRunning, len(left), left)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

// Package claimcheck writes and reads claim checks
// (docs/job.md): a job too large for the job queue is put in the message store and
// the queue carries only an envelope naming it. segpub submit and the
// scheduler send through Send; the worker reads through Resolve.
package claimcheck

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/msgstore"
)

// Sender is the part of the job queue Send uses.
type Sender interface {
	Send(ctx context.Context, body []byte, dedupID string) error
	MaxMessageBytes() int
}

// ErrNoStore means a job is over the queue's size limit and there is no
// message store to hold it: it can never be enqueued as it stands.
var ErrNoStore = errors.New("no message store is configured")

// ID is the message store id of a job: "m-" and the first 12 bytes of
// its SHA-256 in hex, so sending the same job twice stores it once.
func ID(body []byte) string {
	sum := sha256.Sum256(body)
	return "m-" + hex.EncodeToString(sum[:12])
}

// Envelope is the queue message of a claim check naming id.
func Envelope(id string) []byte {
	b, _ := json.Marshal(struct {
		Version   int    `json:"version"`
		MessageID string `json:"message_id"`
	}{1, id})
	return b
}

// Send enqueues body on q: inline when it fits q.MaxMessageBytes(),
// otherwise stored in store under ID(body) with the envelope enqueued. It
// returns the claim check's id, or "" when the job went inline. store may
// be nil when every job fits; a job that does not is then ErrNoStore.
func Send(ctx context.Context, q Sender, store msgstore.Store, body []byte, dedupID string) (string, error) {
	if len(body) <= q.MaxMessageBytes() {
		return "", q.Send(ctx, body, dedupID)
	}
	if store == nil {
		return "", fmt.Errorf("job of %d bytes is over the job queue's limit of %d bytes and %w to hold it as a claim check (--message-store-url)",
			len(body), q.MaxMessageBytes(), ErrNoStore)
	}
	id := ID(body)
	if err := store.Put(ctx, id, body); err != nil {
		return "", fmt.Errorf("store claim-checked job %s: %w", id, err)
	}
	if err := q.Send(ctx, Envelope(id), dedupID); err != nil {
		return "", fmt.Errorf("send claim check %s: %w", id, err)
	}
	return id, nil
}

// Resolve parses a queue message, fetching a claim-checked job from store
// (nil: a claim check is rejected). It returns the job and its JSON. A
// claim check naming a missing, malformed or oversized item is a
// rejection; a store that cannot be read is an error to retry.
func Resolve(ctx context.Context, store msgstore.Store, body []byte, maxJobBytes int64) (*job.Job, []byte, error) {
	env, err := job.ParseEnvelope(body)
	if err != nil {
		return nil, nil, err
	}
	if env.Job != nil {
		return env.Job, body, nil
	}
	if store == nil {
		return nil, nil, job.Rejectf("message_id", "claim check %q, but no message store is configured", env.MessageID)
	}
	full, err := store.Get(ctx, env.MessageID, maxJobBytes)
	if errors.Is(err, msgstore.ErrNotFound) {
		return nil, nil, job.Rejectf("message_id", "no item %q in the message store", env.MessageID)
	}
	if errors.Is(err, msgstore.ErrMalformed) {
		return nil, nil, job.Rejectf("message_id", "item %q of the message store holds no job: %v", env.MessageID, err)
	}
	if errors.Is(err, msgstore.ErrTooLarge) {
		return nil, nil, job.Rejectf("message_id", "item %q in the message store is over the limit of %d bytes (SEGPUB_MAX_JOB_BYTES)", env.MessageID, maxJobBytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get claim-checked job %s: %w", env.MessageID, err)
	}
	j, err := job.Parse(full)
	return j, full, err
}

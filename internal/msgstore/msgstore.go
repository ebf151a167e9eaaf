// Package msgstore declares the claim-check message store: jobs too large
// for the queue are stored here and the queue carries only their id
// (docs/job.md). Implementations: pgstore (a PostgreSQL table) and
// dynamostore (Amazon DynamoDB).
package msgstore

import (
	"context"
	"errors"
)

// Store holds job bodies by id.
type Store interface {
	// Get returns the body stored under id, ErrNotFound, or ErrTooLarge
	// when the body is over maxBytes (checked before the body is fetched
	// where the store can tell its size).
	Get(ctx context.Context, id string, maxBytes int64) ([]byte, error)
	// Put stores body under id (segpub submit uses it for large jobs).
	Put(ctx context.Context, id string, body []byte) error
}

// ErrNotFound means no item has the id: the job is rejected.
var ErrNotFound = errors.New("no message with that id")

// ErrMalformed means the item exists but holds no job body (DynamoDB: no
// string attribute body): it never will, so the job is rejected too.
var ErrMalformed = errors.New("message has no string body")

// ErrTooLarge means the item's body is over the job size cap: the job is
// rejected.
var ErrTooLarge = errors.New("message over the size limit")

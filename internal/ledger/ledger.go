// Package ledger is segpub's record of runs, in PostgreSQL: one row per
// request_id with its status, attempts, counts and result. It makes jobs
// idempotent (docs/job.md): a request_id that completed is never
// run again however late a copy arrives, and a run is leased to one worker
// at a time, so two copies delivered to two workers do not both publish.
//
// The rows and the SQL on them belong to internal/state, which owns all of
// segpub's tables; this package is the run ledger as the worker, the
// console and `segpub run` use it.
package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/state"
)

// Status is a run's state (state.Status).
type Status = state.Status

// The run statuses (state's constants).
const (
	Running    = state.Running
	Retrying   = state.Retrying
	HandedBack = state.HandedBack
	Scanning   = state.Scanning
	Publishing = state.Publishing
	Completed  = state.Completed
	Rejected   = state.Rejected
	Failed     = state.Failed
	Paused     = state.Paused
	Cancelled  = state.Cancelled
)

type (
	// Run is a ledger row.
	Run = state.Run
	// Start is what Claim needs to know of a job.
	Start = state.Start
	// Claim is the outcome of asking to run a job.
	Claim = state.Claim
	// Outcome is how an attempt of a run ended, recorded by Finish.
	Outcome = state.Outcome
	// Control is what a pause, resume or cancel did.
	Control = state.Control
)

var (
	// ErrNotFound is returned by Get for an unknown request_id.
	ErrNotFound = state.ErrNotFound
	// ErrLeaseLost means another owner holds the run now.
	ErrLeaseLost = state.ErrLeaseLost
	// ErrPauseRequested and ErrCancelRequested tell the worker holding a
	// run that an operator asked it to stop after the batch in hand.
	ErrPauseRequested  = state.ErrPauseRequested
	ErrCancelRequested = state.ErrCancelRequested
	// ErrFinished is returned when a finished run is paused, resumed or
	// cancelled.
	ErrFinished = state.ErrFinished
	// ErrNotPaused is returned by Resume for a run that is not paused.
	ErrNotPaused = state.ErrNotPaused
	// ErrPartition is returned when a partition is paused, resumed or
	// cancelled: its partitioned run is controlled as a whole.
	ErrPartition = state.ErrPartition
	// ErrNotFailed and ErrNoJob are Reopen's: the run did not fail, or
	// the ledger keeps no job for it.
	ErrNotFailed = state.ErrNotFailed
	ErrNoJob     = state.ErrNoJob
)

// Ledger reads and writes runs: claims, leases, checkpoints, outcomes and
// operators' stop requests (state.Runs has the queries). An error it
// records is redacted first: a URL's password quoted in it never reaches
// `segpub status` or the console.
type Ledger struct {
	*state.Runs
}

// New returns a Ledger on pool, migrating segpub's tables if needed (they
// are created by `segpub serve` at start too).
func New(ctx context.Context, pool *pgxpool.Pool) (*Ledger, error) {
	r, err := state.NewRuns(ctx, pool)
	if err != nil {
		return nil, err
	}
	return &Ledger{Runs: r}, nil
}

// JobFingerprint identifies a job by its content: the SHA-256 of its
// canonical JSON (keys sorted, no insignificant space, numbers as
// written), so every copy of one job has it whatever its layout, and a
// different job sent under the same request_id has another.
func JobFingerprint(job []byte) string {
	var v any
	d := json.NewDecoder(bytes.NewReader(job))
	d.UseNumber()
	canonical := job
	if d.Decode(&v) == nil {
		if b, err := json.Marshal(v); err == nil {
			canonical = b
		}
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

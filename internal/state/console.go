package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Records are what the service records for the console as it happens,
// because the event stream and the dead-letter queue cannot be browsed:
// run events and throughput samples (segpub_console_events) and dead
// letters (segpub_dead_letters).
type Records struct {
	pool *pgxpool.Pool
}

// RecordsOn returns the console's records of pool's database, whose tables
// Migrate creates.
func RecordsOn(pool *pgxpool.Pool) *Records { return &Records{pool: pool} }

// Event is a recorded run event or sample.
type Event struct {
	RequestID, Type string
	At              time.Time
	Attempt         int
	// Part names the partition (lane) a sample counts.
	Part                  string
	Candidates, Published int64
	Error                 string
	// Detail is the event's JSON detail (nil: none).
	Detail []byte
}

// AddEvent records an event.
func (r *Records) AddEvent(ctx context.Context, e Event) error {
	if _, err := r.pool.Exec(ctx, `INSERT INTO segpub_console_events (request_id, type, at, attempt, part, candidates, published, error, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, e.RequestID, e.Type, e.At, e.Attempt, e.Part, e.Candidates, e.Published, e.Error, e.Detail); err != nil {
		return fmt.Errorf("record %s event of %s: %w", e.Type, e.RequestID, err)
	}
	return nil
}

// PruneEvents deletes the events recorded before cutoff.
func (r *Records) PruneEvents(ctx context.Context, cutoff time.Time) error {
	if _, err := r.pool.Exec(ctx, `DELETE FROM segpub_console_events WHERE at < $1`, cutoff); err != nil {
		return fmt.Errorf("prune events: %w", err)
	}
	return nil
}

// Timeline returns a run's latest events, at most limit, oldest first,
// leaving out those of the types in except.
func (r *Records) Timeline(ctx context.Context, requestID string, except []string, limit int) ([]Event, error) {
	rows, err := r.pool.Query(ctx, `SELECT at, type, attempt, candidates, published, error FROM (
  SELECT * FROM segpub_console_events WHERE request_id = $1 AND type <> ALL($2) ORDER BY at DESC, id DESC LIMIT $3) e
ORDER BY at, id`, requestID, except, limit)
	if err != nil {
		return nil, fmt.Errorf("timeline of %s: %w", requestID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		e := Event{RequestID: requestID}
		err := row.Scan(&e.At, &e.Type, &e.Attempt, &e.Candidates, &e.Published, &e.Error)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("timeline of %s: %w", requestID, err)
	}
	return out, nil
}

// Latest returns a run's latest events of type typ, at most limit, oldest
// first.
func (r *Records) Latest(ctx context.Context, requestID, typ string, limit int) ([]Event, error) {
	rows, err := r.pool.Query(ctx, `SELECT at, part, published, detail FROM (
  SELECT * FROM segpub_console_events WHERE request_id = $1 AND type = $2 ORDER BY at DESC, id DESC LIMIT $3) e ORDER BY at, id`,
		requestID, typ, limit)
	if err != nil {
		return nil, fmt.Errorf("%s events of %s: %w", typ, requestID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		e := Event{RequestID: requestID, Type: typ}
		err := row.Scan(&e.At, &e.Part, &e.Published, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("%s events of %s: %w", typ, requestID, err)
	}
	return out, nil
}

// LatestPerPart returns a run's latest event of type typ in each part
// (lane), by part.
func (r *Records) LatestPerPart(ctx context.Context, requestID, typ string) ([]Event, error) {
	rows, err := r.pool.Query(ctx, `SELECT DISTINCT ON (part) at, part, published, detail FROM segpub_console_events
WHERE request_id = $1 AND type = $2 ORDER BY part, at DESC, id DESC`, requestID, typ)
	if err != nil {
		return nil, fmt.Errorf("latest %s events of %s: %w", typ, requestID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		e := Event{RequestID: requestID, Type: typ}
		err := row.Scan(&e.At, &e.Part, &e.Published, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("latest %s events of %s: %w", typ, requestID, err)
	}
	return out, nil
}

// FirstEvent is when a run first had an event of type typ (zero: never).
func (r *Records) FirstEvent(ctx context.Context, requestID, typ string) (time.Time, error) {
	var at *time.Time
	err := r.pool.QueryRow(ctx, `SELECT min(at) FROM segpub_console_events WHERE request_id = $1 AND type = $2`, requestID, typ).Scan(&at)
	if err != nil {
		return time.Time{}, fmt.Errorf("first %s event of %s: %w", typ, requestID, err)
	}
	if at == nil {
		return time.Time{}, nil
	}
	return *at, nil
}

// DeadLetter is a recorded dead letter, with what the ledger says of its
// run.
type DeadLetter struct {
	ID        int64
	RequestID string
	Kind      string
	Reason    string
	Attempts  int
	FailedAt  time.Time
	// Replayable: the dead letter holds a job (not an unreadable or
	// oversized body).
	Replayable      bool
	ReplayedAt      *time.Time
	ReplayRequestID string
	// RunStatus and Published are the original run's, from the ledger
	// ("" when it has no row): what a replay would send again.
	RunStatus Status
	Published int64
}

// DeadLetter returns dead letter id and its body: JSON (body), or the
// bytes jsonb could not hold (raw); ErrNoDeadLetter when there is none.
func (r *Records) DeadLetter(ctx context.Context, id int64) (d DeadLetter, body, raw []byte, err error) {
	err = r.pool.QueryRow(ctx, `SELECT id, request_id, kind, reason, attempts, failed_at, replayed_at, coalesce(replay_request_id, ''),
  body::text, raw FROM segpub_dead_letters WHERE id = $1`, id).Scan(&d.ID, &d.RequestID, &d.Kind, &d.Reason, &d.Attempts, &d.FailedAt,
		&d.ReplayedAt, &d.ReplayRequestID, &body, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, nil, nil, fmt.Errorf("dead letter %d: %w", id, ErrNoDeadLetter)
	}
	if err != nil {
		return d, nil, nil, fmt.Errorf("dead letter %d: %w", id, err)
	}
	return d, body, raw, nil
}

// AddDeadLetter records a dead letter and its body (the worker's JSON). A
// body jsonb cannot hold (a \u0000 escape, a number past numeric's range)
// is kept as its bytes (raw), shown escaped.
func (r *Records) AddDeadLetter(ctx context.Context, d DeadLetter, body []byte) error {
	const insert = `INSERT INTO segpub_dead_letters (request_id, kind, reason, attempts, failed_at, body, raw) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	_, err := r.pool.Exec(ctx, insert, d.RequestID, d.Kind, d.Reason, d.Attempts, d.FailedAt, body, nil)
	if err != nil && ctx.Err() == nil {
		_, err = r.pool.Exec(ctx, insert, d.RequestID, d.Kind, d.Reason, d.Attempts, d.FailedAt, nil, body)
	}
	if err != nil {
		return fmt.Errorf("record dead letter of %s: %w", d.RequestID, err)
	}
	return nil
}

// PruneDeadLetters deletes the dead letters that failed before cutoff.
func (r *Records) PruneDeadLetters(ctx context.Context, cutoff time.Time) error {
	if _, err := r.pool.Exec(ctx, `DELETE FROM segpub_dead_letters WHERE failed_at < $1`, cutoff); err != nil {
		return fmt.Errorf("prune dead letters: %w", err)
	}
	return nil
}

// DeadLetters returns the latest dead letters, at most limit, newest
// first.
func (r *Records) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	rows, err := r.pool.Query(ctx, `SELECT d.id, d.request_id, d.kind, d.reason, d.attempts, d.failed_at, coalesce(d.body ? 'job', false),
  d.replayed_at, coalesce(d.replay_request_id, ''), coalesce(r.status, ''), coalesce(r.published, 0)
FROM segpub_dead_letters d LEFT JOIN segpub_runs r ON r.request_id = d.request_id AND d.request_id <> ''
ORDER BY d.failed_at DESC, d.id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[DeadLetter])
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

var (
	// ErrReplayed is returned by Replay for a dead letter replayed before.
	ErrReplayed = errors.New("replayed already")
	// ErrNoDeadLetter is returned by Replay for an unknown dead letter.
	ErrNoDeadLetter = errors.New("no such dead letter")
)

// Replay replays dead letter id once: under its lock (two operators
// pressing replay at once send it once), send sends the job its body
// holds and returns the replay's request_id, which is recorded. A dead
// letter replayed before gives ErrReplayed, an unknown one ErrNoDeadLetter.
func (r *Records) Replay(ctx context.Context, id int64, send func(ctx context.Context, body []byte) (string, error)) (string, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var body []byte
	var replayed *string
	err = tx.QueryRow(ctx, `SELECT coalesce(convert_to(body::text, 'UTF8'), raw), replay_request_id FROM segpub_dead_letters WHERE id = $1 FOR UPDATE`,
		id).Scan(&body, &replayed)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("dead letter %d: %w", id, ErrNoDeadLetter)
	}
	if err != nil {
		return "", fmt.Errorf("replay dead letter %d: %w", id, err)
	}
	if replayed != nil {
		return "", fmt.Errorf("dead letter %d was %w, as %s", id, ErrReplayed, *replayed)
	}
	newID, err := send(ctx, body)
	if err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `UPDATE segpub_dead_letters SET replayed_at = now(), replay_request_id = $2 WHERE id = $1`, id, newID); err != nil {
		return "", fmt.Errorf("record replay of dead letter %d: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("record replay of dead letter %d: %w", id, err)
	}
	return newID, nil
}

package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/redact"
)

// Partitions are a partitioned run's rows (internal/partition): the plan
// and job on the run's row (segpub_runs.plan, .job), and the destinations
// each range's scan found (segpub_partition_destinations). The ranges' own
// runs are ordinary runs (Runs) whose parent is the run.
type Partitions struct {
	pool *pgxpool.Pool
}

// PartitionsOn returns the partitioned runs of pool's database, whose
// tables Migrate creates.
func PartitionsOn(pool *pgxpool.Pool) *Partitions { return &Partitions{pool: pool} }

// Split turns a claimed run into a partitioned one (status scanning, its
// job and plan stored) and, in the same transaction, runs send (which
// enqueues the scan phase). Only the run's owner can do it.
func (r *Partitions) Split(ctx context.Context, requestID, owner string, jobBody, plan json.RawMessage, send func(context.Context) error) error {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("partition run %s: %w", requestID, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	tag, err := tx.Exec(ctx, `UPDATE segpub_runs SET status = 'scanning', job = $3, plan = $4, owner = NULL, lease_until = NULL, updated_at = now()
WHERE request_id = $1 AND owner = $2 AND status = 'running'`, requestID, owner, jobBody, plan)
	if err != nil {
		return fmt.Errorf("partition run %s: %w", requestID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("partition run %s: %w", requestID, ErrLeaseLost)
	}
	if err := send(ctx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("partition run %s: %w", requestID, err)
	}
	return nil
}

// Partitioned is a partitioned run as recorded.
type Partitioned struct {
	Job, Plan json.RawMessage
	Reference time.Time
	// Status is the run's status as stored: its phase while it runs, even
	// paused.
	Status Status
}

// Load returns a partitioned run's job, plan, reference time and status;
// ErrNotFound when there is no such run.
func (r *Partitions) Load(ctx context.Context, requestID string) (*Partitioned, error) {
	var s Partitioned
	err := r.pool.QueryRow(ctx, `SELECT job, plan, reference_time, status FROM segpub_runs WHERE request_id = $1`, requestID).
		Scan(&s.Job, &s.Plan, &s.Reference, &s.Status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get partitioned run %s: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get partitioned run %s: %w", requestID, err)
	}
	return &s, nil
}

// Exists reports whether the ledger has a run with this request_id.
func (r *Partitions) Exists(ctx context.Context, requestID string) (bool, error) {
	var ok bool
	if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM segpub_runs WHERE request_id = $1)`, requestID).Scan(&ok); err != nil {
		return false, fmt.Errorf("run %s: %w", requestID, err)
	}
	return ok, nil
}

// RecordScan stores the destinations a range's scan found, replacing an
// earlier attempt's.
func (r *Partitions) RecordScan(ctx context.Context, requestID string, part int, fps []uint64) error {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record scan of %s part %d: %w", requestID, part, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `DELETE FROM segpub_partition_destinations WHERE request_id = $1 AND part = $2`, requestID, part); err != nil {
		return fmt.Errorf("record scan of %s part %d: %w", requestID, part, err)
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"segpub_partition_destinations"}, []string{"request_id", "part", "fp"},
		pgx.CopyFromSlice(len(fps), func(i int) ([]any, error) { return []any{requestID, part, int64(fps[i])}, nil }))
	if err != nil {
		return fmt.Errorf("record scan of %s part %d: %w", requestID, part, err)
	}
	return tx.Commit(ctx)
}

// takenSQL is taken's query. It reads the run's rows of this range and the
// earlier ones once, grouped by destination: a destination the range
// shares with an earlier one is taken, and the groups with an earlier range
// are the offset. Its shape is chosen so that no plan is worse than linear
// in the run's rows, whatever the statistics say: the rows were just copied
// in and are not analyzed yet, and a join (the former EXISTS) planned on a
// one-row estimate became a nested loop that compared every row with every
// earlier one for hours (docs/decisions.md, "The partition advance's
// plan").
const takenSQL = `SELECT count(*) FILTER (WHERE lo < $2), coalesce(array_agg(fp) FILTER (WHERE lo < $2 AND hi = $2), '{}')
FROM (SELECT fp, min(part) AS lo, max(part) AS hi FROM segpub_partition_destinations
      WHERE request_id = $1 AND part <= $2 GROUP BY fp) d`

// takenPlan leaves takenSQL one way to read the rows, transaction-local: a
// bitmap scan of the index, which reads each of the run's heap pages once.
// On its one-row estimate the planner would walk the index in fp order and
// fetch every row from the heap (freshly copied pages are not marked
// all-visible), one random read per row: 51 to 68 s against 13 s for the
// last of 4 ranges at 10M users. A sequential scan would read every
// earlier run's rows too.
const takenPlan = `SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off; SET LOCAL enable_seqscan = off`

// Taken returns the destinations of a range that earlier ranges publish,
// and how many distinct destinations those earlier ranges publish in all
// (the range's first message number).
func (r *Partitions) Taken(ctx context.Context, requestID string, part int) ([]uint64, int64, error) {
	var offset int64
	var fps []int64
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, takenPlan); err != nil {
			return err
		}
		return tx.QueryRow(ctx, takenSQL, requestID, part).Scan(&offset, &fps)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("taken destinations of %s part %d: %w", requestID, part, err)
	}
	taken := make([]uint64, len(fps))
	for i, v := range fps {
		taken[i] = uint64(v)
	}
	return taken, offset, nil
}

// Advance is one move of a partitioned run from phase From to To.
type Advance struct {
	RequestID string
	From, To  Status
	// Parts is the number of ranges; ChildPrefix names the current
	// phase's runs.
	Parts       int
	ChildPrefix string
	// Summarize, when set, builds the run's result from its completed
	// ranges' results, read under the run's lock, so the result counts
	// every range.
	Summarize func([]json.RawMessage) (json.RawMessage, error)
	// Send, when set, enqueues the next phase in the same transaction.
	Send func(context.Context) error
}

// Advance moves a partitioned run to its next phase when every range of
// the current one has completed. It reports whether this call advanced it:
// when several ranges finish at once, exactly one does.
func (r *Partitions) Advance(ctx context.Context, a Advance) (bool, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("advance run %s: %w", a.RequestID, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Lock the run's row first: concurrent last ranges serialize here, and
	// the second sees the new status.
	var st Status
	if err := tx.QueryRow(ctx, `SELECT status FROM segpub_runs WHERE request_id = $1 FOR UPDATE`, a.RequestID).Scan(&st); err != nil {
		return false, fmt.Errorf("advance run %s: %w", a.RequestID, err)
	}
	if st != a.From {
		return false, nil
	}
	var done int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM segpub_runs WHERE parent = $1 AND request_id LIKE $2 AND status = 'completed'`,
		a.RequestID, a.ChildPrefix+"%").Scan(&done); err != nil {
		return false, fmt.Errorf("advance run %s: %w", a.RequestID, err)
	}
	if done < a.Parts {
		return false, nil
	}
	var result json.RawMessage
	if a.Summarize != nil {
		rows, err := tx.Query(ctx, `SELECT result FROM segpub_runs WHERE parent = $1 AND request_id LIKE $2 AND status = 'completed' ORDER BY request_id`,
			a.RequestID, a.ChildPrefix+"%")
		if err != nil {
			return false, fmt.Errorf("advance run %s: %w", a.RequestID, err)
		}
		results, err := pgx.CollectRows(rows, pgx.RowTo[json.RawMessage])
		if err != nil {
			return false, fmt.Errorf("advance run %s: %w", a.RequestID, err)
		}
		if result, err = a.Summarize(results); err != nil {
			return false, fmt.Errorf("advance run %s: %w", a.RequestID, err)
		}
	}
	finished := "NULL"
	if a.To.Final() {
		finished = "now()"
	}
	// The counts columns follow the summed result, so the completed run
	// reads like any other.
	if _, err := tx.Exec(ctx, `UPDATE segpub_runs SET status = $2, result = coalesce($3, result),
  candidates = coalesce(($3::jsonb->>'candidates')::bigint, candidates), published = coalesce(($3::jsonb->>'published')::bigint, published),
  updated_at = now(), finished_at = `+finished+`
WHERE request_id = $1`, a.RequestID, a.To, result); err != nil {
		return false, fmt.Errorf("advance run %s: %w", a.RequestID, err)
	}
	if a.Send != nil {
		if err := a.Send(ctx); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("advance run %s: %w", a.RequestID, err)
	}
	return true, nil
}

// Fail marks a partitioned run failed when one of its ranges failed for
// good.
func (r *Partitions) Fail(ctx context.Context, requestID, reason string) error {
	_, err := r.pool.Exec(ctx, `UPDATE segpub_runs SET status = 'failed', error = $2, updated_at = now(), finished_at = now()
WHERE request_id = $1 AND status IN ('scanning', 'publishing')`, requestID, redact.Text(reason))
	if err != nil {
		return fmt.Errorf("fail partitioned run %s: %w", requestID, err)
	}
	return nil
}

// CreatedAt is when the run was first claimed.
func (r *Partitions) CreatedAt(ctx context.Context, requestID string) (time.Time, error) {
	var t time.Time
	if err := r.pool.QueryRow(ctx, `SELECT created_at FROM segpub_runs WHERE request_id = $1`, requestID).Scan(&t); err != nil {
		return t, fmt.Errorf("creation of run %s: %w", requestID, err)
	}
	return t, nil
}

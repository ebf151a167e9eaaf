// Package ledger is segpub's record of runs, in PostgreSQL: one row per
// request_id with its status, attempts, counts and result. It makes jobs
// idempotent (CONTRACT.md section 2): a request_id that completed is never
// run again however late a copy arrives, and a run is leased to one worker
// at a time, so two copies delivered to two workers do not both publish.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/ddl"
)

// Status is a run's state.
type Status string

const (
	Running  Status = "running"
	Retrying Status = "retrying"
	// HandedBack is a run its worker stopped when shutting down and handed
	// back to the queue: not a failure; the next worker resumes it from
	// its checkpoint.
	HandedBack Status = "handed_back"
	// Scanning and Publishing are a partitioned run's phases: its
	// partitions run as runs of their own.
	Scanning   Status = "scanning"
	Publishing Status = "publishing"
	Completed  Status = "completed"
	Rejected   Status = "rejected"
	Failed     Status = "failed"
	// Paused runs keep their checkpoint and wait for a resume; Cancelled
	// runs stopped for good at an operator's request.
	Paused    Status = "paused"
	Cancelled Status = "cancelled"
)

// Final reports whether a run in this state never runs again.
func (s Status) Final() bool { return s == Completed || s == Rejected || s == Failed || s == Cancelled }

// Schema creates the ledger's table. It is segpub's own table (not the
// audience's), created by `segpub migrate` and by `segpub serve` at start.
const Schema = `CREATE TABLE IF NOT EXISTS segpub_runs (
  request_id     text PRIMARY KEY,
  project_id     text NOT NULL,
  campaign_id    text NOT NULL,
  action         text NOT NULL,
  status         text NOT NULL,
  attempts       int  NOT NULL DEFAULT 0,
  owner          text,
  lease_until    timestamptz,
  reference_time timestamptz NOT NULL,
  candidates     bigint NOT NULL DEFAULT 0,
  published      bigint NOT NULL DEFAULT 0,
  result         jsonb,
  error          text,
  checkpoint     jsonb,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS parent text;
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS job jsonb;
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS plan jsonb;
CREATE INDEX IF NOT EXISTS segpub_runs_parent ON segpub_runs (parent) WHERE parent IS NOT NULL;
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS control text;
CREATE TABLE IF NOT EXISTS segpub_partition_destinations (
  request_id text NOT NULL,
  part       int  NOT NULL,
  fp         bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS segpub_partition_destinations_fp ON segpub_partition_destinations (request_id, fp, part)`

// Ledger reads and writes runs.
type Ledger struct {
	pool *pgxpool.Pool
}

// New returns a Ledger on pool, creating its table if needed.
func New(ctx context.Context, pool *pgxpool.Pool) (*Ledger, error) {
	if err := ddl.Apply(ctx, pool, "ledger table", Schema); err != nil {
		return nil, err
	}
	return &Ledger{pool: pool}, nil
}

// Run is a ledger row.
type Run struct {
	RequestID  string          `json:"request_id"`
	ProjectID  string          `json:"project_id"`
	CampaignID string          `json:"campaign_id"`
	Action     string          `json:"action"`
	Status     Status          `json:"status"`
	Attempts   int             `json:"attempts"`
	Owner      string          `json:"owner,omitempty"`
	LeaseUntil *time.Time      `json:"lease_until,omitempty"`
	Reference  time.Time       `json:"reference_time"`
	Candidates int64           `json:"candidates"`
	Published  int64           `json:"published"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	// Checkpoint is the engine's position after the last acknowledged
	// batch; a resumed run publishes only past it.
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
}

const columns = `request_id, project_id, campaign_id, action, status, attempts, coalesce(owner, ''), lease_until, reference_time,
candidates, published, result, coalesce(error, ''), checkpoint, created_at, updated_at, finished_at`

func scan(row pgx.Row) (*Run, error) {
	var r Run
	err := row.Scan(&r.RequestID, &r.ProjectID, &r.CampaignID, &r.Action, &r.Status, &r.Attempts, &r.Owner, &r.LeaseUntil,
		&r.Reference, &r.Candidates, &r.Published, &r.Result, &r.Error, &r.Checkpoint, &r.CreatedAt, &r.UpdatedAt, &r.FinishedAt)
	return &r, err
}

// ErrNotFound is returned by Get for an unknown request_id.
var ErrNotFound = errors.New("no run with that request_id")

// partsColumns is columns for a partitioned run in progress (scanning,
// publishing), whose own row holds no counts: its candidates and published
// are the sums of its current phase's partitions.
var partsColumns = strings.NewReplacer("candidates, published,", `CASE WHEN r.status IN ('scanning', 'publishing') THEN coalesce((
  SELECT sum(c.candidates) FROM segpub_runs c WHERE c.parent = r.request_id
   AND starts_with(c.request_id, r.request_id || CASE r.status WHEN 'scanning' THEN '#scan-' ELSE '#publish-' END)), 0)::bigint
  ELSE r.candidates END,
CASE WHEN r.status = 'publishing' THEN coalesce((
  SELECT sum(c.published) FROM segpub_runs c WHERE c.parent = r.request_id AND starts_with(c.request_id, r.request_id || '#publish-')), 0)::bigint
  ELSE r.published END,`).Replace(columns)

// Get returns a run. A partitioned run in progress shows the sums of its
// partitions' counts.
func (l *Ledger) Get(ctx context.Context, requestID string) (*Run, error) {
	r, err := scan(l.pool.QueryRow(ctx, `SELECT `+partsColumns+` FROM segpub_runs r WHERE request_id = $1`, requestID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get run %s: %w", requestID, err)
	}
	return r, nil
}

// Claim is the outcome of asking to run a job.
type Claim struct {
	// Run is the run's row after the claim.
	Run *Run
	// Granted is true when the caller now holds the run's lease and must
	// run it. Otherwise Run says why: a final status, or another owner's
	// live lease.
	Granted bool
}

// Start is what Claim needs to know of a job.
type Start struct {
	RequestID, ProjectID, CampaignID, Action string
	// Reference is the reference time for a first run; a run that
	// started before keeps its own, so a resumed run renders templates
	// and send_at the same way.
	Reference time.Time
	// Parent is the partitioned run a partition's run belongs to.
	Parent string
}

// Claim takes the lease of a run for owner, creating the run on its first
// delivery. It is not granted when the run is final, or running under a
// lease that has not expired, whoever holds it: two copies of a job taken
// by two slots of the same worker must not both run. A run handed back
// (retrying, handed_back) can be claimed at once.
func (l *Ledger) Claim(ctx context.Context, s Start, owner string, lease time.Duration) (*Claim, error) {
	r, err := scan(l.pool.QueryRow(ctx, `INSERT INTO segpub_runs AS r
  (request_id, project_id, campaign_id, action, status, attempts, owner, lease_until, reference_time, parent)
VALUES ($1, $2, $3, $4, 'running', 1, $5, now() + $6::interval, $7, nullif($8, ''))
ON CONFLICT (request_id) DO UPDATE SET
  status = 'running', attempts = r.attempts + 1, owner = EXCLUDED.owner,
  lease_until = EXCLUDED.lease_until, updated_at = now(), error = NULL
WHERE r.status IN ('retrying', 'handed_back')
   OR (r.status = 'running' AND (r.lease_until IS NULL OR r.lease_until < now()))
RETURNING `+columns, s.RequestID, s.ProjectID, s.CampaignID, s.Action, owner, lease.String(), s.Reference, s.Parent))
	if err == nil {
		return &Claim{Run: r, Granted: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("claim run %s: %w", s.RequestID, err)
	}
	r, err = l.Get(ctx, s.RequestID)
	if err != nil {
		return nil, err
	}
	return &Claim{Run: r}, nil
}

// Renew extends the lease and records progress. It fails when the caller
// no longer owns the run (its lease expired and another worker took it): the
// caller must stop. ErrPauseRequested and ErrCancelRequested mean the
// progress was recorded and an operator asked the run to stop.
func (l *Ledger) Renew(ctx context.Context, requestID, owner string, lease time.Duration, candidates, published int64) error {
	var control *string
	err := l.pool.QueryRow(ctx, `UPDATE segpub_runs SET lease_until = now() + $3::interval, candidates = $4, published = $5, updated_at = now()
WHERE request_id = $1 AND owner = $2 AND status = 'running' RETURNING control`, requestID, owner, lease.String(), candidates, published).Scan(&control)
	return held("renew", requestID, control, err)
}

// held turns the outcome of an update of a held run into ErrLeaseLost
// (no row: another owner has it) or an operator's stop request.
func held(op, requestID string, control *string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s run %s: %w", op, requestID, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("%s run %s: %w", op, requestID, err)
	}
	if control != nil {
		switch *control {
		case controlPause:
			return ErrPauseRequested
		case controlCancel:
			return ErrCancelRequested
		}
	}
	return nil
}

// Checkpoint records a run's position after an acknowledged batch. Like
// Renew, it fails with ErrLeaseLost when the caller no longer owns the run,
// and reports a stop request once the position is recorded.
func (l *Ledger) Checkpoint(ctx context.Context, requestID, owner string, checkpoint json.RawMessage, published int64) error {
	var control *string
	err := l.pool.QueryRow(ctx, `UPDATE segpub_runs SET checkpoint = $3, published = $4, updated_at = now()
WHERE request_id = $1 AND owner = $2 AND status = 'running' RETURNING control`, requestID, owner, checkpoint, published).Scan(&control)
	return held("checkpoint", requestID, control, err)
}

// Release ends an attempt that has no result (it failed before or while
// running, or was handed back): the status and error are recorded and the
// lease released, while the counts stay those of its last checkpoint, so
// `segpub status` keeps showing what was published.
func (l *Ledger) Release(ctx context.Context, requestID, owner string, status Status, errText string) error {
	finished := "NULL"
	if status.Final() {
		finished = "now()"
	}
	tag, err := l.pool.Exec(ctx, `UPDATE segpub_runs SET status = $3, error = nullif($4, ''),
  owner = NULL, lease_until = NULL, updated_at = now(), finished_at = `+finished+`
WHERE request_id = $1 AND (owner = $2 OR owner IS NULL) AND status NOT IN ('completed', 'rejected')`,
		requestID, owner, status, errText)
	if err != nil {
		return fmt.Errorf("release run %s: %w", requestID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("release run %s: %w", requestID, ErrLeaseLost)
	}
	return nil
}

// ErrLeaseLost means another owner holds the run now.
var ErrLeaseLost = errors.New("lease lost to another worker")

// Finish records a run's end: completed or rejected with its result, or
// failed (finally) or retrying with the error. The lease is released.
func (l *Ledger) Finish(ctx context.Context, requestID, owner string, status Status, candidates, published int64, result json.RawMessage, errText string) error {
	finished := "NULL"
	if status.Final() {
		finished = "now()"
	}
	tag, err := l.pool.Exec(ctx, `UPDATE segpub_runs SET status = $3, candidates = $4, published = $5, result = $6, error = nullif($7, ''),
  owner = NULL, lease_until = NULL, updated_at = now(), finished_at = `+finished+`
WHERE request_id = $1 AND (owner = $2 OR owner IS NULL) AND status NOT IN ('completed', 'rejected', 'cancelled')`,
		requestID, owner, status, candidates, published, result, errText)
	if err != nil {
		return fmt.Errorf("finish run %s: %w", requestID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish run %s: %w", requestID, ErrLeaseLost)
	}
	return nil
}

// HandBack releases a run interrupted by a graceful stop (status handed_back)
// and takes back the attempt its claim counted: the run did not fail, the
// process was asked to stop. A run that never gets here (the process
// crashed, was killed, or was stopped hard after its grace period) keeps
// the attempt, so a job that crashes its worker ends in the dead-letter
// destination after its last attempt.
func (l *Ledger) HandBack(ctx context.Context, requestID, owner string, candidates, published int64, reason string) error {
	tag, err := l.pool.Exec(ctx, `UPDATE segpub_runs SET status = 'handed_back', attempts = greatest(attempts - 1, 0), candidates = $3, published = $4,
  error = nullif($5, ''), owner = NULL, lease_until = NULL, updated_at = now()
WHERE request_id = $1 AND owner = $2 AND status = 'running'`, requestID, owner, candidates, published, reason)
	if err != nil {
		return fmt.Errorf("hand back run %s: %w", requestID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("hand back run %s: %w", requestID, ErrLeaseLost)
	}
	return nil
}

// Reject records a job rejected before it could run (it may have no row).
func (l *Ledger) Reject(ctx context.Context, s Start, reason string) error {
	_, err := l.pool.Exec(ctx, `INSERT INTO segpub_runs AS r (request_id, project_id, campaign_id, action, status, attempts, reference_time, error, finished_at)
VALUES ($1, $2, $3, $4, 'rejected', 1, $5, $6, now())
ON CONFLICT (request_id) DO UPDATE SET status = 'rejected', error = EXCLUDED.error, owner = NULL, lease_until = NULL,
  updated_at = now(), finished_at = now()
WHERE r.status NOT IN ('completed', 'rejected', 'cancelled')`, s.RequestID, s.ProjectID, s.CampaignID, s.Action, s.Reference, reason)
	if err != nil {
		return fmt.Errorf("reject run %s: %w", s.RequestID, err)
	}
	return nil
}

// LatestOf returns the most recent run of a campaign.
func (l *Ledger) LatestOf(ctx context.Context, campaignID string) (*Run, error) {
	r, err := scan(l.pool.QueryRow(ctx, `SELECT `+partsColumns+` FROM segpub_runs r WHERE campaign_id = $1 ORDER BY created_at DESC LIMIT 1`, campaignID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("latest run of %s: %w", campaignID, err)
	}
	return r, nil
}

// Partition is what a partitioned run records of its plan.
type Partition struct {
	// Bounds are the ranges' edges: range i is [Bounds[i], Bounds[i+1]),
	// "" meaning unbounded.
	Bounds []string `json:"bounds"`
	// Unknown is the number of listed ids with no user, counted once.
	Unknown int64 `json:"unknown"`
}

// Parts is the number of ranges.
func (p Partition) Parts() int { return len(p.Bounds) - 1 }

// Partitioned turns a claimed run into a partitioned one (status scanning,
// its job and plan stored) and, in the same transaction, runs send (which
// enqueues the scan phase). Only the run's owner can do it.
func (l *Ledger) Partitioned(ctx context.Context, requestID, owner string, jobBody json.RawMessage, plan Partition, send func(context.Context) error) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("partition run %s: %w", requestID, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	planBody, _ := json.Marshal(plan)
	tag, err := tx.Exec(ctx, `UPDATE segpub_runs SET status = 'scanning', job = $3, plan = $4, owner = NULL, lease_until = NULL, updated_at = now()
WHERE request_id = $1 AND owner = $2 AND status = 'running'`, requestID, owner, jobBody, planBody)
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

// PartitionedJob returns a partitioned run's job, plan and reference time.
func (l *Ledger) PartitionedJob(ctx context.Context, requestID string) (json.RawMessage, Partition, time.Time, Status, error) {
	var body, planBody json.RawMessage
	var ref time.Time
	var st Status
	var plan Partition
	err := l.pool.QueryRow(ctx, `SELECT job, plan, reference_time, status FROM segpub_runs WHERE request_id = $1`, requestID).Scan(&body, &planBody, &ref, &st)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, plan, ref, "", ErrNotFound
	}
	if err != nil {
		return nil, plan, ref, "", fmt.Errorf("get partitioned run %s: %w", requestID, err)
	}
	if err := json.Unmarshal(planBody, &plan); err != nil {
		return nil, plan, ref, "", fmt.Errorf("partitioned run %s has no plan: %w", requestID, err)
	}
	return body, plan, ref, st, nil
}

// RecordScan stores the destinations a partition's scan found, replacing
// an earlier attempt's.
func (l *Ledger) RecordScan(ctx context.Context, requestID string, part int, fps []uint64) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return err
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

// takenSQL is Taken's query. It reads the run's rows of this partition and
// the earlier ones once, grouped by destination: a destination the
// partition shares with an earlier one is taken, and the groups with an
// earlier partition are the offset. Its shape is chosen so that no plan is
// worse than linear in the run's rows, whatever the statistics say: the
// rows were just copied in and are not analyzed yet, and a join (the
// former EXISTS) planned on a one-row estimate became a nested loop that
// compared every row with every earlier one for hours (docs/decisions.md,
// "The partition advance's plan").
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

// Taken returns the destinations of a partition that earlier partitions
// publish, and how many distinct destinations those earlier partitions
// publish in all (the partition's first message number).
func (l *Ledger) Taken(ctx context.Context, requestID string, part int) ([]uint64, int64, error) {
	var offset int64
	var fps []int64
	err := pgx.BeginTxFunc(ctx, l.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
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

// Advance moves a partitioned run from one phase to the next when all of
// the current phase's partitions have completed, running send (the next
// phase's enqueue) in the same transaction. It reports whether this call
// advanced it: when several partitions finish at once, exactly one does.
//
// summarize, when set, builds the run's result from its completed
// partitions' results, read under the same lock, so the result counts every
// partition.
func (l *Ledger) Advance(ctx context.Context, requestID string, from, to Status, parts int, childPrefix string,
	summarize func([]json.RawMessage) (json.RawMessage, error), send func(context.Context) error) (bool, error) {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// Lock the parent row first: concurrent last partitions serialize
	// here, and the second sees the new status.
	var st Status
	if err := tx.QueryRow(ctx, `SELECT status FROM segpub_runs WHERE request_id = $1 FOR UPDATE`, requestID).Scan(&st); err != nil {
		return false, fmt.Errorf("advance run %s: %w", requestID, err)
	}
	if st != from {
		return false, nil
	}
	var done int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM segpub_runs WHERE parent = $1 AND request_id LIKE $2 AND status = 'completed'`,
		requestID, childPrefix+"%").Scan(&done); err != nil {
		return false, fmt.Errorf("advance run %s: %w", requestID, err)
	}
	if done < parts {
		return false, nil
	}
	var result json.RawMessage
	if summarize != nil {
		rows, err := tx.Query(ctx, `SELECT result FROM segpub_runs WHERE parent = $1 AND request_id LIKE $2 AND status = 'completed' ORDER BY request_id`,
			requestID, childPrefix+"%")
		if err != nil {
			return false, fmt.Errorf("advance run %s: %w", requestID, err)
		}
		results, err := pgx.CollectRows(rows, pgx.RowTo[json.RawMessage])
		if err != nil {
			return false, fmt.Errorf("advance run %s: %w", requestID, err)
		}
		if result, err = summarize(results); err != nil {
			return false, err
		}
	}
	finished := "NULL"
	if to.Final() {
		finished = "now()"
	}
	// The counts columns follow the summed result, so the completed run
	// reads like any other.
	if _, err := tx.Exec(ctx, `UPDATE segpub_runs SET status = $2, result = coalesce($3, result),
  candidates = coalesce(($3::jsonb->>'candidates')::bigint, candidates), published = coalesce(($3::jsonb->>'published')::bigint, published),
  updated_at = now(), finished_at = `+finished+`
WHERE request_id = $1`, requestID, to, result); err != nil {
		return false, fmt.Errorf("advance run %s: %w", requestID, err)
	}
	if send != nil {
		if err := send(ctx); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("advance run %s: %w", requestID, err)
	}
	return true, nil
}

// FailParent marks a partitioned run failed when one of its partitions
// failed for good.
func (l *Ledger) FailParent(ctx context.Context, requestID, reason string) error {
	_, err := l.pool.Exec(ctx, `UPDATE segpub_runs SET status = 'failed', error = $2, updated_at = now(), finished_at = now()
WHERE request_id = $1 AND status IN ('scanning', 'publishing')`, requestID, reason)
	return err
}

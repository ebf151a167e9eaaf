// Package state owns segpub's own tables (the run ledger, the records of
// partitioned runs, campaigns, run events, dead letters, the message
// store): their schema, as numbered migrations applied by Migrate and
// recorded in the database, and the SQL on them, as typed queries. Run
// statuses are the constants of Status; no other package spells one in
// SQL.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/redact"
)

// Runs is the SQL of the run ledger (segpub_runs): claims, leases,
// checkpoints and outcomes (internal/ledger says what they guarantee). An
// error it records is redacted first: a URL's password quoted in it never
// reaches `segpub status` or the console.
type Runs struct {
	pool *pgxpool.Pool
}

// NewRuns returns the runs of pool's database, migrating it first.
func NewRuns(ctx context.Context, pool *pgxpool.Pool) (*Runs, error) {
	if err := Migrate(ctx, pool); err != nil {
		return nil, err
	}
	return &Runs{pool: pool}, nil
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
	// Fingerprint is the fingerprint of the job the run was claimed for
	// (ledger.JobFingerprint; "" for a run recorded before fingerprints,
	// or only rejected).
	Fingerprint string `json:"-"`
}

const columns = `request_id, project_id, campaign_id, action, status, attempts, coalesce(owner, ''), lease_until, reference_time,
candidates, published, result, coalesce(error, ''), checkpoint, created_at, updated_at, finished_at, coalesce(job_fingerprint, '')`

func scan(row pgx.Row) (*Run, error) {
	var r Run
	err := row.Scan(&r.RequestID, &r.ProjectID, &r.CampaignID, &r.Action, &r.Status, &r.Attempts, &r.Owner, &r.LeaseUntil,
		&r.Reference, &r.Candidates, &r.Published, &r.Result, &r.Error, &r.Checkpoint, &r.CreatedAt, &r.UpdatedAt, &r.FinishedAt, &r.Fingerprint)
	return &r, err
}

// ErrNotFound is returned by Get for an unknown request_id.
var ErrNotFound = errors.New("no run with that request_id")

// shownStatus is a run's status as operators see it: a partitioned run
// paused as a whole keeps its phase in the table, since its ranges still
// move it from phase to phase, but once none of its ranges is running it
// is paused (and `segpub run pause`, `segpub status` and the console say
// so), as a whole run is once its worker has stopped.
const shownStatus = `CASE WHEN r.status IN ('scanning', 'publishing') AND r.control = 'pause'
  AND NOT EXISTS (SELECT 1 FROM segpub_runs c WHERE c.parent = r.request_id AND c.status = 'running') THEN 'paused'
  ELSE r.status END`

// partsColumns is columns as operators see them (Get, List): a partitioned
// run in progress (scanning, publishing), whose own row holds no counts,
// shows as candidates the sum of its scan partitions' (the publish
// partitions count none: the scan counted them) and as published the sum
// of its publish partitions' (runs named by partition.RunID:
// request_id#scan-NNNN, request_id#publish-NNNN), and its status is
// shownStatus.
var partsColumns = strings.NewReplacer("action, status,", "action, "+shownStatus+",",
	"candidates, published,", `CASE WHEN r.status IN ('scanning', 'publishing') THEN coalesce((
  SELECT sum(c.candidates) FROM segpub_runs c WHERE c.parent = r.request_id AND starts_with(c.request_id, r.request_id || '#scan-')), 0)::bigint
  ELSE r.candidates END,
CASE WHEN r.status = 'publishing' THEN coalesce((
  SELECT sum(c.published) FROM segpub_runs c WHERE c.parent = r.request_id AND starts_with(c.request_id, r.request_id || '#publish-')), 0)::bigint
  ELSE r.published END,`).Replace(columns)

// Scanned returns what a partitioned run's scan partitions counted as
// published (the destinations they found), 0 when none has.
func (l *Runs) Scanned(ctx context.Context, requestID string) (int64, error) {
	var n *int64
	err := l.pool.QueryRow(ctx, `SELECT sum(published)::bigint FROM segpub_runs WHERE parent = $1 AND starts_with(request_id, $1 || '#scan-')`,
		requestID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("scan of %s: %w", requestID, err)
	}
	if n == nil {
		return 0, nil
	}
	return *n, nil
}

// Get returns a run. A partitioned run in progress shows the sums of its
// partitions' counts.
func (l *Runs) Get(ctx context.Context, requestID string) (*Run, error) {
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
	// Fingerprint is the job's fingerprint (ledger.JobFingerprint): a run
	// is claimed only by copies of the job it was first claimed for. ""
	// for a partition, whose runs are marked with their parent instead.
	Fingerprint string
}

// fingerprint is what a run claimed from s records: a job's fingerprint,
// or for a partition a mark no whole job's can equal, so a job whose
// request_id names a partition's run never claims it.
func (s Start) fingerprint() string {
	if s.Fingerprint == "" && s.Parent != "" {
		return "partition of " + s.Parent
	}
	return s.Fingerprint
}

// Claim takes the lease of a run for owner, creating the run on its first
// delivery. It is not granted when the run is final, or running under a
// lease that has not expired, whoever holds it: two copies of a job taken
// by two slots of the same worker must not both run. A run handed back
// (retrying, handed_back) can be claimed at once. It is never granted
// for another job than the run's (Start.Fingerprint): the caller compares
// the returned run's Fingerprint with its own.
func (l *Runs) Claim(ctx context.Context, s Start, owner string, lease time.Duration) (*Claim, error) {
	r, err := scan(l.pool.QueryRow(ctx, `INSERT INTO segpub_runs AS r
  (request_id, project_id, campaign_id, action, status, attempts, owner, lease_until, reference_time, parent, job_fingerprint)
VALUES ($1, $2, $3, $4, 'running', 1, $5, now() + $6::interval, $7, nullif($8, ''), nullif($9, ''))
ON CONFLICT (request_id) DO UPDATE SET
  status = 'running', attempts = r.attempts + 1, owner = EXCLUDED.owner,
  lease_until = EXCLUDED.lease_until, updated_at = now(), error = NULL,
  job_fingerprint = coalesce(r.job_fingerprint, EXCLUDED.job_fingerprint)
WHERE (r.status IN ('retrying', 'handed_back')
   OR (r.status = 'running' AND (r.lease_until IS NULL OR r.lease_until < now())))
  AND (r.job_fingerprint IS NULL OR r.job_fingerprint = EXCLUDED.job_fingerprint)
RETURNING `+columns, s.RequestID, s.ProjectID, s.CampaignID, s.Action, owner, lease.String(), s.Reference, s.Parent, s.fingerprint()))
	if err == nil {
		return &Claim{Run: r, Granted: true}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("claim run %s: %w", s.RequestID, err)
	}
	// The run as stored: the worker tells a partitioned run by its phase.
	r, err = scan(l.pool.QueryRow(ctx, `SELECT `+columns+` FROM segpub_runs WHERE request_id = $1`, s.RequestID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("claim run %s: %w", s.RequestID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("claim run %s: %w", s.RequestID, err)
	}
	return &Claim{Run: r}, nil
}

// Renew extends the lease and records progress. It fails when the caller
// no longer owns the run (its lease expired and another worker took it): the
// caller must stop. ErrPauseRequested and ErrCancelRequested mean the
// progress was recorded and an operator asked the run to stop.
func (l *Runs) Renew(ctx context.Context, requestID, owner string, lease time.Duration, candidates, published int64) error {
	var control *string
	err := l.pool.QueryRow(ctx, `UPDATE segpub_runs r SET lease_until = now() + $3::interval, candidates = $4, published = $5, updated_at = now()
WHERE request_id = $1 AND owner = $2 AND status = 'running' RETURNING `+heldControl, requestID, owner, lease.String(), candidates, published).Scan(&control)
	return held("renew", requestID, control, err)
}

// heldControl is the stop request a held run (r) answers: its own, or its
// partitioned run's. A pause or cancel of a partitioned run marks the
// ranges that run at that moment; a range whose first claim raced it (its
// worker read no pause, then claimed the range after the pause had marked
// the others) learns it here, at its first checkpoint or heartbeat, rather
// than publish its whole range while the run is paused or cancelled.
const heldControl = `coalesce(r.control, (SELECT CASE WHEN p.status = 'cancelled' THEN 'cancel' WHEN p.control = 'pause' THEN 'pause' END
  FROM segpub_runs p WHERE p.request_id = r.parent))`

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
func (l *Runs) Checkpoint(ctx context.Context, requestID, owner string, checkpoint json.RawMessage, published int64) error {
	var control *string
	err := l.pool.QueryRow(ctx, `UPDATE segpub_runs r SET checkpoint = $3, published = $4, updated_at = now()
WHERE request_id = $1 AND owner = $2 AND status = 'running' RETURNING `+heldControl, requestID, owner, checkpoint, published).Scan(&control)
	return held("checkpoint", requestID, control, err)
}

// Release ends an attempt that has no result (it failed before or while
// running, or was handed back): the status and error are recorded and the
// lease released, while the counts stay those of its last checkpoint, so
// `segpub status` keeps showing what was published.
func (l *Runs) Release(ctx context.Context, requestID, owner string, status Status, errText string) error {
	finished := "NULL"
	if status.Final() {
		finished = "now()"
	}
	tag, err := l.pool.Exec(ctx, `UPDATE segpub_runs SET status = $3, error = nullif($4, ''),
  owner = NULL, lease_until = NULL, updated_at = now(), finished_at = `+finished+`
WHERE request_id = $1 AND (owner = $2 OR owner IS NULL) AND status NOT IN ('completed', 'rejected')`,
		requestID, owner, status, redact.Text(errText))
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

// Outcome is how an attempt of a run ended, recorded by Finish.
type Outcome struct {
	// Status is the run's new status: completed (or rejected) with its
	// result, or failed (for good) or retrying with the error. A
	// non-final status leaves the run to be claimed again.
	Status Status
	// Candidates and Published are the run's counts; Published counts
	// only messages the channel destination acknowledged.
	Candidates, Published int64
	// Result is the run's result (docs/result.md); nil keeps none.
	Result json.RawMessage
	// Error says why the attempt failed; "" for none.
	Error string
}

// Finish records the end of the attempt owner holds, as o says, and
// releases the lease. A run already completed, rejected or cancelled is
// left as it is (ErrLeaseLost).
func (l *Runs) Finish(ctx context.Context, requestID, owner string, o Outcome) error {
	finished := "NULL"
	if o.Status.Final() {
		finished = "now()"
	}
	tag, err := l.pool.Exec(ctx, `UPDATE segpub_runs SET status = $3, candidates = $4, published = $5, result = $6, error = nullif($7, ''),
  owner = NULL, lease_until = NULL, updated_at = now(), finished_at = `+finished+`
WHERE request_id = $1 AND (owner = $2 OR owner IS NULL) AND status NOT IN ('completed', 'rejected', 'cancelled')`,
		requestID, owner, o.Status, o.Candidates, o.Published, o.Result, redact.Text(o.Error))
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
func (l *Runs) HandBack(ctx context.Context, requestID, owner string, candidates, published int64, reason string) error {
	tag, err := l.pool.Exec(ctx, `UPDATE segpub_runs SET status = 'handed_back', attempts = greatest(attempts - 1, 0), candidates = $3, published = $4,
  error = nullif($5, ''), owner = NULL, lease_until = NULL, updated_at = now()
WHERE request_id = $1 AND owner = $2 AND status = 'running'`, requestID, owner, candidates, published, redact.Text(reason))
	if err != nil {
		return fmt.Errorf("hand back run %s: %w", requestID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("hand back run %s: %w", requestID, ErrLeaseLost)
	}
	return nil
}

// Reject records a job rejected before it could run, when no run has its
// request_id: a malformed copy that reuses the request_id of an existing
// run (running, paused or finished, whoever holds it) changes nothing of
// it. A run its holder finds rejected while running is recorded with
// Finish. It reports whether a row was written.
func (l *Runs) Reject(ctx context.Context, s Start, reason string) (bool, error) {
	tag, err := l.pool.Exec(ctx, `INSERT INTO segpub_runs (request_id, project_id, campaign_id, action, status, attempts, reference_time, error, finished_at)
VALUES ($1, $2, $3, $4, 'rejected', 1, $5, $6, now())
ON CONFLICT (request_id) DO NOTHING`, s.RequestID, s.ProjectID, s.CampaignID, s.Action, s.Reference, redact.Text(reason))
	if err != nil {
		return false, fmt.Errorf("reject run %s: %w", s.RequestID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// LatestOf returns the most recent run of a campaign.
func (l *Runs) LatestOf(ctx context.Context, campaignID string) (*Run, error) {
	r, err := scan(l.pool.QueryRow(ctx, `SELECT `+partsColumns+` FROM segpub_runs r WHERE campaign_id = $1 ORDER BY created_at DESC LIMIT 1`, campaignID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("latest run of %s: %w", campaignID, err)
	}
	return r, nil
}

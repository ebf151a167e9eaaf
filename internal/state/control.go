package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Stop requests, stored in a running run's control column until the worker
// holding it has stopped (and in a partitioned run's while it is paused).
const (
	controlPause  = "pause"
	controlCancel = "cancel"
)

// StopRequested returns the stop request recorded on a run ("pause",
// "cancel"), "" when none.
func (l *Runs) StopRequested(ctx context.Context, requestID string) (string, error) {
	var control *string
	err := l.pool.QueryRow(ctx, `SELECT control FROM segpub_runs WHERE request_id = $1`, requestID).Scan(&control)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("control of run %s: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("control of run %s: %w", requestID, err)
	}
	if control == nil {
		return "", nil
	}
	return *control, nil
}

var (
	// ErrPauseRequested and ErrCancelRequested tell the worker holding a
	// run that an operator asked it to stop after the batch in hand.
	ErrPauseRequested  = errors.New("pause requested")
	ErrCancelRequested = errors.New("cancel requested")
	// ErrFinished is returned when a finished run is paused, resumed or
	// cancelled.
	ErrFinished = errors.New("run has finished")
	// ErrNotPaused is returned by Resume for a run that is not paused.
	ErrNotPaused = errors.New("run is not paused")
	// ErrPartition is returned when a partition is paused, resumed or
	// cancelled: its partitioned run is controlled as a whole.
	ErrPartition = errors.New("pause, resume or cancel the whole run")
)

// Control is what a pause, resume or cancel did.
type Control struct {
	// Status is the run's status after the request: paused or cancelled
	// when it took effect at once, running (a partitioned run: its phase)
	// while a worker still has to stop it, retrying after a resume.
	Status Status `json:"status"`
	// Waiting are the runs (the run itself, or a partitioned run's
	// partitions) whose workers were asked to stop after the batch in
	// hand; the request has taken effect once none is running.
	Waiting []string `json:"waiting,omitempty"`
	// Requeue are the job messages a resume must send to the job queue
	// again: a paused run's job was acknowledged when it paused.
	Requeue []json.RawMessage `json:"-"`
}

// Pause asks a run to stop after the batch in hand and keep its
// checkpoint. A run between attempts is paused at once; a running one when
// its worker next records progress. A partitioned run pauses as a whole:
// every partition, including those not started yet.
func (l *Runs) Pause(ctx context.Context, requestID string) (*Control, error) {
	return l.control(ctx, requestID, func(tx pgx.Tx, st Status) (*Control, error) {
		c := &Control{Status: Paused}
		switch st {
		case Paused:
			return c, nil
		case Scanning, Publishing:
			if _, err := tx.Exec(ctx, `UPDATE segpub_runs SET control = 'pause', updated_at = now() WHERE request_id = $1`, requestID); err != nil {
				return nil, err
			}
			if err := l.stopChildren(ctx, tx, requestID, controlPause, Paused, c); err != nil {
				return nil, err
			}
			// Paused once no partition runs (shownStatus); until then it
			// is in its phase, as a whole run is running until its worker
			// stops.
			if len(c.Waiting) > 0 {
				c.Status = st
			}
			return c, nil
		case Running:
			c.Status = Running
			c.Waiting = []string{requestID}
			_, err := tx.Exec(ctx, `UPDATE segpub_runs SET control = 'pause', updated_at = now() WHERE request_id = $1`, requestID)
			return c, err
		}
		_, err := tx.Exec(ctx, `UPDATE segpub_runs SET status = 'paused', control = NULL, updated_at = now() WHERE request_id = $1`, requestID)
		return c, err
	})
}

// Cancel stops a run for good: a run between attempts or paused is
// cancelled at once, a running one after the batch in hand, and no copy of
// its job runs again. A partitioned run is cancelled as a whole.
func (l *Runs) Cancel(ctx context.Context, requestID string) (*Control, error) {
	return l.control(ctx, requestID, func(tx pgx.Tx, st Status) (*Control, error) {
		c := &Control{Status: Cancelled}
		switch st {
		case Scanning, Publishing:
			if _, err := tx.Exec(ctx, `UPDATE segpub_runs SET status = 'cancelled', control = NULL, updated_at = now(), finished_at = now()
WHERE request_id = $1`, requestID); err != nil {
				return nil, err
			}
			if err := l.stopChildren(ctx, tx, requestID, controlCancel, Cancelled, c); err != nil {
				return nil, err
			}
			return c, sumChildren(ctx, tx, requestID)
		case Running:
			c.Status = Running
			c.Waiting = []string{requestID}
			_, err := tx.Exec(ctx, `UPDATE segpub_runs SET control = 'cancel', updated_at = now() WHERE request_id = $1`, requestID)
			return c, err
		}
		_, err := tx.Exec(ctx, `UPDATE segpub_runs SET status = 'cancelled', control = NULL, owner = NULL, lease_until = NULL,
  updated_at = now(), finished_at = now() WHERE request_id = $1`, requestID)
		return c, err
	})
}

// Resume lets a paused run go on: its status is retrying again, and the job
// messages in Requeue must be sent to the job queue (a worker acknowledged
// them when it paused). A partitioned run resumes every paused partition.
// A pause still waiting for its worker is withdrawn.
func (l *Runs) Resume(ctx context.Context, requestID string) (*Control, error) {
	return l.control(ctx, requestID, func(tx pgx.Tx, st Status) (*Control, error) {
		c := &Control{Status: Retrying}
		switch st {
		case Scanning, Publishing:
			c.Status = st
			if _, err := tx.Exec(ctx, `UPDATE segpub_runs SET control = NULL, updated_at = now() WHERE request_id = $1`, requestID); err != nil {
				return nil, err
			}
			if _, err := tx.Exec(ctx, `UPDATE segpub_runs SET control = NULL WHERE parent = $1 AND status = 'running'`, requestID); err != nil {
				return nil, err
			}
			rows, err := tx.Query(ctx, `UPDATE segpub_runs SET status = 'retrying', control = NULL, updated_at = now()
WHERE parent = $1 AND status = 'paused' RETURNING job`, requestID)
			if err != nil {
				return nil, err
			}
			if c.Requeue, err = pgx.CollectRows(rows, pgx.RowTo[json.RawMessage]); err != nil {
				return nil, err
			}
			c.Requeue = nonNull(c.Requeue)
			return c, nil
		case Running:
			c.Status = Running
			_, err := tx.Exec(ctx, `UPDATE segpub_runs SET control = NULL, updated_at = now() WHERE request_id = $1`, requestID)
			return c, err
		case Paused:
			var body json.RawMessage
			if err := tx.QueryRow(ctx, `UPDATE segpub_runs SET status = 'retrying', control = NULL, updated_at = now()
WHERE request_id = $1 RETURNING job`, requestID).Scan(&body); err != nil {
				return nil, err
			}
			c.Requeue = nonNull([]json.RawMessage{body})
			return c, nil
		}
		return nil, fmt.Errorf("resume run %s (%s): %w", requestID, st, ErrNotPaused)
	})
}

// Errors of Reopen.
var (
	ErrNotFailed = errors.New("the run did not fail")
	ErrNoJob     = errors.New("the ledger keeps no job for it: give the dead letter's job")
)

// Reopen makes a failed run (its job exhausted its attempts) claimable
// again, keeping its checkpoint and counts: the next delivery of its job
// goes on from where it stopped, as a resume does. Requeue holds the job
// the ledger kept, if any (a partitioned run's); a whole run's job comes
// from its dead letter. Rejected, cancelled and completed runs are final
// for good: a rejected job fails the same way, a cancelled run was ended
// on purpose. Without haveJob (the caller has no copy of the job) a run
// whose job the ledger did not keep is left as it is: ErrNoJob.
func (l *Runs) Reopen(ctx context.Context, requestID string, haveJob bool) (*Control, error) {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("reopen run %s: %w", requestID, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var st Status
	var parent *string
	var plan, body json.RawMessage
	err = tx.QueryRow(ctx, `SELECT status, parent, plan, job FROM segpub_runs WHERE request_id = $1 FOR UPDATE`, requestID).Scan(&st, &parent, &plan, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("reopen run %s: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reopen run %s: %w", requestID, err)
	}
	switch {
	case parent != nil:
		return nil, fmt.Errorf("reopen run %s: a partition of %s; reopen the whole run", requestID, *parent)
	case len(plan) > 0 && string(plan) != "null":
		return nil, fmt.Errorf("reopen run %s: a partitioned run that failed is not reopened; submit its job under a new request_id", requestID)
	case st != Failed:
		return nil, fmt.Errorf("reopen run %s (%s): %w", requestID, st, ErrNotFailed)
	case !haveJob && len(nonNull([]json.RawMessage{body})) == 0:
		return nil, fmt.Errorf("reopen run %s: %w", requestID, ErrNoJob)
	}
	if _, err := tx.Exec(ctx, `UPDATE segpub_runs SET status = 'retrying', control = NULL, owner = NULL, lease_until = NULL,
  updated_at = now(), finished_at = NULL WHERE request_id = $1`, requestID); err != nil {
		return nil, fmt.Errorf("reopen run %s: %w", requestID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("reopen run %s: %w", requestID, err)
	}
	return &Control{Status: Retrying, Requeue: nonNull([]json.RawMessage{body})}, nil
}

func nonNull(bodies []json.RawMessage) []json.RawMessage {
	out := bodies[:0]
	for _, b := range bodies {
		if len(b) > 0 && string(b) != "null" {
			out = append(out, b)
		}
	}
	return out
}

// control runs op on a locked run that has not finished.
func (l *Runs) control(ctx context.Context, requestID string, op func(pgx.Tx, Status) (*Control, error)) (*Control, error) {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("control run %s: %w", requestID, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var st Status
	var parent *string
	err = tx.QueryRow(ctx, `SELECT status, parent FROM segpub_runs WHERE request_id = $1 FOR UPDATE`, requestID).Scan(&st, &parent)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("control run %s: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("control run %s: %w", requestID, err)
	}
	if parent != nil {
		return nil, fmt.Errorf("control run %s: a partition of %s; %w", requestID, *parent, ErrPartition)
	}
	if st.Final() {
		return nil, fmt.Errorf("control run %s (%s): %w", requestID, st, ErrFinished)
	}
	c, err := op(tx, st)
	if err != nil {
		return nil, fmt.Errorf("control run %s: %w", requestID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("control run %s: %w", requestID, err)
	}
	return c, nil
}

// stopChildren asks a partitioned run's running partitions to stop and
// moves the others that have not finished to status at once.
func (l *Runs) stopChildren(ctx context.Context, tx pgx.Tx, parent, control string, status Status, c *Control) error {
	rows, err := tx.Query(ctx, `UPDATE segpub_runs SET control = $2, updated_at = now() WHERE parent = $1 AND status = 'running' RETURNING request_id`,
		parent, control)
	if err != nil {
		return err
	}
	if c.Waiting, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return err
	}
	finished := "NULL"
	if status.Final() {
		finished = "now()"
	}
	_, err = tx.Exec(ctx, `UPDATE segpub_runs SET status = $2, control = NULL, owner = NULL, lease_until = NULL, updated_at = now(),
  finished_at = `+finished+` WHERE parent = $1 AND status IN ('retrying', 'handed_back', 'paused')`, parent, status)
	return err
}

// sumChildren sets a partitioned run's counts to what its publish-phase
// partitions (request_id#publish-NNNN, partition.RunID) acknowledged (the
// scan phase publishes nothing).
func sumChildren(ctx context.Context, tx pgx.Tx, parent string) error {
	_, err := tx.Exec(ctx, `UPDATE segpub_runs p SET candidates = s.c, published = s.p FROM (
  SELECT coalesce(sum(candidates), 0) AS c, coalesce(sum(published), 0) AS p FROM segpub_runs
  WHERE parent = $1 AND request_id LIKE $1 || '#publish-%') s
WHERE p.request_id = $1`, parent)
	return err
}

// Stopped records that the worker holding a run stopped it at an
// operator's request: paused (keeping its checkpoint, and body, the job
// message to send again on resume) or cancelled (final, with result).
// A cancelled partition also updates its partitioned run's counts.
func (l *Runs) Stopped(ctx context.Context, requestID, owner string, status Status, candidates, published int64, body, result json.RawMessage) error {
	if status != Paused && status != Cancelled {
		return fmt.Errorf("stop run %s: status %s is neither paused nor cancelled", requestID, status)
	}
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("stop run %s: %w", requestID, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	finished := "NULL"
	if status.Final() {
		finished = "now()"
	}
	var parent *string
	err = tx.QueryRow(ctx, `UPDATE segpub_runs SET status = $3, candidates = $4, published = $5, job = coalesce($6, job), result = $7,
  control = NULL, owner = NULL, lease_until = NULL, error = NULL, updated_at = now(), finished_at = `+finished+`
WHERE request_id = $1 AND owner = $2 AND status = 'running' RETURNING parent`,
		requestID, owner, status, candidates, published, body, result).Scan(&parent)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("stop run %s: %w", requestID, ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("stop run %s: %w", requestID, err)
	}
	if parent != nil && status == Cancelled {
		if err := sumChildren(ctx, tx, *parent); err != nil {
			return fmt.Errorf("stop run %s: %w", requestID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("stop run %s: %w", requestID, err)
	}
	return nil
}

// Park keeps the message of a job whose run is paused, so that a resume can
// send it again; the copy in hand can then be acknowledged. It reports
// false when the run is no longer paused (resumed meanwhile): the copy must
// then be handed back and claimed again. A partition that has no run yet
// (its partitioned run was paused before it started) is created paused.
func (l *Runs) Park(ctx context.Context, s Start, body json.RawMessage) (bool, error) {
	// The job a paused run keeps is never replaced: only a run that kept
	// none takes this copy's, and only a copy of its own job.
	tag, err := l.pool.Exec(ctx, `INSERT INTO segpub_runs AS r (request_id, project_id, campaign_id, action, status, reference_time, parent, job, job_fingerprint)
VALUES ($1, $2, $3, $4, 'paused', $5, nullif($6, ''), $7, nullif($8, ''))
ON CONFLICT (request_id) DO UPDATE SET job = coalesce(r.job, EXCLUDED.job), updated_at = now()
WHERE r.status = 'paused' AND (r.job_fingerprint IS NULL OR r.job_fingerprint = EXCLUDED.job_fingerprint)`,
		s.RequestID, s.ProjectID, s.CampaignID, s.Action, s.Reference, s.Parent, body, s.fingerprint())
	if err != nil {
		return false, fmt.Errorf("park run %s: %w", s.RequestID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Pausing reports whether a partitioned run has been asked to pause, so a
// partition that has not started yet is parked instead of run.
func (l *Runs) Pausing(ctx context.Context, requestID string) (bool, error) {
	var control *string
	err := l.pool.QueryRow(ctx, `SELECT control FROM segpub_runs WHERE request_id = $1`, requestID).Scan(&control)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("control of run %s: %w", requestID, err)
	}
	return control != nil && *control == controlPause, nil
}

// Active lists which of the given runs are still running (a stop request
// has not been carried out yet).
func (l *Runs) Active(ctx context.Context, requestIDs []string) ([]string, error) {
	rows, err := l.pool.Query(ctx, `SELECT request_id FROM segpub_runs WHERE request_id = ANY($1) AND status = 'running' ORDER BY request_id`, requestIDs)
	if err != nil {
		return nil, fmt.Errorf("running runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("running runs: %w", err)
	}
	return ids, nil
}

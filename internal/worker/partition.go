package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue"
)

// A large job is split so that every worker shares it. The worker that
// claims it plans key ranges of notifly_user_id and enqueues one scan
// sub-job per range on the job queue; when every scan has completed, one
// publish sub-job per range. Scans record which destinations each range
// would publish, so publishing ranges in parallel keeps the contract's
// rules of one unpartitioned run: the smallest (notifly_user_id,
// notifly_device_id) wins a destination, throttle waves are numbered in
// global order, and the counts add up exactly.

// partMessage is a sub-job on the job queue. It is segpub's own message,
// not a job message of the contract.
type partMessage struct {
	Part *partRef `json:"segpub_part"`
}

type partRef struct {
	Parent string `json:"parent"`
	Phase  string `json:"phase"` // scan or publish
	Index  int    `json:"index"`
}

const (
	phaseScan    = "scan"
	phasePublish = "publish"
)

func childID(parent, phase string, i int) string { return fmt.Sprintf("%s#%s-%04d", parent, phase, i) }

func childPrefix(parent, phase string) string { return parent + "#" + phase + "-" }

// isPart recognises a sub-job.
func isPart(body []byte) (*partRef, bool) {
	var m partMessage
	if err := json.Unmarshal(body, &m); err != nil || m.Part == nil {
		return nil, false
	}
	return m.Part, true
}

// enqueuePhase sends one sub-job per range.
func (w *Worker) enqueuePhase(ctx context.Context, parent, phase string, parts int) error {
	point := failpoint.PlanSent
	if phase == phasePublish {
		point = failpoint.HandOff
	}
	for i := 0; i < parts; i++ {
		if i == 1 {
			if err := w.cfg.Failpoints.Hit(point); err != nil {
				return err
			}
		}
		body, _ := json.Marshal(partMessage{Part: &partRef{Parent: parent, Phase: phase, Index: i}})
		if err := w.cfg.Queue.Send(ctx, body, childID(parent, phase, i)); err != nil {
			return fmt.Errorf("enqueue %s of %s: %w", phase, parent, err)
		}
	}
	return nil
}

// partition splits a claimed job when it is large; false means: run it
// whole.
func (w *Worker) partition(ctx context.Context, d queue.Delivery, j *job.Job, raw []byte, log *slog.Logger) bool {
	if w.cfg.PartitionRows <= 0 || j.Action != job.ActionPublish || j.Campaign.Audience.Type == job.AudienceCSV {
		return false
	}
	bounds, unknown, err := w.cfg.Runner.Bounds(ctx, j, w.cfg.PartitionRows)
	if err != nil {
		log.Warn("plan partitions; the job runs whole", "err", err)
		return false
	}
	if err := w.cfg.Failpoints.Hit(failpoint.Planning); err != nil {
		w.retry(ctx, d, j, fmt.Errorf("partition: %w", err))
		return true
	}
	if bounds == nil {
		return false
	}
	plan := ledger.Partition{Bounds: bounds, Unknown: unknown}
	err = w.cfg.Ledger.Partitioned(ctx, j.RequestID, w.cfg.Owner, raw, plan, func(ctx context.Context) error {
		return w.enqueuePhase(ctx, j.RequestID, phaseScan, plan.Parts())
	})
	if err != nil {
		w.retry(ctx, d, j, fmt.Errorf("partition: %w", err))
		return true
	}
	log.Info("job partitioned", "parts", plan.Parts())
	w.emit(ctx, "partitioned", j, d.Attempt(), nil, "")
	w.ack(ctx, d, log)
	return true
}

// handlePart runs one partition of a partitioned run.
func (w *Worker) handlePart(ctx context.Context, d queue.Delivery, ref *partRef) {
	log := w.log.With("request_id", ref.Parent, "phase", ref.Phase, "part", ref.Index, "attempt", d.Attempt())
	body, plan, refTime, status, err := w.cfg.Ledger.PartitionedJob(ctx, ref.Parent)
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && (ref.Index < 0 || ref.Index >= plan.Parts())) {
		log.Error("sub-job of an unknown partitioned run; dropped")
		w.ack(ctx, d, log)
		return
	}
	if err != nil {
		w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), log)
		return
	}
	if status.Final() {
		w.ack(ctx, d, log)
		return
	}
	j, err := job.Parse(body)
	if err != nil {
		log.Error("stored job no longer parses; dropped", "err", err)
		w.ack(ctx, d, log)
		return
	}
	j.ScheduledAt = refTime
	parent := j.RequestID
	child := childID(parent, ref.Phase, ref.Index)
	start := ledger.Start{RequestID: child, Parent: parent, ProjectID: j.ProjectID, CampaignID: j.Campaign.ID,
		Action: string(j.Action), Reference: refTime}
	// A partitioned run paused as a whole: partitions not started yet are
	// kept for its resume.
	if pausing, err := w.cfg.Ledger.Pausing(ctx, parent); err != nil {
		w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), log)
		return
	} else if pausing {
		if kept, err := w.cfg.Ledger.Park(ctx, start, d.Body()); err == nil && kept {
			log.Info("partitioned run paused; partition kept for its resume")
			w.ack(ctx, d, log)
			return
		}
	}
	claim, err := w.cfg.Ledger.Claim(ctx, start, w.cfg.Owner, w.cfg.Lease)
	if err != nil {
		w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), log)
		return
	}
	if !claim.Granted && claim.Run.Status == ledger.Paused {
		w.park(ctx, d, start, log)
		return
	}
	if !claim.Granted {
		if claim.Run.Status.Final() {
			// Finished before; the phase may not have advanced if that
			// worker died in between.
			w.advanceOrHandBack(ctx, d, j, ref.Phase, plan, log)
			return
		}
		w.nack(ctx, d, w.cfg.Lease, log)
		return
	}
	d = ledgerAttempt{d, claim.Run.Attempts}
	if d.Attempt() > w.cfg.MaxAttempts {
		w.retryPart(ctx, d, j, child, nil, fmt.Errorf("claimed %d times, at most %d attempts: earlier attempts ended without an outcome (the worker crashed or was killed while running the partition)",
			d.Attempt(), w.cfg.MaxAttempts), log)
		return
	}
	part := &publish.Part{From: plan.Bounds[ref.Index], Before: plan.Bounds[ref.Index+1]}
	switch ref.Phase {
	case phaseScan:
		part.Scan = true
		part.Record = func(fps []uint64) error { return w.cfg.Ledger.RecordScan(ctx, parent, ref.Index, fps) }
	case phasePublish:
		if part.Taken, part.Offset, err = w.cfg.Ledger.Taken(ctx, parent, ref.Index); err != nil {
			w.retryPart(ctx, d, j, child, nil, err, log)
			return
		}
	default:
		log.Error("unknown phase; dropped")
		w.ack(ctx, d, log)
		return
	}
	var cp publish.Checkpoint
	if len(claim.Run.Checkpoint) > 0 {
		_ = json.Unmarshal(claim.Run.Checkpoint, &cp)
	}
	res, err := w.run(ctx, d, j, child, part, cp, log)
	if err == nil {
		err = w.cfg.Failpoints.Hit(failpoint.BeforeCommit)
	}
	switch {
	case err == nil:
		res.RequestID = parent
		out, _ := json.Marshal(res)
		if err := w.cfg.Ledger.Finish(ctx, child, w.cfg.Owner, ledger.Completed, res.Candidates, res.Published, out, ""); err != nil {
			w.retryPart(ctx, d, j, child, nil, err, log)
			return
		}
		log.Info("partition completed", "candidates", res.Candidates, "published", res.Published)
		w.advanceOrHandBack(ctx, d, j, ref.Phase, plan, log)
	case isStopRequest(err):
		w.stopped(ctx, d, j, child, err, res, time.Now(), log)
	case ctx.Err() != nil:
		w.handBack(ctx, d, child, res, log)
	default:
		w.retryPart(ctx, d, j, child, res, err, log)
	}
}

// retryPart is retry for a partition: the partition's run is retried, and
// the whole run fails when the partition runs out of attempts.
func (w *Worker) retryPart(ctx context.Context, d queue.Delivery, j *job.Job, child string, res *publish.Result, cause error, log *slog.Logger) {
	cj := *j
	cj.RequestID = child
	w.fail(ctx, d, &cj, res, cause)
	if ctx.Err() == nil && d.Attempt() >= w.cfg.MaxAttempts {
		if err := w.cfg.Ledger.FailParent(context.WithoutCancel(ctx), j.RequestID, fmt.Sprintf("%s: %v", child, cause)); err != nil {
			log.Error("fail partitioned run", "err", err)
		}
	}
}

// advanceOrHandBack advances the run and acknowledges the sub-job; when
// advancing fails, the sub-job goes back to the queue, and its redelivery
// (its run already completed) advances again. Acknowledging it anyway
// would leave a run whose last range finished stuck in its phase.
func (w *Worker) advanceOrHandBack(ctx context.Context, d queue.Delivery, j *job.Job, phase string, plan ledger.Partition, log *slog.Logger) {
	if err := w.advance(ctx, j, phase, plan, log); err != nil {
		w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), log)
		return
	}
	w.ack(ctx, d, log)
}

// advance moves the run to its next phase once the current one is done.
func (w *Worker) advance(ctx context.Context, j *job.Job, phase string, plan ledger.Partition, log *slog.Logger) error {
	parent := j.RequestID
	var ok bool
	var err error
	switch phase {
	case phaseScan:
		ok, err = w.cfg.Ledger.Advance(ctx, parent, ledger.Scanning, ledger.Publishing, plan.Parts(), childPrefix(parent, phaseScan), nil,
			func(ctx context.Context) error { return w.enqueuePhase(ctx, parent, phasePublish, plan.Parts()) })
	case phasePublish:
		var res *publish.Result
		ok, err = w.cfg.Ledger.Advance(ctx, parent, ledger.Publishing, ledger.Completed, plan.Parts(), childPrefix(parent, phasePublish),
			func(parts []json.RawMessage) (json.RawMessage, error) {
				var err error
				if res, err = w.sum(ctx, j, plan, parts); err != nil {
					return nil, err
				}
				return json.Marshal(res)
			}, nil)
		if ok {
			log.Info("partitioned job completed", "candidates", res.Candidates, "published", res.Published)
			w.emit(ctx, "completed", j, 0, res, "")
			if w.cfg.Observer != nil {
				w.cfg.Observer.JobDone("completed", res, time.Duration(res.DurationMS)*time.Millisecond)
			}
		}
	}
	if err != nil {
		log.Error("advance partitioned run; handed back to try again", "err", err)
		return err
	}
	if ok && phase == phaseScan {
		log.Info("scans completed; publishing", "parts", plan.Parts())
	}
	return nil
}

// sum adds up the partitions' results.
func (w *Worker) sum(ctx context.Context, j *job.Job, plan ledger.Partition, parts []json.RawMessage) (*publish.Result, error) {
	total := &publish.Result{RequestID: j.RequestID, Action: j.Action, Status: publish.StatusCompleted, Variants: map[string]int64{}}
	total.Candidates += plan.Unknown
	total.Skipped.UnknownUser += plan.Unknown
	for _, raw := range parts {
		var r publish.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, err
		}
		total.Candidates += r.Candidates
		total.Published += r.Published
		total.Skipped.Add(r.Skipped)
		total.Deferred += r.Deferred
		total.Unpublishable.MessageTooLarge += r.Unpublishable.MessageTooLarge
		for k, v := range r.Variants {
			total.Variants[k] += v
		}
	}
	if run, err := w.cfg.Ledger.Get(ctx, j.RequestID); err == nil {
		total.DurationMS = time.Since(run.CreatedAt).Milliseconds()
	}
	return total, nil
}

// Package partition runs a large publish job as key ranges of
// notifly_user_id that every worker on the job queue shares, with the
// rules of one unpartitioned run.
//
// The worker that claims a large job hands it to Split, which plans the
// ranges from the data (quantiles of the user table, not an assumed id
// format), records the plan on the run, and sends one scan sub-job per
// range to the job queue. A scan checks its range without publishing and
// records the destinations it would publish. When the last scan has
// completed, one publish sub-job per range: a range publishes only the
// destinations no earlier range publishes (the smallest (notifly_user_id,
// notifly_device_id) over the whole run wins a destination), numbering its
// messages from the count of earlier ranges, so throttle waves are global.
// The last range to complete sums the counts into the run and completes it.
//
// Each range is a run of its own in the ledger (request_id#scan-0003,
// request_id#publish-0003), claimed, leased, checkpointed and retried like
// any run; the worker runs it. The worker opens every delivery (Open): a
// sub-job is a Task, which the worker claims and runs like a whole job
// (Task.Range is what the engine runs), then ends with Task.Complete, which
// records what the range found, the range's run and the run's next phase in
// that order, or Task.Fail.
package partition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/state"
)

// Engine is what planning asks of the engine (publish.Runner).
type Engine interface {
	// Precheck returns the rejection a run of the whole job would, for
	// the checks its ranges cannot make.
	Precheck(ctx context.Context, j *job.Job) error
	// UnknownUsers counts the listed ids with no user, which no range
	// holds.
	UnknownUsers(ctx context.Context, j *job.Job) (int64, error)
}

// Config configures a Coordinator.
type Config struct {
	// Audience is the audience database, sampled to plan ranges. Required.
	Audience *pgxpool.Pool
	// State is segpub's own database, the run ledger's. Required.
	State *pgxpool.Pool
	// Queue is the job queue the sub-jobs are sent to. Required when Rows
	// is set.
	Queue queue.Queue
	// Engine checks a job before it is split. Required.
	Engine Engine
	// Rows splits a publish job whose audience is estimated over this many
	// users into ranges of about this many (serve: --partition-rows). 0:
	// never split; the sub-jobs other workers send still run.
	Rows int
	// Failpoints lets tests fail runs at named points (internal/failpoint).
	// Nil in production.
	Failpoints *failpoint.Set
}

func (c *Config) validate() error {
	switch {
	case c.Audience == nil:
		return errors.New("partition: Config.Audience is required")
	case c.State == nil:
		return errors.New("partition: Config.State is required")
	case c.Queue == nil && c.Rows > 0:
		return errors.New("partition: Config.Queue is required to split jobs (Config.Rows)")
	case c.Engine == nil:
		return errors.New("partition: Config.Engine is required")
	case c.Rows < 0:
		return fmt.Errorf("partition: Config.Rows %d is negative", c.Rows)
	}
	return nil
}

// Coordinator plans partitioned runs and moves them through their phases.
// It is safe for concurrent use.
type Coordinator struct {
	cfg Config
	rec *state.Partitions
}

// New returns a Coordinator. The tables it uses are segpub's own
// (state.Migrate, which ledger.New runs, creates them).
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg, rec: state.PartitionsOn(cfg.State)}, nil
}

// plan is what a partitioned run records of its ranges.
type plan struct {
	// Bounds are the ranges' edges: range i is [Bounds[i], Bounds[i+1]),
	// "" meaning unbounded.
	Bounds []string `json:"bounds"`
	// Unknown is the number of listed ids with no user, counted once.
	Unknown int64 `json:"unknown"`
}

// parts is the number of ranges.
func (p plan) parts() int { return len(p.Bounds) - 1 }

// Phase is a partitioned run's phase, which its sub-jobs run.
type Phase string

const (
	// Scan checks each range and records the destinations it would
	// publish.
	Scan Phase = "scan"
	// Publish publishes each range's own destinations.
	Publish Phase = "publish"
)

// status is the run's ledger status during the phase.
func (p Phase) status() state.Status {
	if p == Scan {
		return state.Scanning
	}
	return state.Publishing
}

// RunID names the ledger run of a range in a phase.
func RunID(requestID string, phase Phase, part int) string {
	return fmt.Sprintf("%s#%s-%04d", requestID, phase, part)
}

func runPrefix(requestID string, phase Phase) string { return requestID + "#" + string(phase) + "-" }

// message is a sub-job on the job queue. It is segpub's own message, not a
// job message of the contract.
type message struct {
	Part *ref `json:"segpub_part"`
}

type ref struct {
	Parent string `json:"parent"`
	Phase  Phase  `json:"phase"`
	Index  int    `json:"index"`
}

// send sends one sub-job per range of a phase.
func (c *Coordinator) send(ctx context.Context, requestID string, phase Phase, parts int) error {
	point := failpoint.PlanSent
	if phase == Publish {
		point = failpoint.HandOff
	}
	for i := 0; i < parts; i++ {
		if i == 1 {
			if err := c.cfg.Failpoints.Hit(point); err != nil {
				return err
			}
		}
		body, _ := json.Marshal(message{Part: &ref{Parent: requestID, Phase: phase, Index: i}})
		if err := c.cfg.Queue.Send(ctx, body, RunID(requestID, phase, i)); err != nil {
			return fmt.Errorf("enqueue %s of %s: %w", phase, requestID, err)
		}
	}
	return nil
}

// ErrUnplanned wraps the error of a plan that failed: the job runs whole.
var ErrUnplanned = errors.New("plan partitions")

// Split splits a claimed job when it is large: it plans the ranges, turns
// the run (held by owner) into a partitioned one, storing raw (the job's
// body) and the plan, and sends the scan phase's sub-jobs, in one
// transaction. It returns the number of ranges; 0 means: run it whole. An
// error wrapping ErrUnplanned means the same; any other leaves the run as
// it was, to be retried.
func (c *Coordinator) Split(ctx context.Context, j *job.Job, raw []byte, owner string) (int, error) {
	if c.cfg.Rows <= 0 || j.Action != job.ActionPublish || j.Campaign.Audience.Type == job.AudienceCSV {
		return 0, nil
	}
	bounds, unknown, err := c.Bounds(ctx, j, c.cfg.Rows)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnplanned, err)
	}
	if err := c.cfg.Failpoints.Hit(failpoint.Planning); err != nil {
		return 0, fmt.Errorf("partition: %w", err)
	}
	if bounds == nil {
		return 0, nil
	}
	p := plan{Bounds: bounds, Unknown: unknown}
	planBody, _ := json.Marshal(p)
	err = c.rec.Split(ctx, j.RequestID, owner, raw, planBody, func(ctx context.Context) error {
		return c.send(ctx, j.RequestID, Scan, p.parts())
	})
	if err != nil {
		return 0, fmt.Errorf("partition: %w", err)
	}
	return p.parts(), nil
}

// Task is what a sub-job asks a worker to run: one range of a partitioned
// run in one phase, as a run of its own in the ledger.
type Task struct {
	// Job is the partitioned job, its ScheduledAt the run's reference
	// time. Its request_id is the run's, in events and logs too.
	Job   *job.Job
	Phase Phase
	// Part is the range's index, from 0; Parts the number of ranges.
	Part, Parts int
	// RunID is the range's own run in the ledger.
	RunID string

	plan plan
	c    *Coordinator
}

// Start is what the ledger's claim needs of the range's run.
func (t *Task) Start() ledger.Start {
	j := t.Job
	return ledger.Start{RequestID: t.RunID, Parent: j.RequestID, ProjectID: j.ProjectID, CampaignID: j.Campaign.ID,
		Action: string(j.Action), Reference: j.ScheduledAt}
}

var (
	// ErrFinished is returned by Open for a late copy of a sub-job whose
	// range ran, of a run that is finished (completed, failed or
	// cancelled): nothing is left to do.
	ErrFinished = errors.New("partitioned run finished")
	// ErrStale is wrapped by Open's error for a sub-job that can never
	// run: its run is unknown, or not one it can belong to.
	ErrStale = errors.New("sub-job can never run")
	// ErrEarly is wrapped by Open's error for a sub-job of a phase its run
	// has not reached: the transaction that moves the run sends the next
	// phase's sub-jobs before it commits, and may not commit. The sub-job
	// is handed back until it does.
	ErrEarly = errors.New("sub-job's phase not reached")
)

// Open reads a sub-job's task from a message body. It returns nil, nil
// when body is not a sub-job, ErrFinished for one that must be dropped,
// errors wrapping ErrStale for one that can never run (the worker
// dead-letters it after its attempts) and ErrEarly for one to hand back;
// any other error is the database's.
func (c *Coordinator) Open(ctx context.Context, body []byte) (*Task, error) {
	var m message
	if err := json.Unmarshal(body, &m); err != nil || m.Part == nil {
		return nil, nil
	}
	r := m.Part
	// What the database could not even compare is no run's.
	if r.Parent == "" || len(r.Parent) > 1024 || !utf8.ValidString(r.Parent) || strings.ContainsRune(r.Parent, 0) {
		return nil, fmt.Errorf("%w: %q names no run", ErrStale, r.Parent)
	}
	s, err := c.rec.Load(ctx, r.Parent)
	if errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("%w: no partitioned run %q", ErrStale, r.Parent)
	}
	if err != nil {
		return nil, err
	}
	var p plan
	if err := json.Unmarshal(s.Plan, &p); err != nil {
		// A run that was never split: no sub-job can be its.
		return nil, fmt.Errorf("%w: run %s is not partitioned (no plan: %v)", ErrStale, r.Parent, err)
	}
	if r.Index < 0 || r.Index >= p.parts() {
		return nil, fmt.Errorf("%w: run %q has no range %d", ErrStale, r.Parent, r.Index)
	}
	if r.Phase != Scan && r.Phase != Publish {
		return nil, fmt.Errorf("%w: unknown phase %q", ErrStale, r.Phase)
	}
	if s.Status.Final() {
		// A late copy of a range that ran is done with; a range that never
		// ran (its run was cancelled or failed first, or the sub-job is
		// forged) can never run, and is shown as such.
		ran, err := c.rec.Exists(ctx, RunID(r.Parent, r.Phase, r.Index))
		if err != nil {
			return nil, err
		}
		if !ran {
			return nil, fmt.Errorf("%w: run %q is %s and its range %d (%s) never ran", ErrStale, r.Parent, s.Status, r.Index, r.Phase)
		}
		return nil, ErrFinished
	}
	// A publish range run while its run is still scanning would complete
	// without advancing it (the run is not publishing yet), and the
	// phase's sub-jobs, once sent, are not sent again.
	if r.Phase == Publish && s.Status == state.Scanning {
		return nil, fmt.Errorf("%w: run %q is still scanning", ErrEarly, r.Parent)
	}
	j, err := job.Parse(s.Job)
	if err != nil {
		return nil, fmt.Errorf("%w: the stored job no longer parses: %w", ErrStale, err)
	}
	j.ScheduledAt = s.Reference
	return &Task{Job: j, Phase: r.Phase, Part: r.Index, Parts: p.parts(), RunID: RunID(r.Parent, r.Phase, r.Index), plan: p, c: c}, nil
}

// Range is what the engine runs for the task, once the worker holds the
// range's run: a scan collects the range's destinations; a publish starts
// where the earlier ranges leave off.
func (t *Task) Range(ctx context.Context) (*publish.Range, error) {
	rng := &publish.Range{From: t.plan.Bounds[t.Part], Before: t.plan.Bounds[t.Part+1]}
	if t.Phase == Scan {
		rng.Collect = true
		return rng, nil
	}
	var err error
	if rng.Taken, rng.Offset, err = t.c.rec.Taken(ctx, t.Job.RequestID, t.Part); err != nil {
		return nil, err
	}
	return rng, nil
}

// Step is what Complete did to the partitioned run.
type Step struct {
	// Publishing: the last scan completed, and the publish phase's
	// sub-jobs were sent.
	Publishing bool
	// Completed is the whole run's result when the last range to publish
	// completed it.
	Completed *publish.Result
}

// ErrNotAdvanced is wrapped by Complete's error when the range's run is
// recorded as completed but the partitioned run could not be moved on:
// the sub-job must be handed back, not acknowledged, and its redelivery
// (its range's run completed) advances again.
var ErrNotAdvanced = errors.New("partitioned run not advanced")

// Complete ends a successful run of the task's range: it records what the
// range found (a scan's destinations), then calls finish, which records the
// range's run as completed, then moves the partitioned run to its next
// phase when every range of the task's phase has completed (exactly one of
// the ranges that complete at once moves it). The order matters: a crash
// before finish runs the range again, which records it again; a crash
// after it leaves the run to the sub-job's redelivery. res and finish are
// nil for a redelivered sub-job whose range's run has completed already.
// An error from recording or finish is returned as it is (the attempt
// failed); one from the move wraps ErrNotAdvanced.
func (t *Task) Complete(ctx context.Context, res *publish.Result, finish func(context.Context) error) (Step, error) {
	if res != nil && t.Phase == Scan {
		if err := t.c.rec.RecordScan(ctx, t.Job.RequestID, t.Part, res.Destinations); err != nil {
			return Step{}, err
		}
	}
	if finish != nil {
		if err := finish(ctx); err != nil {
			return Step{}, err
		}
	}
	step, err := t.c.advance(ctx, t)
	if err != nil {
		return Step{}, fmt.Errorf("%w: %w", ErrNotAdvanced, err)
	}
	return step, nil
}

// advance moves the run to its next phase when every range of the task's
// phase has completed.
func (c *Coordinator) advance(ctx context.Context, t *Task) (Step, error) {
	requestID := t.Job.RequestID
	a := state.Advance{RequestID: requestID, From: t.Phase.status(), Parts: t.Parts, ChildPrefix: runPrefix(requestID, t.Phase)}
	var res *publish.Result
	switch t.Phase {
	case Scan:
		a.To = state.Publishing
		a.Send = func(ctx context.Context) error { return c.send(ctx, requestID, Publish, t.Parts) }
	case Publish:
		a.To = state.Completed
		a.Summarize = func(parts []json.RawMessage) (json.RawMessage, error) {
			var err error
			if res, err = c.sum(ctx, t, parts); err != nil {
				return nil, err
			}
			return json.Marshal(res)
		}
	}
	ok, err := c.rec.Advance(ctx, a)
	if err != nil || !ok {
		return Step{}, err
	}
	if t.Phase == Scan {
		return Step{Publishing: true}, nil
	}
	return Step{Completed: res}, nil
}

// sum adds up the ranges' results into the run's.
func (c *Coordinator) sum(ctx context.Context, t *Task, parts []json.RawMessage) (*publish.Result, error) {
	j := t.Job
	total := &publish.Result{RequestID: j.RequestID, Action: j.Action, Status: publish.StatusCompleted, Variants: map[string]int64{}}
	total.Candidates += t.plan.Unknown
	total.Skipped.UnknownUser += t.plan.Unknown
	for _, raw := range parts {
		var r publish.Result
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("read a range's result: %w", err)
		}
		total.Add(&r)
	}
	if created, err := c.rec.CreatedAt(ctx, j.RequestID); err == nil {
		total.DurationMS = time.Since(created).Milliseconds()
	}
	return total, nil
}

// Fail records the whole run as failed when the task's range failed for
// good.
func (t *Task) Fail(ctx context.Context, reason string) error {
	return t.c.rec.Fail(ctx, t.Job.RequestID, fmt.Sprintf("%s: %s", t.RunID, reason))
}

// RecordScan stores the destinations of a range's scan, as Complete does.
// Exported for the benchmarks, which time the publish phase's look-up.
func (c *Coordinator) RecordScan(ctx context.Context, requestID string, part int, fps []uint64) error {
	return c.rec.RecordScan(ctx, requestID, part, fps)
}

// Taken returns the destinations of range part that earlier ranges publish,
// and how many distinct destinations those publish in all, as Range does
// for a publish task. Exported for the benchmarks.
func (c *Coordinator) Taken(ctx context.Context, requestID string, part int) ([]uint64, int64, error) {
	return c.rec.Taken(ctx, requestID, part)
}

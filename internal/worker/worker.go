// Package worker is `segpub serve`'s job loop: it takes jobs straight from
// the job queue, runs them through the engine, and acknowledges them only
// when their run is recorded as finished. Rejected jobs and jobs that
// exhausted their attempts go to the dead-letter destination with the reason.
// A large job is handed to the partition package once (Partitions.Split);
// the sub-jobs of its ranges come back on the queue and run like any job,
// each as a run of its own in the ledger.
package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/events"
	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/lifecycle"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/partition"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/redact"
)

// Runner runs a job, or one key range of it, from a checkpoint
// (publish.Runner).
type Runner interface {
	RunWith(ctx context.Context, j *job.Job, rng *publish.Range, sink publish.Sink, cp publish.Checkpoint, hooks publish.Hooks) (*publish.Result, error)
}

// Partitions runs large publish jobs as key ranges every worker shares
// (partition.Coordinator). The worker opens every delivery with it; a
// sub-job is a range (partition.Task) that the worker claims, runs and
// ends (Task.Complete, Task.Fail) on the same path as a whole job.
type Partitions interface {
	// Open reads a delivery's body: the range a sub-job runs, nil when
	// the body is not a sub-job.
	Open(ctx context.Context, body []byte) (*partition.Task, error)
	// Split splits a claimed job when it is large; 0 ranges: run it
	// whole.
	Split(ctx context.Context, j *job.Job, raw []byte, owner string) (int, error)
}

// Observer is told what the worker does; metrics implement it. Every method
// must be cheap and safe for concurrent use.
type Observer interface {
	JobDone(outcome string, res *publish.Result, d time.Duration)
	QueueLag(d time.Duration)
}

// enqueued is implemented by deliveries that know when they were sent.
type enqueued interface{ EnqueuedAt() time.Time }

// Config configures a Worker.
type Config struct {
	Queue queue.Queue
	// DeadLetter receives rejected and exhausted jobs. Nil: they are
	// only logged (and recorded in the ledger).
	DeadLetter queue.Queue
	// Store resolves claim checks. Nil: claim-checked jobs are rejected.
	Store  msgstore.Store
	Ledger *ledger.Ledger
	Runner Runner
	// Sink receives channel messages.
	Sink   publish.Sink
	Logger *slog.Logger
	// Observer, when set, is told of every finished job.
	Observer Observer
	// Events, when set, receives each run's start, progress and end.
	Events events.Emitter
	// Concurrency is the number of jobs run at once. Default: 1.
	Concurrency int
	// MaxAttempts is the number of runs a failing job gets before it is
	// dead-lettered. Default: 5.
	MaxAttempts int
	// MaxJobBytes rejects larger jobs, inline or claim-checked, before
	// they are parsed. Default: job.DefaultMaxJobBytes.
	MaxJobBytes int64
	// Lease is how long a run is held without a heartbeat. Default: 60s.
	Lease time.Duration
	// Backoff is the redelivery delay after failed attempt n. Default:
	// 5s·2^(n-1), at most 5 minutes.
	Backoff func(attempt int) time.Duration
	// Owner names this worker in the ledger. Default: host:pid.
	Owner string
	// Partitions splits large publish jobs into ranges run by every
	// worker sharing the queue, and opens their sub-jobs. Nil: jobs run
	// whole, and sub-jobs are not recognised (every worker on a queue
	// that carries them needs one).
	Partitions Partitions
	// Failpoints lets tests fail runs at named points (internal/failpoint).
	// Nil in production.
	Failpoints *failpoint.Set
	// HandBackWait is how long Stop waits, once it has cancelled the
	// running jobs, for them to hand their runs back. A job still running
	// then ignores cancellation: it is abandoned (Stop returns
	// ErrAbandoned) so the process can exit, and like a crashed run it is
	// redelivered and counted as an attempt. Default: DefaultHandBackWait.
	HandBackWait time.Duration
}

// DefaultHandBackWait is Config.HandBackWait's default.
const DefaultHandBackWait = 5 * time.Second

// ErrAbandoned is returned by Stop when running jobs did not stop within
// Config.HandBackWait of being cancelled.
var ErrAbandoned = fmt.Errorf("worker: running jobs: %w", lifecycle.ErrAbandoned)

func (c *Config) validate() error {
	switch {
	case c.Queue == nil:
		return errors.New("worker: Config.Queue is required")
	case c.Ledger == nil:
		return errors.New("worker: Config.Ledger is required")
	case c.Runner == nil:
		return errors.New("worker: Config.Runner is required")
	case c.Sink == nil:
		return errors.New("worker: Config.Sink is required")
	case c.Concurrency < 0:
		return fmt.Errorf("worker: Config.Concurrency %d is negative", c.Concurrency)
	case c.MaxJobBytes < 0:
		return fmt.Errorf("worker: Config.MaxJobBytes %d is negative", c.MaxJobBytes)
	case c.Lease != 0 && c.Lease < 3*time.Second:
		return fmt.Errorf("worker: Config.Lease %s is under 3s", c.Lease)
	case c.HandBackWait < 0:
		return fmt.Errorf("worker: Config.HandBackWait %s is negative", c.HandBackWait)
	}
	return nil
}

func defaultBackoff(attempt int) time.Duration {
	d := 5 * time.Second << min(attempt-1, 10)
	return min(d, 5*time.Minute)
}

// Worker consumes the job queue.
type Worker struct {
	cfg Config
	log *slog.Logger
	// loop's soft stop ends the receive loops; its hard stop cancels the
	// running jobs.
	loop lifecycle.Loop
}

// New returns a Worker.
func New(cfg Config) (*Worker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 1)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, 5)
	cfg.MaxJobBytes = cmp.Or(cfg.MaxJobBytes, job.DefaultMaxJobBytes)
	cfg.Lease = cmp.Or(cfg.Lease, 60*time.Second)
	cfg.HandBackWait = cmp.Or(cfg.HandBackWait, DefaultHandBackWait)
	if cfg.Backoff == nil {
		cfg.Backoff = defaultBackoff
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		cfg.Owner = host + ":" + strconv.Itoa(os.Getpid())
	}
	log := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	return &Worker{cfg: cfg, log: log.With("owner", cfg.Owner)}, nil
}

// Start begins consuming. It returns at once; Stop ends it.
func (w *Worker) Start(ctx context.Context) error {
	// Jobs outlive the receive loops' context: a soft stop lets them
	// finish.
	err := w.loop.StartWork(ctx, func(recvCtx, jobCtx context.Context) {
		var wg sync.WaitGroup
		for range w.cfg.Concurrency {
			wg.Go(func() { w.receive(recvCtx, jobCtx) })
		}
		wg.Wait()
	})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w.log.Info("worker started", "concurrency", w.cfg.Concurrency)
	return nil
}

// Stop stops taking jobs and waits for the running ones to finish. When ctx
// ends first, running jobs are cancelled: each stops after the batch in
// hand and its message is handed back to the queue for another worker.
// Stop returns at most Config.HandBackWait after ctx ends, with ErrAbandoned
// when some job ignored its cancellation.
func (w *Worker) Stop(ctx context.Context) error {
	err := w.loop.Shutdown(ctx, w.cfg.HandBackWait)
	switch {
	case errors.Is(err, lifecycle.ErrAbandoned):
		w.log.Error("running jobs did not stop when cancelled; abandoned (they will be redelivered and counted as an attempt)", "waited", w.cfg.HandBackWait)
		return ErrAbandoned
	case err != nil:
		w.log.Warn("stop deadline reached: running jobs handed back")
	}
	return err
}

func (w *Worker) receive(recvCtx, jobCtx context.Context) {
	for {
		d, err := w.cfg.Queue.Receive(recvCtx)
		if err != nil {
			if recvCtx.Err() != nil {
				return
			}
			w.log.Error("receive job", "err", err)
			select {
			case <-recvCtx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		w.handle(jobCtx, d)
	}
}

// attempt is one run of a job, or of one range of a partitioned job, as the
// worker handles it.
type attempt struct {
	// job is the job (nil when it could not be read); for a range, the
	// partitioned job, whose request_id every event and log line carries.
	job *job.Job
	// runID is the ledger run the attempt holds: the job's request_id,
	// or the range's own run.
	runID string
	// task is the range (nil for a whole job).
	task *partition.Task
	// start is what the ledger's claim needs of the run.
	start ledger.Start
}

func whole(j *job.Job) attempt {
	a := attempt{job: j}
	if j != nil {
		a.runID = j.RequestID
		a.start = startOf(j, j.ScheduledAt)
	}
	return a
}

// logger is w's logger with the attempt's request_id, and a range's phase
// and part as fields of their own.
func (w *Worker) logger(a attempt, n int) *slog.Logger {
	log := w.log
	if a.job != nil {
		log = log.With("request_id", a.job.RequestID)
	}
	if a.task != nil {
		log = log.With("phase", a.task.Phase, "part", a.task.Part)
	}
	return log.With("attempt", n)
}

// handle runs one delivery to its end: acknowledged, handed back for a
// retry, or dead-lettered. A job and a range of a partitioned job take the
// same path: opened, claimed as a run of their own in the ledger, run,
// and ended.
func (w *Worker) handle(ctx context.Context, d queue.Delivery) {
	start := time.Now()
	if e, ok := d.(enqueued); ok && w.cfg.Observer != nil && d.Attempt() == 1 {
		w.cfg.Observer.QueueLag(start.Sub(e.EnqueuedAt()))
	}
	if err := w.checkSize(d.Body()); err != nil {
		w.reject(ctx, d, nil, err)
		return
	}
	a, raw, ok := w.open(ctx, d)
	if !ok {
		return
	}
	log := w.logger(a, d.Attempt())
	run, d, ok := w.claim(ctx, d, a, log)
	if !ok {
		return
	}
	var rng *publish.Range
	if t := a.task; t != nil {
		var err error
		if rng, err = t.Range(ctx); err != nil {
			w.retry(ctx, d, a, err)
			return
		}
	} else {
		// The ledger's reference time wins: a resumed run keeps the first
		// run's "now".
		a.job.ScheduledAt = run.Reference
		// A resumed attempt starts from the counts the ledger holds, not
		// 0/0.
		w.emit(ctx, "started", a, d.Attempt(), &publish.Result{Candidates: run.Candidates, Published: run.Published}, "")
		// A run that published before (an earlier attempt ran it whole)
		// goes on whole from its checkpoint: its ranges would publish it
		// again.
		resumed := len(run.Checkpoint) > 0 || run.Published > 0
		if !resumed && w.split(ctx, d, a, raw, log) {
			return
		}
	}
	w.execute(ctx, d, a, rng, w.checkpoint(run, log), start, log)
}

// open reads a delivery: a sub-job's range (when the worker has
// Partitions), or a job, its claim check resolved (raw: its body). false:
// the delivery was dealt with (dropped, handed back or rejected).
func (w *Worker) open(ctx context.Context, d queue.Delivery) (a attempt, raw []byte, ok bool) {
	if w.cfg.Partitions != nil {
		t, err := w.cfg.Partitions.Open(ctx, d.Body())
		switch {
		case errors.Is(err, partition.ErrFinished):
			w.ack(ctx, d, w.log)
			return a, nil, false
		case errors.Is(err, partition.ErrStale), errors.Is(err, partition.ErrEarly):
			// A sub-job that can never run (forged, stale, its run gone
			// or finished before it ran), or one of a phase its run does
			// not reach: handed back like a failed job, and dead-lettered
			// after its last attempt, so none is redelivered forever.
			w.retry(ctx, d, whole(nil), fmt.Errorf("sub-job: %w", err))
			return a, nil, false
		case err != nil:
			// The database's error: not the sub-job's fault, and its run
			// waits for it, so it is handed back until the database
			// answers.
			w.log.Warn("open sub-job", "err", err)
			w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), w.log)
			return a, nil, false
		case t != nil:
			return attempt{job: t.Job, runID: t.RunID, task: t, start: t.Start()}, nil, true
		}
	}
	j, raw, err := claimcheck.Resolve(ctx, w.cfg.Store, d.Body(), w.cfg.MaxJobBytes)
	if err != nil {
		if job.IsRejection(err) {
			w.reject(ctx, d, j, err)
			return a, nil, false
		}
		w.retry(ctx, d, whole(nil), fmt.Errorf("resolve job: %w", err))
		return a, nil, false
	}
	a = whole(j)
	if a.start.Reference.IsZero() {
		a.start.Reference = time.Now().Truncate(time.Second)
	}
	a.start.Fingerprint = ledger.JobFingerprint(raw)
	return a, raw, true
}

// claim takes the lease of the attempt's run. It returns the run and the
// delivery, whose attempt number is now the ledger's; false when the
// delivery was dealt with: a copy of a finished or partitioned run
// dropped, a paused run's job kept for its resume, a run another worker
// holds handed back, a crash loop dead-lettered.
func (w *Worker) claim(ctx context.Context, d queue.Delivery, a attempt, log *slog.Logger) (*ledger.Run, queue.Delivery, bool) {
	// A partitioned run paused as a whole: ranges not started yet are kept
	// for its resume.
	if a.task != nil {
		pausing, err := w.cfg.Ledger.Pausing(ctx, a.job.RequestID)
		if err != nil {
			w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), log)
			return nil, d, false
		}
		if pausing {
			if kept, err := w.cfg.Ledger.Park(ctx, a.start, d.Body()); err == nil && kept {
				log.Info("partitioned run paused; partition kept for its resume")
				w.ack(ctx, d, log)
				return nil, d, false
			}
		}
	}
	claim, err := w.cfg.Ledger.Claim(ctx, a.start, w.cfg.Owner, w.cfg.Lease)
	switch {
	case err != nil && a.task != nil:
		// A range's run is claimed again on redelivery; its failures are
		// counted by the attempts it runs.
		w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), log)
		return nil, d, false
	case err != nil:
		w.retry(ctx, d, a, err)
		return nil, d, false
	case !claim.Granted:
		w.notGranted(ctx, d, a, claim.Run, log)
		return nil, d, false
	}
	// The ledger counts attempts when they are claimed: the queue's count
	// also counts graceful hand-backs, and an attempt that crashed the
	// worker records nothing else.
	d = ledgerAttempt{d, claim.Run.Attempts}
	if w.crashLoop(ctx, d, a) {
		return nil, d, false
	}
	return claim.Run, d, true
}

// notGranted deals with a delivery whose run the worker could not claim,
// by the run's status as stored.
func (w *Worker) notGranted(ctx context.Context, d queue.Delivery, a attempt, run *ledger.Run, log *slog.Logger) {
	switch st := run.Status; {
	case a.task == nil && run.Fingerprint != "" && run.Fingerprint != a.start.Fingerprint:
		w.conflict(ctx, d, a.job, run, log)
	case st == ledger.Paused:
		w.park(ctx, d, a.start, log)
	case st.Final() && a.task != nil:
		// Finished before; the partitioned run may not have advanced if
		// that worker died in between.
		step, err := a.task.Complete(ctx, nil, nil)
		w.advanced(ctx, d, a, step, err, log)
	case st.Final():
		// A copy of a finished run (queue redelivery, scheduler retry,
		// operator replay): its stored result stands.
		log.Info("run already finished; copy dropped", "status", st, "result", string(run.Result))
		w.ack(ctx, d, log)
	case st.Phase():
		// Split, though the split's commit reported an error: its
		// sub-jobs carry the run.
		log.Info("run already partitioned; copy dropped", "status", st)
		w.ack(ctx, d, log)
	default:
		log.Info("run held by another worker; handed back", "holder", run.Owner)
		w.nack(ctx, d, w.cfg.Lease, log)
	}
}

// split hands a claimed job to the partition package, which splits it when
// it is large (true: the job's message is done with).
func (w *Worker) split(ctx context.Context, d queue.Delivery, a attempt, raw []byte, log *slog.Logger) bool {
	if w.cfg.Partitions == nil {
		return false
	}
	parts, err := w.cfg.Partitions.Split(ctx, a.job, raw, w.cfg.Owner)
	switch {
	case errors.Is(err, partition.ErrUnplanned):
		log.Warn("the job runs whole", "err", err)
		return false
	case err != nil:
		w.retry(ctx, d, a, err)
		return true
	case parts == 0:
		return false
	}
	log.Info("job partitioned", "parts", parts)
	w.emit(ctx, "partitioned", a, d.Attempt(), nil, "")
	w.ack(ctx, d, log)
	return true
}

// checkpoint reads a claimed run's checkpoint.
func (w *Worker) checkpoint(r *ledger.Run, log *slog.Logger) publish.Checkpoint {
	var cp publish.Checkpoint
	if len(r.Checkpoint) == 0 {
		return cp
	}
	if err := json.Unmarshal(r.Checkpoint, &cp); err != nil {
		log.Warn("unreadable checkpoint; the run starts over (downstream drops repeated keys)", "err", err)
		return publish.Checkpoint{}
	}
	log.Info("resuming run", "after", cp.After, "rows", cp.Rows, "published", cp.Published)
	return cp
}

// execute runs a claimed attempt (rng: a range's, nil for a whole job) and
// records its end.
func (w *Worker) execute(ctx context.Context, d queue.Delivery, a attempt, rng *publish.Range, cp publish.Checkpoint, start time.Time, log *slog.Logger) {
	res, err := w.run(ctx, d, a, rng, cp, log)
	if err == nil {
		err = w.cfg.Failpoints.Hit(failpoint.BeforeCommit)
	}
	if err != nil {
		w.ended(ctx, d, a, res, err, start, log)
		return
	}
	body, _ := json.Marshal(res)
	o := ledger.Outcome{Status: ledger.Completed, Candidates: res.Candidates, Published: res.Published, Result: body}
	var finishErr error
	finish := func(ctx context.Context) error {
		finishErr = w.cfg.Ledger.Finish(ctx, a.runID, w.cfg.Owner, o)
		return finishErr
	}
	if a.task == nil {
		if finish(ctx) != nil {
			w.retry(ctx, d, a, finishErr)
			return
		}
		log.Info("job completed", "candidates", res.Candidates, "published", res.Published, "duration_ms", res.DurationMS)
		w.emit(ctx, "completed", a, d.Attempt(), res, "")
		w.observe("completed", res, start)
		w.ack(ctx, d, log)
		return
	}
	step, err := a.task.Complete(ctx, res, finish)
	switch {
	case finishErr != nil:
		w.retry(ctx, d, a, finishErr)
	case err != nil && !errors.Is(err, partition.ErrNotAdvanced):
		// What the range found was not recorded: the attempt failed.
		w.ended(ctx, d, a, res, err, start, log)
	default:
		log.Info("partition completed", "candidates", res.Candidates, "published", res.Published)
		w.advanced(ctx, d, a, step, err, log)
	}
}

// ended records an attempt that ended without completing.
func (w *Worker) ended(ctx context.Context, d queue.Delivery, a attempt, res *publish.Result, err error, start time.Time, log *slog.Logger) {
	switch {
	case job.IsRejection(err) && a.task == nil:
		// A range's rejection is retried like a failure: the whole job
		// passed the same checks when it was split. The run is this
		// attempt's: recorded as its holder, since a rejection of a copy
		// that holds no run never touches one.
		o := ledger.Outcome{Status: ledger.Rejected, Error: err.Error()}
		if res != nil {
			o.Candidates, o.Published = res.Candidates, res.Published
		}
		if ferr := w.cfg.Ledger.Finish(context.WithoutCancel(ctx), a.runID, w.cfg.Owner, o); ferr != nil {
			log.Error("record rejection", "err", ferr)
		}
		w.observe("rejected", res, start)
		w.reject(ctx, d, a.job, err)
	case isStopRequest(err):
		w.stopped(ctx, d, a, err, res, start, log)
	case ctx.Err() != nil:
		w.handBack(ctx, d, a.runID, res, log)
	default:
		if a.task == nil {
			w.observe("failed", res, start)
		}
		w.fail(ctx, d, a, res, err)
	}
}

// advanced acknowledges a range's sub-job once its run has completed and
// the partitioned run has moved on (Task.Complete). When moving it on
// failed, the sub-job goes back to the queue, and its redelivery (its run
// already completed) moves it again: acknowledging it anyway would leave a
// run whose last range finished stuck in its phase.
func (w *Worker) advanced(ctx context.Context, d queue.Delivery, a attempt, step partition.Step, err error, log *slog.Logger) {
	if err != nil {
		log.Error("advance partitioned run; handed back to try again", "err", err)
		w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), log)
		return
	}
	switch res := step.Completed; {
	case step.Publishing:
		log.Info("scans completed; publishing", "parts", a.task.Parts)
	case res != nil:
		log.Info("partitioned job completed", "candidates", res.Candidates, "published", res.Published)
		// The whole run's event: no range of its own.
		w.emit(ctx, "completed", whole(a.job), 0, res, "")
		if w.cfg.Observer != nil {
			w.cfg.Observer.JobDone("completed", res, time.Duration(res.DurationMS)*time.Millisecond)
		}
	}
	w.ack(ctx, d, log)
}

// checkpointTimeout bounds the write of a checkpoint, which a stop does not
// interrupt.
const checkpointTimeout = 5 * time.Second

// isStopRequest reports whether err is an operator's pause or cancel.
func isStopRequest(err error) bool {
	return errors.Is(err, ledger.ErrPauseRequested) || errors.Is(err, ledger.ErrCancelRequested)
}

// stopped records a run that stopped at an operator's request and
// acknowledges its message: a paused run keeps the message in the ledger
// for its resume, a cancelled one never runs again.
func (w *Worker) stopped(ctx context.Context, d queue.Delivery, a attempt, cause error, res *publish.Result, start time.Time, log *slog.Logger) {
	ctx = context.WithoutCancel(ctx)
	status, outcome := ledger.Paused, "paused"
	if errors.Is(cause, ledger.ErrCancelRequested) {
		status, outcome = ledger.Cancelled, "cancelled"
	}
	if res == nil {
		res = &publish.Result{RequestID: a.job.RequestID, Action: a.job.Action}
	}
	var result json.RawMessage
	if status == ledger.Cancelled {
		res.Status, res.Error = publish.StatusCancelled, ""
		result, _ = json.Marshal(res)
	}
	if err := w.cfg.Ledger.Stopped(ctx, a.runID, w.cfg.Owner, status, res.Candidates, res.Published, d.Body(), result); err != nil {
		w.retry(ctx, d, a, err)
		return
	}
	log.Info("run "+outcome+" by request", "run", a.runID, "candidates", res.Candidates, "published", res.Published)
	w.emit(ctx, outcome, a, d.Attempt(), res, "")
	w.observe(outcome, res, start)
	w.ack(ctx, d, log)
}

// park drops a copy of a paused run's job once the ledger holds it for the
// resume; when the run was resumed meanwhile, the copy goes back to be
// claimed again.
func (w *Worker) park(ctx context.Context, d queue.Delivery, s ledger.Start, log *slog.Logger) {
	kept, err := w.cfg.Ledger.Park(ctx, s, d.Body())
	switch {
	case err != nil:
		w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), log)
	case kept:
		log.Info("run paused; job kept for its resume", "run", s.RequestID)
		w.ack(ctx, d, log)
	default:
		w.nack(ctx, d, 0, log)
	}
}

// handBack records a run stopped by a shutdown as handed back, with what it
// published (acknowledged messages only), and hands its message back to the
// queue at once for another worker, which resumes from the checkpoint.
func (w *Worker) handBack(ctx context.Context, d queue.Delivery, runID string, res *publish.Result, log *slog.Logger) {
	if res == nil {
		res = &publish.Result{}
	}
	log.Info("job interrupted by shutdown; handed back", "published", res.Published)
	ctx = context.WithoutCancel(ctx)
	// The attempt is given back: a graceful stop is not the job's fault.
	if err := w.cfg.Ledger.HandBack(ctx, runID, w.cfg.Owner, res.Candidates, res.Published, ""); err != nil {
		log.Error("record hand-back", "err", err)
	}
	w.nack(ctx, d, 0, log)
}

// ledgerAttempt is a delivery whose attempt number is the ledger's.
type ledgerAttempt struct {
	queue.Delivery
	attempt int
}

func (d ledgerAttempt) Attempt() int { return d.attempt }

// crashLoop dead-letters a run claimed more times than it may be attempted
// (and reports true). Failed attempts are dead-lettered by retry on the
// last one, so a run claimed past its last attempt had attempts that ended
// with no outcome recorded: its worker crashed (OOM) or was killed while
// running it, and would be again.
func (w *Worker) crashLoop(ctx context.Context, d queue.Delivery, a attempt) bool {
	if d.Attempt() <= w.cfg.MaxAttempts {
		return false
	}
	what := "job"
	if a.task != nil {
		what = "partition"
	}
	w.retry(ctx, d, a, fmt.Errorf("claimed %d times, at most %d attempts: earlier attempts ended without an outcome (the worker crashed or was killed while running the %s)",
		d.Attempt(), w.cfg.MaxAttempts, what))
	return true
}

// emit sends a run event; a stream that is down never fails the run. Every
// event of a partitioned run carries its request_id; a range's events name
// the range in phase and part.
func (w *Worker) emit(ctx context.Context, typ string, a attempt, n int, res *publish.Result, errText string) {
	j := a.job
	if w.cfg.Events == nil || j == nil {
		return
	}
	e := events.Event{Type: typ, RequestID: j.RequestID, ProjectID: j.ProjectID, CampaignID: j.Campaign.ID, Attempt: n,
		At: time.Now().UTC(), Error: redact.Text(errText)}
	if t := a.task; t != nil {
		part := t.Part
		e.Phase, e.Part = string(t.Phase), &part
	}
	if res != nil {
		e.Candidates, e.Published = res.Candidates, res.Published
		if typ == "completed" {
			e.Result, _ = json.Marshal(res)
		}
	}
	if err := w.cfg.Events.Emit(context.WithoutCancel(ctx), e); err != nil {
		w.logger(a, n).Warn("emit run event", "type", typ, "err", err)
	}
}

func (w *Worker) observe(outcome string, res *publish.Result, start time.Time) {
	if w.cfg.Observer != nil {
		w.cfg.Observer.JobDone(outcome, res, time.Since(start))
	}
}

// run runs the attempt while a heartbeat keeps the queue message and the
// ledger lease (of a.runID) alive. A panic in the engine is a failed
// attempt, not a dead worker.
func (w *Worker) run(ctx context.Context, d queue.Delivery, a attempt, rng *publish.Range, cp publish.Checkpoint, log *slog.Logger) (res *publish.Result, err error) {
	j, runID := a.job, a.runID
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// A resumed run has acknowledged what its checkpoint covers.
	progress := &progressCounts{published: cp.Published}
	// stopSeen: a stop request was seen (by a checkpoint or a heartbeat).
	var stopSeen atomic.Bool
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(w.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			if err := d.Extend(runCtx); err != nil && runCtx.Err() == nil {
				log.Warn("extend job message", "err", err)
			}
			c, p := progress.get()
			w.emit(runCtx, "progress", a, d.Attempt(), &publish.Result{Candidates: c, Published: p}, "")
			err := w.cfg.Ledger.Renew(runCtx, runID, w.cfg.Owner, w.cfg.Lease, c, p)
			switch {
			case err == nil || runCtx.Err() != nil:
			case errors.Is(err, ledger.ErrLeaseLost):
				cancel(err)
				return
			case isStopRequest(err):
				// A publishing run stops at its next acknowledged batch;
				// one that published nothing for a whole heartbeat (a scan,
				// a size, a sparse stretch) is stopped where it is.
				if stopSeen.Swap(true) {
					cancel(err)
					return
				}
			default:
				log.Warn("renew lease", "err", err)
			}
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			log.Error("job panicked", "panic", p, "stack", string(debug.Stack()))
			res, err = &publish.Result{RequestID: j.RequestID, Action: j.Action, Status: publish.StatusFailed}, fmt.Errorf("panic: %v", p)
		}
		cancel(nil)
		<-hbDone
	}()
	onAck := func(c publish.Checkpoint) error {
		body, err := json.Marshal(c)
		if err != nil {
			return err
		}
		// Recorded even while the run is being stopped: the batch is
		// acknowledged, and a lost checkpoint would send it again on resume.
		ckCtx, cancelCk := context.WithTimeout(context.WithoutCancel(runCtx), checkpointTimeout)
		err = w.cfg.Ledger.Checkpoint(ckCtx, runID, w.cfg.Owner, body, c.Published)
		cancelCk()
		if errors.Is(err, ledger.ErrLeaseLost) {
			cancel(err)
		}
		if isStopRequest(err) {
			stopSeen.Store(true)
			return fmt.Errorf("%w: %w", publish.ErrStop, err)
		}
		return err
	}
	res, err = w.cfg.Runner.RunWith(runCtx, j, rng, w.cfg.Sink, cp, publish.Hooks{OnAck: onAck, Progress: progress.set})
	if cause := context.Cause(runCtx); err != nil && (errors.Is(cause, ledger.ErrLeaseLost) || isStopRequest(cause)) {
		err = fmt.Errorf("run %s: %w", j.RequestID, cause)
	}
	return res, err
}

// checkSize rejects a message over the job size cap before anything
// parses it.
func (w *Worker) checkSize(body []byte) error {
	return job.CheckSize(int64(len(body)), w.cfg.MaxJobBytes)
}

// lenientStart reads what it can of a job that failed validation.
func lenientStart(body []byte) (ledger.Start, bool) {
	var raw struct {
		RequestID string `json:"request_id"`
		ProjectID string `json:"project_id"`
		Action    string `json:"action"`
		Campaign  struct {
			ID string `json:"id"`
		} `json:"campaign"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || raw.RequestID == "" || len(raw.RequestID) > 512 {
		return ledger.Start{}, false
	}
	// PostgreSQL cannot store a NUL character: such a job is only
	// dead-lettered, not recorded.
	if strings.ContainsRune(raw.RequestID+raw.ProjectID+raw.Action+raw.Campaign.ID, 0) {
		return ledger.Start{}, false
	}
	return ledger.Start{RequestID: raw.RequestID, ProjectID: raw.ProjectID, CampaignID: raw.Campaign.ID, Action: raw.Action}, true
}

func startOf(j *job.Job, ref time.Time) ledger.Start {
	return ledger.Start{RequestID: j.RequestID, ProjectID: j.ProjectID, CampaignID: j.Campaign.ID, Action: string(j.Action), Reference: ref}
}

// reject dead-letters a job that can never succeed, then acknowledges it.
func (w *Worker) reject(ctx context.Context, d queue.Delivery, j *job.Job, reason error) {
	log := w.log
	var start ledger.Start
	var ok bool
	if w.checkSize(d.Body()) == nil {
		start, ok = lenientStart(d.Body())
	}
	if j != nil {
		start, ok = startOf(j, j.ScheduledAt), true
	}
	if ok {
		// Recorded so `segpub status` can say why the job never ran.
		log = log.With("request_id", start.RequestID)
		if start.Reference.IsZero() {
			start.Reference = time.Now()
		}
		if _, err := w.cfg.Ledger.Reject(ctx, start, reason.Error()); err != nil {
			log.Error("record rejection", "err", err)
		}
	}
	log.Warn("job rejected", "reason", reason.Error())
	w.emit(ctx, "rejected", whole(j), d.Attempt(), nil, reason.Error())
	if !w.deadLetter(ctx, d, j, "rejected", reason) {
		w.nack(ctx, d, w.cfg.Backoff(1), log)
		return
	}
	w.ack(ctx, d, log)
}

// conflict dead-letters a copy whose request_id names a run of another
// job (another project, audience or message): running, paused or
// finished, the run is left as it is, and the copy's job never runs
// under it.
func (w *Worker) conflict(ctx context.Context, d queue.Delivery, j *job.Job, run *ledger.Run, log *slog.Logger) {
	reason := fmt.Errorf("conflict: request_id %q names a run of another job (%s, project %q, campaign %q); this job was not run and the run is unchanged",
		j.RequestID, run.Status, run.ProjectID, run.CampaignID)
	log.Warn("job conflicts with an existing run; dead-lettered", "run_status", run.Status, "reason", reason.Error())
	if !w.deadLetter(ctx, d, j, "conflict", reason) {
		w.nack(ctx, d, w.cfg.Backoff(1), log)
		return
	}
	w.ack(ctx, d, log)
}

// retry hands a failed attempt back with backoff, or dead-letters it after
// its last attempt.
func (w *Worker) retry(ctx context.Context, d queue.Delivery, a attempt, cause error) {
	w.fail(ctx, d, a, nil, cause)
}

// fail is retry for an attempt that may have a result: its counts (what
// was acknowledged) are recorded; without one the run keeps those of its
// last checkpoint. A failure caused by the worker shutting down (a claim
// or a read cut short) is no failure of the job: the message is handed
// back and the run left as it is. A range that fails on its last attempt
// fails its whole partitioned run.
func (w *Worker) fail(ctx context.Context, d queue.Delivery, a attempt, res *publish.Result, cause error) {
	log := w.logger(a, d.Attempt())
	if ctx.Err() != nil {
		log.Info("job not run: shutting down; handed back", "err", cause.Error())
		w.nack(context.WithoutCancel(ctx), d, 0, log)
		return
	}
	final := d.Attempt() >= w.cfg.MaxAttempts
	if a.job != nil {
		status := ledger.Retrying
		if final {
			status = ledger.Failed
		}
		var err error
		if res != nil {
			err = w.cfg.Ledger.Finish(context.WithoutCancel(ctx), a.runID, w.cfg.Owner,
				ledger.Outcome{Status: status, Candidates: res.Candidates, Published: res.Published, Error: cause.Error()})
		} else {
			err = w.cfg.Ledger.Release(context.WithoutCancel(ctx), a.runID, w.cfg.Owner, status, cause.Error())
		}
		if err != nil && !errors.Is(err, ledger.ErrLeaseLost) {
			log.Error("record failure", "err", err)
		}
	}
	if final && a.task != nil {
		if err := a.task.Fail(context.WithoutCancel(ctx), cause.Error()); err != nil {
			log.Error("fail partitioned run", "err", err)
		}
	}
	if final {
		w.emit(ctx, "failed", a, d.Attempt(), nil, cause.Error())
	} else {
		w.emit(ctx, "retrying", a, d.Attempt(), nil, cause.Error())
	}
	if !final {
		delay := w.cfg.Backoff(d.Attempt())
		log.Warn("job failed; retrying", "err", cause.Error(), "retry_in", delay)
		w.nack(ctx, d, delay, log)
		return
	}
	log.Error("job failed on its last attempt; dead-lettered", "err", cause.Error())
	if !w.deadLetter(ctx, d, a.job, "exhausted", cause) {
		w.nack(ctx, d, w.cfg.Backoff(d.Attempt()), log)
		return
	}
	w.ack(ctx, d, log)
}

// DeadLetter is the body sent to the dead-letter destination.
type DeadLetter struct {
	Reason    string          `json:"reason"`
	Kind      string          `json:"kind"` // rejected, conflict or exhausted
	Attempts  int             `json:"attempts"`
	RequestID string          `json:"request_id,omitempty"`
	FailedAt  time.Time       `json:"failed_at"`
	Job       json.RawMessage `json:"job,omitempty"`
	// JobText holds a job body that is not valid JSON.
	JobText string `json:"job_text,omitempty"`
}

// deadLetter sends the job to the dead-letter destination; false when that
// failed (the job must then stay on the queue).
func (w *Worker) deadLetter(ctx context.Context, d queue.Delivery, j *job.Job, kind string, reason error) bool {
	if w.cfg.DeadLetter == nil {
		return true
	}
	dl := DeadLetter{Reason: redact.Text(reason.Error()), Kind: kind, Attempts: d.Attempt(), FailedAt: time.Now().UTC()}
	if j != nil {
		dl.RequestID = j.RequestID
	}
	switch {
	case w.checkSize(d.Body()) != nil:
		// An oversized job is not copied: the reason says what it was.
	case json.Valid(d.Body()):
		dl.Job = d.Body()
	default:
		dl.JobText = string(d.Body())
	}
	body, err := json.Marshal(dl)
	if err == nil {
		err = w.cfg.DeadLetter.Send(context.WithoutCancel(ctx), body, "")
	}
	if err != nil {
		w.log.Error("send to dead letters", "err", err)
		return false
	}
	return true
}

func (w *Worker) ack(ctx context.Context, d queue.Delivery, log *slog.Logger) {
	if err := d.Ack(context.WithoutCancel(ctx)); err != nil {
		log.Error("ack job", "err", err)
	}
}

func (w *Worker) nack(ctx context.Context, d queue.Delivery, delay time.Duration, log *slog.Logger) {
	if err := d.Nack(context.WithoutCancel(ctx), delay); err != nil {
		log.Error("hand job back", "err", err)
	}
}

// progressCounts is the run's progress as the engine reports it
// (publish.Hooks.Progress): candidates checked and messages acknowledged.
// The heartbeat records it in the ledger, for `segpub status`.
type progressCounts struct {
	mu                    sync.Mutex
	candidates, published int64
}

func (p *progressCounts) set(pr publish.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.candidates, p.published = pr.Candidates, pr.Published
}

func (p *progressCounts) get() (int64, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.candidates, p.published
}

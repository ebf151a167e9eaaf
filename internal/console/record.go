package console

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/events"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/state"
	"github.com/segpub/segpub/internal/worker"
)

// The tables the console reads besides the ledger and the scheduler's are
// run events, throughput samples and dead letters (segpub_console_events,
// segpub_dead_letters), recorded by the service as they happen (the event
// stream and the dead-letter queue cannot be browsed). They are segpub's
// own tables, in the state database (internal/state's migrations).

// Event types the recorder writes besides the worker's run events.
const (
	// sampleEvent is a throughput sample: a run's (or one partition's)
	// acknowledged messages at a moment.
	sampleEvent = "sample"
	// jobEvent records what the console needs of a run's job (its channel
	// and throttle) when an attempt starts.
	jobEvent = "job"
)

// DefaultSampleEvery is how often a running run's throughput is sampled.
const DefaultSampleEvery = time.Second

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// Pool is the state database.
	Pool *pgxpool.Pool
	// Retention is how long recorded rows are kept; like the runs they
	// describe (SEGPUB_RETAIN_RUNS).
	Retention time.Duration
	// SampleEvery is the least time between two throughput samples of a
	// run. Default: DefaultSampleEvery.
	SampleEvery time.Duration
	Logger      *slog.Logger
}

func (c RecorderConfig) validate() error {
	switch {
	case c.Pool == nil:
		return fmt.Errorf("console recorder: Pool is required")
	case c.Retention <= 0:
		return fmt.Errorf("console recorder: Retention %s is not positive", c.Retention)
	case c.SampleEvery < 0:
		return fmt.Errorf("console recorder: SampleEvery %s is negative", c.SampleEvery)
	}
	return nil
}

// Recorder records run events, throughput samples and dead letters for the
// console. Recording is best effort: a failed insert is logged and never
// fails a run, an event or a dead letter.
type Recorder struct {
	cfg  RecorderConfig
	log  *slog.Logger
	rows *state.Records
	// pruned is when rows past the retention were last deleted (unix ns).
	pruned atomic.Int64
}

// NewRecorder returns a Recorder, creating its tables if needed.
func NewRecorder(ctx context.Context, cfg RecorderConfig) (*Recorder, error) {
	if cfg.SampleEvery == 0 {
		cfg.SampleEvery = DefaultSampleEvery
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := state.Migrate(ctx, cfg.Pool); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{cfg: cfg, log: log, rows: state.RecordsOn(cfg.Pool)}, nil
}

func (r *Recorder) insert(ctx context.Context, e events.Event, part string, detail any) {
	var body []byte
	if detail != nil {
		body, _ = json.Marshal(detail)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.rows.AddEvent(ctx, state.Event{RequestID: e.RequestID, Type: e.Type, At: e.At, Attempt: e.Attempt, Part: part,
		Candidates: e.Candidates, Published: e.Published, Error: e.Error, Detail: body}); err != nil {
		r.log.Warn("console: record event", "type", e.Type, "request_id", e.RequestID, "err", err)
	}
	r.prune(ctx)
}

// prune deletes recorded rows past the retention, at most once an hour.
func (r *Recorder) prune(ctx context.Context) {
	last := r.pruned.Load()
	now := time.Now()
	if now.Sub(time.Unix(0, last)) < time.Hour || !r.pruned.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	cutoff := now.Add(-r.cfg.Retention)
	if err := r.rows.PruneEvents(ctx, cutoff); err != nil {
		r.log.Warn("console: prune events", "err", err)
	}
	if err := r.rows.PruneDeadLetters(ctx, cutoff); err != nil {
		r.log.Warn("console: prune dead letters", "err", err)
	}
}

// Events returns an emitter that records every run event and then passes
// it to next (nil: none).
func (r *Recorder) Events(next events.Emitter) events.Emitter {
	return &eventRecorder{r: r, next: next}
}

type eventRecorder struct {
	r    *Recorder
	next events.Emitter
}

func (e *eventRecorder) Emit(ctx context.Context, ev events.Event) error {
	e.r.insert(ctx, ev, "", nil)
	if e.next == nil {
		return nil
	}
	return e.next.Emit(ctx, ev)
}

// DeadLetters returns the dead-letter queue q, recording every dead letter
// it sends.
func (r *Recorder) DeadLetters(q queue.Queue) queue.Queue { return &deadRecorder{Queue: q, r: r} }

type deadRecorder struct {
	queue.Queue
	r *Recorder
}

func (d *deadRecorder) Send(ctx context.Context, body []byte, dedupID string) error {
	if err := d.Queue.Send(ctx, body, dedupID); err != nil {
		return err
	}
	var dl worker.DeadLetter
	if err := json.Unmarshal(body, &dl); err != nil {
		d.r.log.Warn("console: dead letter is not one the worker sends; not recorded", "err", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.r.rows.AddDeadLetter(ctx, state.DeadLetter{RequestID: storableText(dl.RequestID), Kind: storableText(dl.Kind),
		Reason: storableText(dl.Reason), Attempts: dl.Attempts, FailedAt: dl.FailedAt}, body); err != nil {
		d.r.log.Warn("console: record dead letter", "request_id", dl.RequestID, "err", err)
	}
	return nil
}

// storableText is s as a text column can hold it: PostgreSQL refuses NUL
// and invalid UTF-8, which a hostile job's request_id or a reason quoting
// it may carry.
func storableText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", `\u0000`)
}

// Runner returns the worker's runner next, recording each attempt's job
// (channel and throttle, for the waves) and sampling its throughput.
func (r *Recorder) Runner(next worker.Runner) worker.Runner { return &runRecorder{Runner: next, r: r} }

type runRecorder struct {
	worker.Runner
	r *Recorder
}

// jobDetail is what a job event records of the job.
type jobDetail struct {
	Channel  string        `json:"channel"`
	Throttle *job.Throttle `json:"throttle,omitempty"`
}

func (rr *runRecorder) RunWith(ctx context.Context, j *job.Job, rng *publish.Range, sink publish.Sink, cp publish.Checkpoint, hooks publish.Hooks) (*publish.Result, error) {
	lane := ""
	if rng != nil {
		lane = rng.From
	}
	scan := rng != nil && rng.Collect
	if !scan {
		rr.r.insert(ctx, events.Event{Type: jobEvent, RequestID: j.RequestID, At: time.Now().UTC()}, lane,
			jobDetail{Channel: string(j.Campaign.Channel), Throttle: j.Campaign.Throttle})
	}
	if scan {
		// A scan publishes nothing: no throughput.
		return rr.Runner.RunWith(ctx, j, rng, sink, cp, hooks)
	}
	s := &sampler{r: rr.r, requestID: j.RequestID, lane: lane}
	onAck := hooks.OnAck
	hooks.OnAck = func(c publish.Checkpoint) error {
		s.observe(ctx, c.Published, false)
		if onAck != nil {
			return onAck(c)
		}
		return nil
	}
	// Candidates checked and skips so far ride on the samples, so the
	// console shows them while the run goes on, not only at its end.
	onProgress := hooks.Progress
	hooks.Progress = func(p publish.Progress) {
		s.counts(p.Candidates, p.Skipped)
		// A stretch that only skips acknowledges nothing: sampled here too.
		s.observe(ctx, p.Published, false)
		if onProgress != nil {
			onProgress(p)
		}
	}
	res, err := rr.Runner.RunWith(ctx, j, rng, sink, cp, hooks)
	if res != nil {
		s.counts(res.Candidates, &res.Skipped)
		s.observe(ctx, res.Published, true)
	}
	return res, err
}

// sampleDetail is what a sample records beside the acknowledged count.
type sampleDetail struct {
	// Skipped is the lane's skips so far, by reason (publish.Skipped's
	// JSON); absent before the first batch is checked.
	Skipped *publish.Skipped `json:"skipped,omitempty"`
}

// sampler writes a run's acknowledged count, with its candidates and skips
// so far, at most every SampleEvery.
type sampler struct {
	r         *Recorder
	requestID string
	// lane is the partition's first user id: the run's count is the sum
	// of its lanes' latest samples.
	lane       string
	mu         sync.Mutex
	last       time.Time
	lastCount  int64
	candidates int64
	skipped    *publish.Skipped
}

// counts keeps the latest candidates and skips for the next sample.
func (s *sampler) counts(candidates int64, skipped *publish.Skipped) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.candidates = candidates
	if skipped != nil {
		s.skipped = skipped
	}
}

func (s *sampler) observe(ctx context.Context, published int64, final bool) {
	s.mu.Lock()
	now := time.Now()
	if (!final && now.Sub(s.last) < s.r.cfg.SampleEvery) || (final && published == s.lastCount && !s.last.IsZero()) {
		s.mu.Unlock()
		return
	}
	s.last, s.lastCount = now, published
	candidates, detail := s.candidates, sampleDetail{Skipped: s.skipped}
	s.mu.Unlock()
	s.r.insert(ctx, events.Event{Type: sampleEvent, RequestID: s.requestID, At: now.UTC(), Candidates: candidates, Published: published}, s.lane, detail)
}

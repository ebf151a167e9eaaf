package publish

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/message"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/variant"
)

// candidate is one row of a source: a user, a (user, device) pair, a listed
// id not in the database, or a CSV row.
type candidate struct {
	message.Recipient
	// Unknown marks a listed id or CSV user_id with no user.
	Unknown bool
	// Previous marks a user with an earlier delivery of the campaign
	// (only filled when the job excludes previous recipients).
	Previous bool
	// NoConsent marks a candidate without advertising consent; Capped
	// one whose user is at the frequency cap; NightConsent one whose
	// recipient consented to advertising at night (docs/governance.md).
	NoConsent    bool
	Capped       bool
	NightConsent bool
	Bucket       int
	// Zone and Language are the recipient's time zone name and language
	// tag (docs/delivery.md): the user_properties value when it is
	// a string, or the CSV cell; nil when missing or not a string.
	Zone, Language []byte
	// Contact is the CSV row's email or phone_number value.
	Contact []byte
	// Start marks the first candidate of a user (or CSV row): batches
	// are cut only there.
	Start bool
	// Row is the 1-based CSV data row the candidate comes from.
	Row int64
}

// rowBatch is a batch of candidates whose byte slices point into arena.
type rowBatch struct {
	rows  []candidate
	arena []byte
	// scratch holds a zone or language value while its escapes are
	// decoded, before it is copied into arena.
	scratch []byte
}

func newRowBatch() *rowBatch {
	return &rowBatch{rows: make([]candidate, 0, rowBatchSize), arena: make([]byte, 0, 256<<10)}
}

const rowBatchSize = 1024

func (b *rowBatch) reset() {
	clear(b.rows)
	b.rows = b.rows[:0]
	b.arena = b.arena[:0]
}

// copy keeps v in the batch's arena; nil (SQL NULL) stays nil and an empty
// value stays non-nil.
func (b *rowBatch) copy(v []byte) []byte {
	if v == nil {
		return nil
	}
	start := len(b.arena)
	b.arena = append(b.arena, v...)
	return b.arena[start:len(b.arena):len(b.arena)]
}

func (b *rowBatch) full() bool { return len(b.rows) >= rowBatchSize || len(b.arena) >= 224<<10 }

// plan is everything a run needs, prepared and validated before anything is
// published.
type plan struct {
	job       *job.Job
	tables    schema.Tables
	reference time.Time
	split     *variant.Split
	// query streams the audience (nil for CSV audiences).
	query *audience.Query
	spec  audience.Spec
	// listed are the ids of a user_ids audience whose unknown ones this
	// run counts (nil: none to count).
	listed []string
	// estimate is the planner's row estimate, to size de-duplication.
	estimate int64
	csv      *csvPlan
	publish  bool
	// rng limits the run to a key range (nil: the whole audience).
	rng *Range
	// targeting is the run's delivery targeting (nil: off).
	targeting *targeting
}

// Run runs a job: for action publish, it publishes every message to sink;
// for calculate-size it only counts (sink may be nil). A rejected job
// returns an error for which job.IsRejection is true, before publishing
// anything.
func (r *Runner) Run(ctx context.Context, j *job.Job, sink Sink) (*Result, error) {
	return r.Resume(ctx, j, sink, Checkpoint{}, nil)
}

// Checkpoint is how far a run's publishing got: every message of the
// candidates up to it was acknowledged by the channel destination.
type Checkpoint struct {
	// After is the last notifly_user_id covered (database audiences).
	After string `json:"after,omitempty"`
	// Rows is the number of CSV rows covered (CSV audiences).
	Rows int64 `json:"rows,omitempty"`
	// Published is the number of messages published up to the checkpoint
	// (by this run; a Range's Offset is not included).
	Published int64 `json:"published"`
	// Variants counts them by variant.
	Variants map[string]int64 `json:"variants,omitempty"`
}

// IsZero reports whether the checkpoint is the start of the run.
func (c Checkpoint) IsZero() bool { return c.After == "" && c.Rows == 0 }

// Resume runs a job that may have published part of its messages already:
// candidates up to cp are streamed and checked again (so de-duplication,
// throttle waves and counts are exactly those of an uninterrupted run) but
// not published. onAck, when set, is called with the new checkpoint after
// every batch the sink acknowledged.
func (r *Runner) Resume(ctx context.Context, j *job.Job, sink Sink, cp Checkpoint, onAck func(Checkpoint) error) (*Result, error) {
	return r.RunWith(ctx, j, nil, sink, cp, Hooks{OnAck: onAck})
}

// Range limits a run to a key range of notifly_user_id and places it in a
// larger run made of consecutive ranges: the run starts where the ranges
// before it left off, so de-duplication and throttle waves are those of one
// run over the whole audience. The engine knows nothing else of how the
// ranges are chosen or run (internal/partition does).
type Range struct {
	// From (inclusive) and Before (exclusive) bound the range; empty is
	// unbounded.
	From, Before string
	// Taken are the destinations (fingerprints, message.Fingerprint) that
	// the ranges before this one publish: the range skips them as
	// duplicates.
	Taken []uint64
	// Offset is how many messages the ranges before this one publish: the
	// range's first message number, from which throttle waves count.
	Offset int64
	// Collect checks the range without publishing anything (sink is not
	// used) and returns, in Result.Destinations, the fingerprint of each
	// destination the range would publish, in publishing order.
	Collect bool
}

// RunWith runs a job, or one range of it (rng nil: the whole audience),
// from a checkpoint, with the run's own callbacks.
//
// A publish run's result counts only what the sink acknowledged: when it
// fails, published and variants are those of the last acknowledged batch
// (or of cp, before any), never messages encoded but not accepted.
func (r *Runner) RunWith(ctx context.Context, j *job.Job, rng *Range, sink Sink, cp Checkpoint, hooks Hooks) (*Result, error) {
	start := time.Now()
	res := &Result{RequestID: j.RequestID, Action: j.Action, Variants: map[string]int64{}}
	p, err := r.prepare(ctx, j, rng)
	if err != nil {
		// Still, earlier attempts published what the checkpoint says.
		res.Published = cp.Published
		maps.Copy(res.Variants, cp.Variants)
		return r.finish(res, start, err)
	}
	if p.publish && sink == nil {
		return r.finish(res, start, errors.New("publish: no sink for a publish job"))
	}
	if p.split != nil {
		for _, v := range p.split.Variants {
			if !v.Control {
				res.Variants[v.ID] = 0
			}
		}
	}
	err = r.execute(ctx, p, sink, res, cp, hooks)
	return r.finish(res, start, err)
}

func (r *Runner) finish(res *Result, start time.Time, err error) (*Result, error) {
	res.DurationMS = time.Since(start).Milliseconds()
	switch {
	case err == nil:
		res.Status = StatusCompleted
	case job.IsRejection(err):
		res.Status = StatusRejected
		res.Error = err.Error()
	default:
		res.Status = StatusFailed
		res.Error = err.Error()
	}
	return res, err
}

func (r *Runner) prepare(ctx context.Context, j *job.Job, rng *Range) (*plan, error) {
	tables, err := schema.For(j.ProjectID)
	if err != nil {
		return nil, job.Rejectf("project_id", "%v", err)
	}
	if !j.Campaign.Channel.Known() {
		// The parser rejects it; a job built in code meets it here
		// rather than as a run without destinations.
		return nil, job.Rejectf("campaign.channel", "unknown channel %q", j.Campaign.Channel)
	}
	if err := r.checkProject(ctx, j, tables); err != nil {
		return nil, err
	}
	p := &plan{job: j, tables: tables, reference: j.ScheduledAt, publish: j.Action == job.ActionPublish, rng: rng}
	if rng != nil && rng.Collect {
		p.publish = false
	}
	if p.reference.IsZero() {
		// Whole seconds: send_at values stay readable.
		p.reference = r.cfg.Now().Truncate(time.Second)
	}
	c := j.Campaign
	if p.targeting, err = newTargeting(c.Delivery, p.reference, r.zones); err != nil {
		return nil, err
	}
	if c.ExperimentID != "" {
		vs, err := variant.Load(ctx, r.cfg.Pool, tables.Variants, c.ExperimentID)
		if err != nil {
			return nil, err
		}
		if len(vs) == 0 {
			return nil, job.Rejectf("campaign.experiment_id", "experiment %q has no variants", c.ExperimentID)
		}
		if p.split, err = variant.New(vs); err != nil {
			return nil, job.Rejectf("campaign.experiment_id", "experiment %q: %v", c.ExperimentID, err)
		}
		for id := range c.VariantMessages {
			known := false
			for _, v := range p.split.Variants {
				known = known || v.ID == id
			}
			if !known {
				return nil, job.Rejectf("campaign.variant_messages."+id, "experiment %q has no variant %q", c.ExperimentID, id)
			}
		}
	}
	p.spec = specFor(j, tables, p.reference, p.publish)
	p.spec.Zone = r.cfg.Zone
	if rng != nil {
		if c.Audience.Type == job.AudienceCSV {
			return nil, errors.New("csv audiences have no key ranges")
		}
		p.spec.From, p.spec.Before = rng.From, rng.Before
		if d := c.Delivery; d != nil && d.LocalTime != nil && c.Throttle != nil && !rng.Collect && rng.Offset > 0 {
			// Waves are counted per base time, and a range's offset is one
			// count for the whole run: partition runs such jobs whole.
			return nil, errors.New("a range cannot continue another range's waves per base time (local_time with a throttle runs whole)")
		}
	}
	if c.Audience.Type == job.AudienceCSV {
		if p.csv, err = r.prepareCSV(ctx, p); err != nil {
			return nil, err
		}
		if err := r.checkThrottle(ctx, p); err != nil {
			return nil, err
		}
		return p, nil
	}
	if p.query, err = compile(p.spec); err != nil {
		return nil, err
	}
	if err := r.checkThrottle(ctx, p); err != nil {
		return nil, err
	}
	if ids := c.Audience.UserIDs; c.Audience.Type == job.AudienceUserIDs {
		// Planning an id list is costly (the planner estimates each listed
		// id), and the list's length is a better estimate anyway.
		p.estimate = int64(len(ids)) * 2
	} else {
		p.estimate = r.estimateRows(ctx, p.query)
	}
	if err := r.shapeRead(ctx, p); err != nil {
		return nil, err
	}
	// A range does not count unknown ids: they belong to no range (the
	// whole run counts them once, UnknownUsers).
	if c.Audience.Type == job.AudienceUserIDs && rng == nil {
		p.listed = c.Audience.UserIDs
	}
	return p, nil
}

// countUnknown counts the distinct listed ids that match no user.
func (r *Runner) countUnknown(ctx context.Context, t schema.Tables, ids []string) (int64, error) {
	// external_user_id is unique, so each user found accounts for one
	// distinct listed id. Matching the list with = ANY is one hashed scan;
	// an anti-join over the unnested list cost four times as much.
	var found int64
	if err := r.cfg.Pool.QueryRow(ctx, `SELECT count(*) FROM `+t.User+` WHERE external_user_id = ANY($1::text[])`, ids).Scan(&found); err != nil {
		return 0, fmt.Errorf("count unknown user ids: %w", err)
	}
	return distinctCount(ids) - found, nil
}

func distinctCount(ids []string) int64 {
	distinct := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		distinct[id] = struct{}{}
	}
	return int64(len(distinct))
}

// execute streams the audience through the checks to the sink.
func (r *Runner) execute(ctx context.Context, p *plan, sink Sink, res *Result, cp Checkpoint, hooks Hooks) error {
	g, gctx := errgroup.WithContext(ctx)
	rowsCh := make(chan *rowBatch, 4)
	freeRows := make(chan *rowBatch, 6)
	for range cap(freeRows) {
		freeRows <- newRowBatch()
	}
	// A run that publishes nothing (a size, a partition's scan) may have
	// no sink.
	var caps Capabilities
	if p.publish {
		caps = sink.Capabilities()
	}
	window := max(1, caps.Window)
	run := RunID{RequestID: p.job.RequestID}
	done := cp.Published // messages a resumed run published already
	if p.rng != nil {
		run.Part = "from:" + p.rng.From
		done -= p.rng.Offset
	}
	if cp.IsZero() {
		done = 0
	}
	stage := caps.Staging
	staged := stage != nil && p.publish
	if staged {
		if err := stage.Begin(ctx, run, p.job.Campaign.Channel, done); err != nil {
			return err
		}
	}
	outCh := make(chan *Batch, 4)
	// Batches the checker can fill while window batches are in flight.
	freeOut := make(chan *Batch, window+5)
	for range cap(freeOut) {
		freeOut <- &Batch{Channel: p.job.Campaign.Channel, Run: run}
	}

	var streamed int64 // distinct users
	g.Go(func() error {
		defer close(rowsCh)
		if p.csv != nil {
			return r.streamCSV(gctx, p, rowsCh, freeRows)
		}
		return r.streamDB(gctx, p.query, rowsCh, freeRows, &streamed)
	})
	ch := newChecker(p, r.cfg.BatchSize, r.cfg.Zone)
	ch.tg = p.targeting
	defer ch.seen.Release()
	ch.failpoints = r.cfg.Failpoints
	ch.resume, ch.resumeAfter = cp, []byte(cp.After)
	ch.trace = r.cfg.Trace
	ch.limit = caps.MaxMessageBytes
	if rng := p.rng; rng != nil {
		for _, fp := range rng.Taken {
			ch.seen.Add(fp)
		}
		ch.published = rng.Offset
		ch.collect = rng.Collect
	}
	// acked is what the destination has acknowledged: before any batch,
	// what the checkpoint says earlier attempts published.
	var acked atomic.Int64
	acked.Store(cp.Published)
	ackedVariants := cp.Variants
	progress := func() {
		if r.cfg.Progress == nil && hooks.Progress == nil {
			return
		}
		pr := Progress{Candidates: ch.candidates.Load(), Published: acked.Load(), Skipped: ch.skipped.Load()}
		if !p.publish {
			pr.Published = ch.counted.Load()
		}
		if r.cfg.Progress != nil {
			r.cfg.Progress(pr)
		}
		if hooks.Progress != nil {
			hooks.Progress(pr)
		}
	}
	ch.progress = progress
	// Unknown ids: a list without groups streams every listed user that
	// exists (devices are left-joined), so the stream itself counts them.
	// With groups, a count beside the stream on a connection of its own.
	var unknown int64
	byStream := p.listed != nil && len(p.job.Campaign.Audience.Groups) == 0 &&
		p.spec.After == "" && p.spec.From == "" && p.spec.Before == ""
	if p.listed != nil && !byStream {
		g.Go(func() error {
			n, err := r.countUnknown(gctx, p.tables, p.listed)
			unknown = n
			return err
		})
	}
	g.Go(func() error {
		defer close(outCh)
		return ch.run(gctx, rowsCh, freeRows, outCh, freeOut, res)
	})
	g.Go(func() error {
		return r.output(gctx, p, sink, window, outCh, freeOut, hooks.OnAck, &acked, &ackedVariants, progress)
	})
	if err := g.Wait(); err != nil {
		if p.publish {
			// Report what was acknowledged, not what was encoded.
			res.Published = acked.Load()
			for k := range res.Variants {
				res.Variants[k] = 0
			}
			maps.Copy(res.Variants, ackedVariants)
		}
		return err
	}
	if n := res.Unpublishable.MessageTooLarge; n > 0 {
		r.cfg.Logger.Warn("messages over the channel destination's size limit were skipped",
			"request_id", p.job.RequestID, "message_too_large", n, "limit_bytes", ch.limit)
	}
	if byStream {
		unknown = distinctCount(p.listed) - streamed
	}
	res.Candidates += unknown
	res.Skipped.UnknownUser += unknown
	if ch.collect {
		res.Destinations = ch.collected
	}
	res.BaseTimes = ch.baseTimes()
	if got := res.Published + res.Skipped.Total() + res.Unpublishable.Total(); got != res.Candidates {
		// The contract's invariant; a violation is a bug, not bad data.
		return fmt.Errorf("count mismatch: %d candidates but %d published + %d skipped + %d unpublishable",
			res.Candidates, res.Published, res.Skipped.Total(), res.Unpublishable.Total())
	}
	if staged {
		if err := stage.Commit(ctx, run, p.job.Campaign.Channel); err != nil {
			return fmt.Errorf("commit the run's messages: %w", err)
		}
	}
	return nil
}

// flight is a batch handed to the sink; done receives Publish's outcome.
type flight struct {
	b    *Batch
	done chan error
}

// ErrStop, wrapped in an error returned by onAck, asks the run to stop
// after the batches in flight: nothing more is dispatched, the batches
// already sent are acknowledged and checkpointed in order, and the run
// returns the error. Operators' pause and cancel use it.
var ErrStop = errors.New("stop requested")

// output publishes the checker's batches with up to window of them in
// flight, and handles their acknowledgements in publishing order: the
// checkpoint after batch k is recorded only once batches 0..k are all
// acknowledged, and batches acknowledged while a record was being made
// share the next one. The first failure stops the dispatch of new batches; the
// batches already in flight are waited for, so none is still being sent
// when the run returns. A stop request (ErrStop) also ends the dispatch,
// but lets the batches in flight finish and checkpoints them.
func (r *Runner) output(ctx context.Context, p *plan, sink Sink, window int, outCh <-chan *Batch, freeOut chan<- *Batch,
	onAck func(Checkpoint) error, acked *atomic.Int64, ackedVariants *map[string]int64, progress func()) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	halt := make(chan struct{})
	var halted bool
	// slots holds one token per batch in flight; the acknowledging loop
	// returns it once it is done with the batch.
	slots := make(chan struct{}, window)
	pending := make(chan *flight, window)
	// exhausted: every batch was dispatched (the checker closed outCh).
	// Read after pending is closed.
	var exhausted bool
	go func() {
		defer close(pending)
		for {
			// Once the run is ending, dispatch nothing more: the checker
			// stops on the group's context when output returns.
			var b *Batch
			select {
			case b = <-outCh:
				if b == nil {
					exhausted = true
					return
				}
			case <-ctx.Done():
				return
			case <-halt:
				return
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			case <-halt:
				return
			}
			f := &flight{b: b, done: make(chan error, 1)}
			if !p.publish || len(b.Messages) == 0 {
				f.done <- nil
			} else {
				go func() { f.done <- sink.Publish(ctx, b) }()
			}
			pending <- f
		}
	}()
	var first, stop error
	// due is the checkpoint after the batches acknowledged so far but not
	// yet recorded. It is recorded when the next batch is not acknowledged
	// yet (or the run ends): while one record waits on a busy database,
	// the batches acknowledged meanwhile are covered by the next one
	// instead of each holding up the window. A checkpoint still covers only
	// acknowledged batches, in order.
	var due *Checkpoint
	record := func() {
		if due == nil {
			return
		}
		cp := *due
		due = nil
		// onAck records the checkpoint even when it reports a stop request.
		switch err := onAck(cp); {
		case err == nil:
		case errors.Is(err, ErrStop):
			if !halted {
				stop, halted = err, true
				close(halt)
			}
		default:
			if first == nil {
				first = fmt.Errorf("record checkpoint: %w", err)
				cancel(first)
			}
		}
	}
	for f := range pending {
		b := f.b
		var err error
		select {
		case err = <-f.done:
		default:
			record()
			err = <-f.done
		}
		<-slots
		if first != nil {
			if err == nil && p.publish {
				// Acknowledged out of order after a failed batch: the
				// destination has it, so the result counts it (the
				// checkpoint does not move past the failed batch).
				acked.Add(int64(len(b.Messages)))
			}
			continue
		}
		if err != nil {
			record()
			if first == nil {
				first = fmt.Errorf("publish batch at message %d: %w", b.First, err)
				cancel(first)
			}
			continue
		}
		if p.publish {
			// Acknowledged (or nothing to send: messages of earlier
			// attempts only): count it before anything else can fail.
			if b.published >= acked.Load() {
				acked.Store(b.published)
				*ackedVariants = b.variants
			}
			if len(b.Messages) > 0 {
				if err := r.cfg.Failpoints.Hit(failpoint.AfterAck); err != nil {
					record()
					if first == nil {
						first = err
						cancel(first)
					}
					continue
				}
				if onAck != nil {
					due = &Checkpoint{After: b.After, Rows: b.Rows, Published: b.published, Variants: b.variants}
				}
			}
		}
		progress()
		select {
		case freeOut <- b:
		case <-ctx.Done():
		}
	}
	if first == nil {
		record()
	}
	if err := cmp.Or(first, stop); err != nil {
		return err
	}
	if !exhausted {
		// Stopped with batches left undispatched (the run's context
		// ended): the run did not publish everything, whatever the other
		// goroutines of the run report.
		if err := context.Cause(ctx); err != nil {
			return err
		}
		return errors.New("output stopped before the last batch")
	}
	return nil
}

// AudienceQuery returns what a run of the job would stream: its compiled
// query (nil for CSV audiences) and the spec it was compiled from, after
// the same validation a run does. Nothing is published.
func (r *Runner) AudienceQuery(ctx context.Context, j *job.Job) (*audience.Query, audience.Spec, error) {
	p, err := r.prepare(ctx, j, nil)
	if err != nil {
		return nil, audience.Spec{}, err
	}
	if p.query == nil {
		return nil, p.spec, nil
	}
	return p.query, p.spec, nil
}

// Precheck makes the checks of a run of the whole job that a run of one of
// its ranges cannot make, before it is split: the project's tables, and a
// throttle's capacity against the whole audience (a range does not count
// the audience). It returns the rejection the whole run would.
func (r *Runner) Precheck(ctx context.Context, j *job.Job) error {
	t, err := schema.For(j.ProjectID)
	if err != nil {
		return job.Rejectf("project_id", "%v", err)
	}
	if err := r.checkProject(ctx, j, t); err != nil {
		return err
	}
	if th := j.Campaign.Throttle; th != nil && j.Action == job.ActionPublish && job.ThrottleCapacity(j.ScheduledAt, th) < countThreshold {
		if _, err := r.prepare(ctx, j, nil); err != nil {
			return err
		}
	}
	return nil
}

// UnknownUsers counts the distinct ids of a user_ids audience that match no
// user (0 for other audiences): the candidates a run of the whole job skips
// as unknown_user, which no key range holds.
func (r *Runner) UnknownUsers(ctx context.Context, j *job.Job) (int64, error) {
	a := j.Campaign.Audience
	if a.Type != job.AudienceUserIDs {
		return 0, nil
	}
	t, err := schema.For(j.ProjectID)
	if err != nil {
		return 0, job.Rejectf("project_id", "%v", err)
	}
	return r.countUnknown(ctx, t, a.UserIDs)
}

package console

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/control"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
)

// runGroups are the runs page's sections, each with the ledger statuses it
// shows: a run between attempts, handed back or in a partitioned phase is
// still running for an operator.
var runGroups = []struct {
	Name     string
	Statuses []ledger.Status
}{
	{"running", []ledger.Status{ledger.Running, ledger.Retrying, ledger.HandedBack, ledger.Scanning, ledger.Publishing}},
	{"paused", []ledger.Status{ledger.Paused}},
	{"completed", []ledger.Status{ledger.Completed}},
	{"failed", []ledger.Status{ledger.Failed}},
	{"cancelled", []ledger.Status{ledger.Cancelled}},
	{"rejected", []ledger.Status{ledger.Rejected}},
}

// runsPerGroup is how many runs each section lists, most recent first.
const runsPerGroup = 50

// runRow is one run with its progress.
type runRow struct {
	*ledger.Run
	// Stopping is a pause or cancel ("pause", "cancel") the workers have
	// not carried out yet, or the pause a partitioned run stays in.
	Stopping string
	// Rate is messages acknowledged per second: over the last samples
	// while it runs, over the whole run once it has finished.
	Rate float64
	// Expected is what the campaign's previous completed run published,
	// 0 when none.
	Expected int64
	ETA      time.Duration
	Elapsed  time.Duration
	// Channel is the channel of the run's job ("" before an attempt
	// started).
	Channel string
	// Total is the messages the run publishes in all, when known or
	// estimated (0: unknown), and TotalFrom says where it comes from: the
	// basis of the percentage and the ETA.
	Total     int64
	TotalFrom string
	// Estimated: Total is an estimate.
	Estimated bool
	// Skips is the candidates skipped: the result's, or while the run
	// goes on the skips so far (SkippedLive).
	Skips       *publish.Skipped
	SkippedLive bool
}

// SkippedTotal is the run's skips, -1 when none is known.
func (r runRow) SkippedTotal() int64 {
	if r.Skips == nil {
		return -1
	}
	return r.Skips.Total()
}

// Where a run's total comes from (runRow.TotalFrom).
const (
	totalPublished = "completed"
	totalPrevious  = "the campaign's previous run"
	totalScan      = "its scan"
	totalEstimate  = "estimated from its position in the user id space"
)

// minEstimateFraction is how far through the id space a run must be
// before its total is estimated from its position: earlier, a few
// thousand users say little of the rest.
const minEstimateFraction = 0.02

// idFraction is how far through the id space a notifly_user_id lies, for
// ids that spread evenly over it (hex digests and UUIDs, segpub's and the
// contract's): the leading hex digits as a fraction of their range. Ids of
// another form (short, decimal-looking or not hex) give no estimate.
func idFraction(id string) (float64, bool) {
	hex := strings.ReplaceAll(id, "-", "")
	if len(hex) < 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(hex[:12], 16, 64)
	if err != nil {
		return 0, false
	}
	return float64(v) / float64(uint64(1)<<48), true
}

type runGroup struct {
	Name string
	Runs []runRow
}

func (c *Console) runsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var groups []runGroup
	for _, g := range runGroups {
		runs, err := c.led.List(ctx, g.Statuses, runsPerGroup)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		rows := make([]runRow, 0, len(runs))
		for _, run := range runs {
			row, err := c.progress(ctx, run)
			if err != nil {
				c.fail(w, r, err)
				return
			}
			rows = append(rows, row)
		}
		groups = append(groups, runGroup{Name: g.Name, Runs: rows})
	}
	p := c.newPage(r, "Runs", "runs")
	p.Live = "/runs"
	p.Data = groups
	c.render(w, r, "runs", http.StatusOK, p)
}

// progress adds a run's channel, skips, rate, total and ETA.
func (c *Console) progress(ctx context.Context, run *ledger.Run) (runRow, error) {
	row := runRow{Run: run}
	var err error
	if row.Channel, err = c.channelOf(ctx, run.RequestID); err != nil {
		return row, err
	}
	if len(run.Result) > 0 {
		var res publish.Result
		if json.Unmarshal(run.Result, &res) == nil && res.Candidates > 0 {
			row.Skips = &res.Skipped
		}
	}
	if row.Skips == nil && !run.Status.Final() {
		if row.Skips, err = c.liveSkipped(ctx, run.RequestID); err != nil {
			return row, err
		}
		row.SkippedLive = row.Skips != nil
	}
	start := run.CreatedAt
	t, err := c.firstEvent(ctx, run.RequestID, "started")
	if err != nil {
		return row, err
	}
	if !t.IsZero() {
		start = t
	}
	end := c.cfg.Now()
	if run.FinishedAt != nil {
		end = *run.FinishedAt
	} else if !run.Status.Final() && run.Status != ledger.Running && run.Status != ledger.Publishing {
		end = run.UpdatedAt
	}
	row.Elapsed = end.Sub(start)
	if run.Status == ledger.Completed {
		row.Total, row.TotalFrom = run.Published, totalPublished
	}
	if run.Status.Final() || run.Status == ledger.Paused {
		if row.Elapsed > 0 {
			row.Rate = float64(run.Published) / row.Elapsed.Seconds()
		}
		return row, nil
	}
	if row.Stopping, err = c.led.StopRequested(ctx, run.RequestID); err != nil {
		return row, err
	}
	samples, err := c.samples(ctx, run.RequestID)
	if err != nil {
		return row, err
	}
	row.Rate = recentRate(samples, c.cfg.Now())
	if err := c.total(ctx, &row); err != nil {
		return row, err
	}
	if left := row.Total - run.Published; left > 0 && row.Rate > 0 {
		row.ETA = time.Duration(float64(left) / row.Rate * float64(time.Second))
	}
	return row, nil
}

// total sets a running run's total, from the best source there is: a
// partitioned run's scan (exact), the campaign's previous completed run,
// or, for a campaign's first run, an estimate from how far through the
// user id space its checkpoint is (the audience is read in id order).
func (c *Console) total(ctx context.Context, row *runRow) error {
	run := row.Run
	if run.Action != "publish" {
		return nil
	}
	if run.Status == ledger.Publishing {
		n, err := c.led.Scanned(ctx, run.RequestID)
		if err != nil {
			return err
		}
		if n > 0 {
			row.Total, row.TotalFrom = n, totalScan
			return nil
		}
	}
	if run.CampaignID != "" {
		prev, err := c.led.PreviousOf(ctx, run.CampaignID, run.RequestID)
		if err != nil {
			return err
		}
		if prev != nil && prev.Published > 0 {
			row.Expected = prev.Published
			row.Total, row.TotalFrom = prev.Published, totalPrevious
			return nil
		}
	}
	var cp publish.Checkpoint
	if len(run.Checkpoint) == 0 || json.Unmarshal(run.Checkpoint, &cp) != nil || run.Published <= 0 {
		return nil
	}
	if f, ok := idFraction(cp.After); ok && f >= minEstimateFraction {
		row.Total, row.TotalFrom, row.Estimated = int64(float64(run.Published)/f), totalEstimate, true
	}
	return nil
}

// runView is the run page.
type runView struct {
	runRow
	Result   *publish.Result
	Skipped  []count
	Variants []count
	Waves    waves
	// BaseTimes is the distribution of base times of a run with
	// delivery.local_time, whose waves count from each of them.
	BaseTimes []publish.BaseTimeCount
	Parts     []*ledger.Run
	Events    []eventRow
	// Throughput and WavesChart are the run's charts, inline SVG.
	Throughput, WavesChart template.HTML
	// Which control buttons apply.
	Pausable, Resumable, Cancellable bool
	// Checkpoint is the run's position, shown while it runs.
	Checkpoint string
}

type count struct {
	Name string
	N    int64
}

func (c *Console) runPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	run, err := c.led.Get(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		c.refuse(w, r, http.StatusNotFound, "no run with request_id "+id)
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	row, err := c.progress(ctx, run)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v := runView{runRow: row}
	if len(run.Result) > 0 {
		var res publish.Result
		if err := json.Unmarshal(run.Result, &res); err == nil {
			v.Result = &res
			v.Skipped = skipCounts(res.Skipped)
			v.Variants = sortedCounts(res.Variants)
		}
	}
	if v.Result == nil && row.Skips != nil {
		// Skips so far, while the run goes on.
		v.Skipped = skipCounts(*row.Skips)
	}
	if len(run.Checkpoint) > 0 && v.Result == nil {
		var cp publish.Checkpoint
		if err := json.Unmarshal(run.Checkpoint, &cp); err == nil {
			v.Variants = sortedCounts(cp.Variants)
			v.Checkpoint = cp.After
		}
	}
	if v.Parts, err = c.led.Partitions(ctx, id); err != nil {
		c.fail(w, r, err)
		return
	}
	if v.Events, err = c.timeline(ctx, id); err != nil {
		c.fail(w, r, err)
		return
	}
	th, err := c.throttle(ctx, id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v.Waves = wavesOf(run.Reference, th, run.Published)
	if v.Result != nil && len(v.Result.BaseTimes) > 0 {
		v.BaseTimes = v.Result.BaseTimes
		v.Waves = wavesOfBases(th, v.BaseTimes)
	}
	samples, err := c.samples(ctx, id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	// The line starts at the first attempt's start, from nothing.
	if first, err := c.firstEvent(ctx, id, "started"); err == nil && !first.IsZero() && len(samples) > 0 && first.Before(samples[0].At) {
		samples = append([]point{{At: first}}, samples...)
	}
	// ... and ends where the page's count is: a sample is taken at most
	// every SampleEvery, and an attempt stopped (paused, failed, handed
	// back) between two leaves its last acknowledged batches unsampled,
	// which a resumed attempt's samples then start above.
	if n := len(samples); n > 0 && run.Published > samples[n-1].Published {
		at := run.UpdatedAt
		if run.FinishedAt != nil {
			at = *run.FinishedAt
		}
		if at.Before(samples[n-1].At) {
			at = samples[n-1].At
		}
		samples = append(samples, point{At: at, Published: run.Published})
	}
	v.Throughput, v.WavesChart = throughputSVG(samples), wavesSVG(v.Waves)
	// A partition is controlled through its run; a partitioned run pauses
	// as a whole but keeps its phase's status.
	if !strings.Contains(id, "#") && !run.Status.Final() {
		partitioned := run.Status == ledger.Scanning || run.Status == ledger.Publishing
		v.Pausable = run.Status != ledger.Paused && row.Stopping == ""
		v.Resumable = run.Status == ledger.Paused || (partitioned && row.Stopping == "pause")
		v.Cancellable = true
	}
	p := c.newPage(r, "Run "+id, "runs")
	p.Live = r.URL.EscapedPath()
	p.Data = v
	c.render(w, r, "run", http.StatusOK, p)
}

// skipCounts lists the skip reasons in the order the checks apply them
// (docs/governance.md).
func skipCounts(s publish.Skipped) []count {
	b, _ := json.Marshal(s)
	var m map[string]int64
	_ = json.Unmarshal(b, &m)
	out := make([]count, 0, len(m))
	for _, name := range publish.SkipReasons {
		if n, ok := m[name]; ok {
			out = append(out, count{name, n})
			delete(m, name)
		}
	}
	// A reason this list does not know yet still shows.
	return append(out, sortedCounts(m)...)
}

func sortedCounts(m map[string]int64) []count {
	out := make([]count, 0, len(m))
	for k, n := range m {
		out = append(out, count{k, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// waves is a throttled run's waves, from its throttle, reference time and
// published count (docs/job.md, "Throttling": message k is sent at
// reference + floor(k/N)*M minutes).
type waves struct {
	Throttle *job.Throttle
	List     []wave
	// More is the number of waves not listed.
	More int64
}

type wave struct {
	N     int64
	At    time.Time
	Count int64
}

// maxWaves is how many waves the run page lists and draws.
const maxWaves = 48

func wavesOf(ref time.Time, th *job.Throttle, published int64) waves {
	w := waves{Throttle: th}
	if th == nil || th.MaxPerInterval <= 0 || published <= 0 {
		return w
	}
	total := (published + th.MaxPerInterval - 1) / th.MaxPerInterval
	for k := int64(0); k < total && k < maxWaves; k++ {
		at, ok := job.SendAt(ref, th, k*th.MaxPerInterval)
		if !ok {
			break
		}
		w.List = append(w.List, wave{N: k + 1, At: at, Count: min(th.MaxPerInterval, published-k*th.MaxPerInterval)})
	}
	w.More = total - int64(len(w.List))
	return w
}

// wavesOfBases is the waves of a run with delivery.local_time: each base
// time's messages fill waves of their own from it (docs/delivery.md),
// and waves of different base times that fall at the same instant are
// drawn as one. It counts the messages numbered, before the night-time
// rule defers any.
func wavesOfBases(th *job.Throttle, bases []publish.BaseTimeCount) waves {
	w := waves{Throttle: th}
	if th == nil || th.MaxPerInterval <= 0 {
		return w
	}
	byTime := map[int64]int64{}
	var total int64
	for _, b := range bases {
		for k := int64(0); k*th.MaxPerInterval < b.Messages; k++ {
			at, ok := job.SendAt(b.At, th, k*th.MaxPerInterval)
			if !ok {
				break
			}
			if _, seen := byTime[at.Unix()]; !seen {
				total++
			}
			byTime[at.Unix()] += min(th.MaxPerInterval, b.Messages-k*th.MaxPerInterval)
			if len(byTime) > 100*maxWaves {
				break // enough to list; More is then a lower bound
			}
		}
	}
	times := make([]int64, 0, len(byTime))
	for at := range byTime {
		times = append(times, at)
	}
	slices.Sort(times)
	for i, at := range times {
		if i == maxWaves {
			break
		}
		w.List = append(w.List, wave{N: int64(i + 1), At: time.Unix(at, 0).UTC(), Count: byTime[at]})
	}
	w.More = total - int64(len(w.List))
	return w
}

// controlRun is POST /runs/{id}/pause|resume|cancel: internal/control, not
// waiting for the worker (the page shows the run stopping, then stopped).
func (c *Console) controlRun(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, verb := r.PathValue("id"), r.PathValue("verb")
	var err error
	switch verb {
	case "pause":
		_, err = control.Pause(ctx, c.led, id, 0)
	case "cancel":
		_, err = control.Cancel(ctx, c.led, id, 0)
	case "resume":
		if c.cfg.Jobs == nil {
			c.refuse(w, r, http.StatusConflict, "resume needs the job queue, which this console has not opened")
			return
		}
		var q claimcheck.Sender
		if q, _, err = c.jobs(ctx); err == nil {
			_, err = control.Resume(ctx, c.led, q, id)
		}
	default:
		c.refuse(w, r, http.StatusNotFound, "unknown run action "+verb)
		return
	}
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ledger.ErrNotFound) || errors.Is(err, ledger.ErrFinished) || errors.Is(err, ledger.ErrNotPaused) || errors.Is(err, ledger.ErrPartition) {
			status = http.StatusConflict
		}
		c.refuse(w, r, status, err.Error())
		return
	}
	c.log.Info("console: run "+verb, "request_id", id)
	http.Redirect(w, r, c.doneURL("/runs/"+url.PathEscape(id), verb+" requested"), http.StatusSeeOther)
}

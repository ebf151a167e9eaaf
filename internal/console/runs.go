package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
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
	// 0 when none: the basis of ETA.
	Expected int64
	ETA      time.Duration
	Elapsed  time.Duration
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

// progress adds a run's rate and ETA.
func (c *Console) progress(ctx context.Context, run *ledger.Run) (runRow, error) {
	row := runRow{Run: run}
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
	if run.Status.Final() || run.Status == ledger.Paused {
		if row.Elapsed > 0 {
			row.Rate = float64(run.Published) / row.Elapsed.Seconds()
		}
		return row, nil
	}
	if row.Stopping, err = c.stopRequested(ctx, run.RequestID); err != nil {
		return row, err
	}
	samples, err := c.samples(ctx, run.RequestID)
	if err != nil {
		return row, err
	}
	row.Rate = recentRate(samples, c.cfg.Now())
	if run.Action == "publish" && run.CampaignID != "" {
		prev, err := c.led.PreviousOf(ctx, run.CampaignID, run.RequestID)
		if err != nil {
			return row, err
		}
		if prev != nil {
			row.Expected = prev.Published
			if left := prev.Published - run.Published; left > 0 && row.Rate > 0 {
				row.ETA = time.Duration(float64(left) / row.Rate * float64(time.Second))
			}
		}
	}
	return row, nil
}

// stopRequested returns the stop request recorded on a run ("pause",
// "cancel"), "" when none.
func (c *Console) stopRequested(ctx context.Context, requestID string) (string, error) {
	var control *string
	err := c.cfg.State.QueryRow(ctx, `SELECT control FROM segpub_runs WHERE request_id = $1`, requestID).Scan(&control)
	if err != nil {
		return "", fmt.Errorf("control of run %s: %w", requestID, err)
	}
	if control == nil {
		return "", nil
	}
	return *control, nil
}

// runView is the run page.
type runView struct {
	runRow
	Result   *publish.Result
	Skipped  []count
	Variants []count
	Waves    waves
	Parts    []*ledger.Run
	Events   []eventRow
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
	samples, err := c.samples(ctx, id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	// The line starts at the first attempt's start, from nothing.
	if first, err := c.firstEvent(ctx, id, "started"); err == nil && !first.IsZero() && len(samples) > 0 && first.Before(samples[0].At) {
		samples = append([]point{{At: first}}, samples...)
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
	order := []string{"unknown_user", "previously_received", "no_consent", "frequency_capped", "control_group", "no_contact",
		"invalid_contact", "duplicate_destination"}
	out := make([]count, 0, len(m))
	for _, name := range order {
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
		if errors.Is(err, ledger.ErrNotFound) || errors.Is(err, ledger.ErrFinished) || errors.Is(err, ledger.ErrNotPaused) || strings.Contains(err.Error(), "a partition of") {
			status = http.StatusConflict
		}
		c.refuse(w, r, status, err.Error())
		return
	}
	c.log.Info("console: run "+verb, "request_id", id)
	http.Redirect(w, r, c.doneURL("/runs/"+url.PathEscape(id), verb+" requested"), http.StatusSeeOther)
}

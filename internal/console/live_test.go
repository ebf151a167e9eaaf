package console

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/events"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
)

// liveRunner reports progress (candidates checked, skips so far) and
// acknowledgements, as the engine does, and returns without the run
// finishing in the ledger: the run is still running for the console.
type liveRunner struct{}

func (liveRunner) RunWith(_ context.Context, j *job.Job, _ *publish.Range, _ publish.Sink, _ publish.Checkpoint, hooks publish.Hooks) (*publish.Result, error) {
	hooks.Progress(publish.Progress{Candidates: 12, Published: 0, Skipped: &publish.Skipped{NoContact: 2}})
	if err := hooks.OnAck(publish.Checkpoint{Published: 5}); err != nil {
		return nil, err
	}
	hooks.Progress(publish.Progress{Candidates: 18, Published: 10, Skipped: &publish.Skipped{NoContact: 5, ControlGroup: 3}})
	if err := hooks.OnAck(publish.Checkpoint{Published: 10}); err != nil {
		return nil, err
	}
	return nil, nil
}

// A campaign's first run, still running, shows its channel, its skips so
// far by reason, and a total, percentage and ETA estimated from how far
// through the user id space it is; a run without a throttle says so once.
func TestRunningRunShowsWhatItKnows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	ctx := context.Background()
	rec, err := NewRecorder(ctx, RecorderConfig{Pool: f.state, Retention: time.Hour, SampleEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	id := "r-live"
	f.claim(t, id)
	_ = rec.Events(nil).Emit(ctx, events.Event{Type: "started", RequestID: id, Attempt: 1, At: time.Now().UTC()})
	j := &job.Job{RequestID: id, Campaign: job.Campaign{Channel: "kakao_alimtalk"}}
	if _, err := rec.Runner(liveRunner{}).RunWith(ctx, j, nil, nil, publish.Checkpoint{}, publish.Hooks{}); err != nil {
		t.Fatal(err)
	}
	// A quarter through the id space with 10 published: about 40 in all.
	if err := f.led.Checkpoint(ctx, id, "worker-1", []byte(`{"after":"40000000000000000000000000000000","published":10}`), 10); err != nil {
		t.Fatal(err)
	}
	run, err := f.led.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	row, err := f.con.progress(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if row.Channel != "kakao_alimtalk" || row.Total != 40 || !row.Estimated || row.TotalFrom != totalEstimate ||
		!row.SkippedLive || row.Skips == nil || *row.Skips != (publish.Skipped{NoContact: 5, ControlGroup: 3}) {
		t.Fatalf("row %+v (skips %+v)", row, row.Skips)
	}
	if row.Rate > 0 && row.ETA <= 0 {
		t.Fatalf("rate %v but no ETA", row.Rate)
	}
	_, list := f.get(t, "/runs")
	running := section(list, "running")
	for _, want := range []string{`<td class="channel">kakao_alimtalk</td>`, `<td class="n skipped" title="so far">8</td>`,
		`≈ 40</td>`, `<td class="n pct">25.0%</td>`} {
		if !strings.Contains(running, want) {
			t.Errorf("runs page's running section lacks %q:\n%s", want, running)
		}
	}
	code, page := f.get(t, "/runs/"+id)
	if code != http.StatusOK {
		t.Fatalf("GET run: %d", code)
	}
	for _, want := range []string{`id="channel">kakao_alimtalk<`, `Skipped, by reason <span class="muted">(so far)</span>`,
		`data-reason="no_contact">5<`, `data-reason="control_group">3<`, `≈ 40 <span class="muted">(25.0% done; estimated`,
		`id="no-throttle"`, `id="pause" type="submit" disabled title="actions are disabled: no console token is set`,
		`id="cancel" class="danger" type="submit" disabled`} {
		if !strings.Contains(page, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	if n := strings.Count(page, "Waves"); n != 1 {
		t.Errorf("run page without a throttle says Waves %d times", n)
	}
}

// After an attempt stopped between two samples, the chart ends where the
// page's count is, not at the last sample.
func TestChartEndsAtThePagesCount(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	rec, err := NewRecorder(ctx, RecorderConfig{Pool: f.state, Retention: time.Hour, SampleEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	id := "r-chart"
	f.claim(t, id)
	j := &job.Job{RequestID: id, Campaign: job.Campaign{Channel: "email"}}
	if _, err := rec.Runner(fakeRunner{acks: []int64{100_000, 241_078}}).RunWith(ctx, j, nil, nil, publish.Checkpoint{}, publish.Hooks{}); err != nil {
		t.Fatal(err)
	}
	res, _ := json.Marshal(publish.Result{RequestID: id, Status: "completed", Candidates: 250_078, Published: 250_078})
	if err := f.led.Finish(ctx, id, "worker-1", ledger.Outcome{Status: ledger.Completed, Candidates: 250_078, Published: 250_078, Result: res}); err != nil {
		t.Fatal(err)
	}
	_, page := f.get(t, "/runs/"+id)
	if !strings.Contains(page, `text-anchor="end">250,078</text>`) || !strings.Contains(page, `id="published">250,078<`) {
		t.Fatalf("the chart's top is not the page's count:\n%s", page[strings.Index(page, "<svg"):][:600])
	}
}

func TestIndentJSON(t *testing.T) {
	t.Parallel()
	if got := indentJSON([]byte(`{"a":{"b":[1,2]},"c":"x"}`)); got != "{\n  \"a\": {\n    \"b\": [\n      1,\n      2\n    ]\n  },\n  \"c\": \"x\"\n}" {
		t.Fatalf("%q", got)
	}
	if got := indentJSON([]byte(`not json`)); got != "not json" {
		t.Fatalf("%q", got)
	}
}

package console

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// eventRow is one entry of a run's timeline.
type eventRow struct {
	At         time.Time
	Type       string
	Attempt    int
	Candidates int64
	Published  int64
	Error      string
}

// maxTimeline bounds a run's timeline (a long run has a progress event
// every heartbeat).
const maxTimeline = 200

func (c *Console) timeline(ctx context.Context, requestID string) ([]eventRow, error) {
	evs, err := c.records.Timeline(ctx, requestID, []string{sampleEvent, jobEvent}, maxTimeline)
	if err != nil {
		return nil, err
	}
	out := make([]eventRow, len(evs))
	for i, e := range evs {
		out[i] = eventRow{At: e.At, Type: e.Type, Attempt: e.Attempt, Candidates: e.Candidates, Published: e.Published, Error: e.Error}
	}
	return out, nil
}

// firstEvent is when a run first had an event of type typ (zero: never).
func (c *Console) firstEvent(ctx context.Context, requestID, typ string) (time.Time, error) {
	return c.records.FirstEvent(ctx, requestID, typ)
}

// throttle is the throttle the run's latest attempt recorded; nil when it
// has none or none was recorded.
func (c *Console) throttle(ctx context.Context, requestID string) (*job.Throttle, error) {
	evs, err := c.records.Latest(ctx, requestID, jobEvent, 1)
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	var d jobDetail
	if err := json.Unmarshal(evs[0].Detail, &d); err != nil {
		return nil, nil
	}
	return d.Throttle, nil
}

// point is the run's acknowledged messages at a moment.
type point struct {
	At        time.Time
	Published int64
}

// maxSamples bounds the samples read for a chart; a run sampled every
// second for longer keeps its latest.
const maxSamples = 5000

// samples returns a run's throughput samples as the run's total over
// time: the sum of each partition's latest count (one lane for a run that
// is not partitioned).
func (c *Console) samples(ctx context.Context, requestID string) ([]point, error) {
	raw, err := c.records.Latest(ctx, requestID, sampleEvent, maxSamples)
	if err != nil {
		return nil, err
	}
	lanes := map[string]int64{}
	var total int64
	out := make([]point, 0, len(raw))
	for _, s := range raw {
		total += s.Published - lanes[s.Part]
		lanes[s.Part] = s.Published
		out = append(out, point{At: s.At, Published: total})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// rateWindow is how far back a running run's rate looks.
const rateWindow = 30 * time.Second

// recentRate is messages a second over the samples of the last
// rateWindow before now.
func recentRate(ps []point, now time.Time) float64 {
	if len(ps) < 2 {
		return 0
	}
	last := ps[len(ps)-1]
	first := last
	for i := len(ps) - 2; i >= 0 && last.At.Sub(ps[i].At) <= rateWindow; i-- {
		first = ps[i]
	}
	if now.Sub(last.At) > rateWindow {
		return 0 // nothing acknowledged lately
	}
	dt := last.At.Sub(first.At).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(last.Published-first.Published) / dt
}

// channelOf is the channel the run's latest attempt recorded ("" when no
// attempt started: a rejected job).
func (c *Console) channelOf(ctx context.Context, requestID string) (string, error) {
	evs, err := c.records.Latest(ctx, requestID, jobEvent, 1)
	if err != nil || len(evs) == 0 {
		return "", err
	}
	var d jobDetail
	if json.Unmarshal(evs[0].Detail, &d) != nil {
		return "", nil
	}
	return d.Channel, nil
}

// liveSkipped is a running run's skips so far: the sum of each lane's
// latest sample (nil when no sample carries them yet).
func (c *Console) liveSkipped(ctx context.Context, requestID string) (*publish.Skipped, error) {
	lanes, err := c.records.LatestPerPart(ctx, requestID, sampleEvent)
	if err != nil {
		return nil, err
	}
	var sum *publish.Skipped
	for _, e := range lanes {
		var d sampleDetail
		if len(e.Detail) == 0 || json.Unmarshal(e.Detail, &d) != nil || d.Skipped == nil {
			continue
		}
		if sum == nil {
			sum = &publish.Skipped{}
		}
		sum.Add(*d.Skipped)
	}
	return sum, nil
}

package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

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
	rows, err := c.cfg.State.Query(ctx, `SELECT at, type, attempt, candidates, published, error FROM (
  SELECT * FROM segpub_console_events WHERE request_id = $1 AND type NOT IN ($2, $3) ORDER BY at DESC, id DESC LIMIT $4) e
ORDER BY at, id`, requestID, sampleEvent, jobEvent, maxTimeline)
	if err != nil {
		return nil, fmt.Errorf("timeline of %s: %w", requestID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventRow, error) {
		var e eventRow
		err := r.Scan(&e.At, &e.Type, &e.Attempt, &e.Candidates, &e.Published, &e.Error)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("timeline of %s: %w", requestID, err)
	}
	return out, nil
}

// firstEvent is when a run first had an event of type typ (zero: never).
func (c *Console) firstEvent(ctx context.Context, requestID, typ string) (time.Time, error) {
	var at *time.Time
	err := c.cfg.State.QueryRow(ctx, `SELECT min(at) FROM segpub_console_events WHERE request_id = $1 AND type = $2`, requestID, typ).Scan(&at)
	if err != nil {
		return time.Time{}, fmt.Errorf("first %s event of %s: %w", typ, requestID, err)
	}
	if at == nil {
		return time.Time{}, nil
	}
	return *at, nil
}

// throttle is the throttle the run's latest attempt recorded; nil when it
// has none or none was recorded.
func (c *Console) throttle(ctx context.Context, requestID string) (*job.Throttle, error) {
	var detail []byte
	err := c.cfg.State.QueryRow(ctx, `SELECT detail FROM segpub_console_events WHERE request_id = $1 AND type = $2 ORDER BY at DESC, id DESC LIMIT 1`,
		requestID, jobEvent).Scan(&detail)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("job of %s: %w", requestID, err)
	}
	var d jobDetail
	if err := json.Unmarshal(detail, &d); err != nil {
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
	rows, err := c.cfg.State.Query(ctx, `SELECT at, part, published FROM (
  SELECT * FROM segpub_console_events WHERE request_id = $1 AND type = $2 ORDER BY at DESC, id DESC LIMIT $3) e ORDER BY at, id`,
		requestID, sampleEvent, maxSamples)
	if err != nil {
		return nil, fmt.Errorf("samples of %s: %w", requestID, err)
	}
	type sample struct {
		at   time.Time
		lane string
		n    int64
	}
	raw, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sample, error) {
		var s sample
		err := r.Scan(&s.at, &s.lane, &s.n)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("samples of %s: %w", requestID, err)
	}
	lanes := map[string]int64{}
	var total int64
	out := make([]point, 0, len(raw))
	for _, s := range raw {
		total += s.n - lanes[s.lane]
		lanes[s.lane] = s.n
		out = append(out, point{At: s.at, Published: total})
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
	var ch *string
	err := c.cfg.State.QueryRow(ctx, `SELECT detail->>'channel' FROM segpub_console_events WHERE request_id = $1 AND type = $2 ORDER BY at DESC, id DESC LIMIT 1`,
		requestID, jobEvent).Scan(&ch)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && ch == nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("channel of %s: %w", requestID, err)
	}
	return *ch, nil
}

// liveSkipped is a running run's skips so far: the sum of each lane's
// latest sample (nil when no sample carries them yet).
func (c *Console) liveSkipped(ctx context.Context, requestID string) (*publish.Skipped, error) {
	rows, err := c.cfg.State.Query(ctx, `SELECT DISTINCT ON (part) detail FROM segpub_console_events
WHERE request_id = $1 AND type = $2 ORDER BY part, at DESC, id DESC`, requestID, sampleEvent)
	if err != nil {
		return nil, fmt.Errorf("skips of %s: %w", requestID, err)
	}
	details, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("skips of %s: %w", requestID, err)
	}
	var sum *publish.Skipped
	for _, raw := range details {
		var d sampleDetail
		if len(raw) == 0 || json.Unmarshal(raw, &d) != nil || d.Skipped == nil {
			continue
		}
		if sum == nil {
			sum = &publish.Skipped{}
		}
		sum.Add(*d.Skipped)
	}
	return sum, nil
}

package scheduler

import (
	"context"
	"time"

	"github.com/segpub/segpub/internal/state"
)

// Occurrence is a recorded occurrence of a campaign: enqueued, stale
// (missed by more than the catch-up window, never sent) or failed.
type Occurrence = state.Occurrence

// Recorded returns the latest recorded occurrences, at most limit, newest
// first; with status, only those in it.
func (s *Store) Recorded(ctx context.Context, status string, limit int) ([]Occurrence, error) {
	return s.rows.Recorded(ctx, status, limit)
}

// Location is the schedule's time zone.
func (p *parsed) Location() *time.Location { return p.loc }

// Next returns the schedule's first n occurrences after now, in its time
// zone, looking at most a year ahead. created is when the campaign was
// added.
func (p *parsed) Next(created, now time.Time, n int) []time.Time {
	out := p.Occurrences(created, now, now.AddDate(1, 0, 0))
	if len(out) > n {
		out = out[:n]
	}
	for i := range out {
		out[i] = out[i].In(p.loc)
	}
	return out
}

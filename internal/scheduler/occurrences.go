package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Occurrence is a recorded occurrence of a campaign: enqueued, stale
// (missed by more than the catch-up window, never sent) or failed.
type Occurrence struct {
	CampaignID string    `json:"campaign_id"`
	At         time.Time `json:"occurrence"`
	RequestID  string    `json:"request_id"`
	Status     string    `json:"status"`
	RecordedAt time.Time `json:"recorded_at"`
}

// Recorded returns the latest recorded occurrences, at most limit, newest
// first; with status, only those in it.
func (s *Store) Recorded(ctx context.Context, status string, limit int) ([]Occurrence, error) {
	rows, err := s.pool.Query(ctx, `SELECT campaign_id, occurrence, request_id, status, recorded_at FROM segpub_occurrences
WHERE $1 = '' OR status = $1 ORDER BY occurrence DESC, campaign_id LIMIT $2`, status, limit)
	if err != nil {
		return nil, fmt.Errorf("list occurrences: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Occurrence, error) {
		var o Occurrence
		err := r.Scan(&o.CampaignID, &o.At, &o.RequestID, &o.Status, &o.RecordedAt)
		return o, err
	})
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

package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Campaign statuses (segpub_campaigns.status).
const (
	CampaignActive = "active"
	CampaignPaused = "paused"
	CampaignEnded  = "ended"
)

// Campaigns are the scheduler's rows: scheduled campaigns
// (segpub_campaigns) and the occurrences it recorded
// (segpub_occurrences).
type Campaigns struct {
	pool *pgxpool.Pool
}

// NewCampaigns returns the campaigns of pool's database, migrating it first.
func NewCampaigns(ctx context.Context, pool *pgxpool.Pool) (*Campaigns, error) {
	if err := Migrate(ctx, pool); err != nil {
		return nil, err
	}
	return &Campaigns{pool: pool}, nil
}

// CampaignRow is a stored campaign.
type CampaignRow struct {
	ID, ProjectID, Action string
	Campaign, Schedule    json.RawMessage
	Status                string
	CreatedAt             time.Time
}

// Add stores a new campaign (active); false when one has its id.
func (s *Campaigns) Add(ctx context.Context, c CampaignRow) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO segpub_campaigns (id, project_id, action, campaign, schedule) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO NOTHING`, c.ID, c.ProjectID, c.Action, c.Campaign, c.Schedule)
	if err != nil {
		return false, fmt.Errorf("add campaign %s: %w", c.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// List returns every campaign, by id.
func (s *Campaigns) List(ctx context.Context) ([]CampaignRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, project_id, action, campaign, schedule, status, created_at FROM segpub_campaigns ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CampaignRow, error) {
		var c CampaignRow
		err := r.Scan(&c.ID, &c.ProjectID, &c.Action, &c.Campaign, &c.Schedule, &c.Status, &c.CreatedAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	return out, nil
}

// SetStatus sets a campaign's status unless it has ended (an ended
// campaign stays ended); false when no campaign was changed.
func (s *Campaigns) SetStatus(ctx context.Context, id, status string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE segpub_campaigns SET status = $2, updated_at = now() WHERE id = $1 AND status <> $3`, id, status, CampaignEnded)
	if err != nil {
		return false, fmt.Errorf("set campaign %s %s: %w", id, status, err)
	}
	return tag.RowsAffected() == 1, nil
}

// EndOnceRecorded ends an active campaign that has a recorded occurrence
// (a one-off campaign whose occurrence is done with).
func (s *Campaigns) EndOnceRecorded(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE segpub_campaigns SET status = $2, updated_at = now()
WHERE id = $1 AND status = $3 AND EXISTS (SELECT 1 FROM segpub_occurrences WHERE campaign_id = $1)`, id, CampaignEnded, CampaignActive); err != nil {
		return fmt.Errorf("end campaign %s: %w", id, err)
	}
	return nil
}

// Occurrence is a recorded occurrence of a campaign: enqueued, stale
// (missed by more than the catch-up window, never sent) or failed.
type Occurrence struct {
	CampaignID string    `json:"campaign_id"`
	At         time.Time `json:"occurrence"`
	RequestID  string    `json:"request_id"`
	Status     string    `json:"status"`
	RecordedAt time.Time `json:"recorded_at"`
}

// Record inserts an occurrence and, in the same transaction, runs send
// (nil: none). It reports false when the occurrence was recorded before
// (by this or another scheduler); a send that fails rolls the insert back.
func (s *Campaigns) Record(ctx context.Context, o Occurrence, send func(context.Context) error) (bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("record occurrence: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	tag, err := tx.Exec(ctx, `INSERT INTO segpub_occurrences (campaign_id, occurrence, request_id, status) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING`, o.CampaignID, o.At, o.RequestID, o.Status)
	if err != nil {
		return false, fmt.Errorf("record occurrence of %s: %w", o.CampaignID, err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if send != nil {
		if err := send(ctx); err != nil {
			return false, fmt.Errorf("enqueue occurrence of %s: %w", o.CampaignID, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("record occurrence of %s: %w", o.CampaignID, err)
	}
	return true, nil
}

// Recorded returns the latest recorded occurrences, at most limit, newest
// first; with status, only those in it.
func (s *Campaigns) Recorded(ctx context.Context, status string, limit int) ([]Occurrence, error) {
	rows, err := s.pool.Query(ctx, `SELECT campaign_id, occurrence, request_id, status, recorded_at FROM segpub_occurrences
WHERE $1 = '' OR status = $1 ORDER BY occurrence DESC, campaign_id LIMIT $2`, status, limit)
	if err != nil {
		return nil, fmt.Errorf("list occurrences: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Occurrence])
	if err != nil {
		return nil, fmt.Errorf("list occurrences: %w", err)
	}
	return out, nil
}

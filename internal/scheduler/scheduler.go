package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/lifecycle"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/state"
)

// Campaign statuses.
const (
	Active = state.CampaignActive
	Paused = state.CampaignPaused
	Ended  = state.CampaignEnded
)

// Campaign is a scheduled campaign.
type Campaign struct {
	ID        string          `json:"id"`
	ProjectID string          `json:"project_id"`
	Action    string          `json:"action"`
	Campaign  json.RawMessage `json:"campaign"`
	Schedule  json.RawMessage `json:"schedule"`
	Status    string          `json:"status"`
	CreatedAt time.Time       `json:"created_at"`
}

// Store reads and writes campaigns (state.Campaigns has the queries).
type Store struct {
	rows *state.Campaigns
}

// NewStore returns a Store, migrating segpub's tables if needed (the
// scheduler's are segpub_campaigns and segpub_occurrences).
func NewStore(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	rows, err := state.NewCampaigns(ctx, pool)
	if err != nil {
		return nil, err
	}
	return &Store{rows: rows}, nil
}

// Job builds the job of one occurrence.
func (c *Campaign) Job(at time.Time) ([]byte, error) {
	body := map[string]any{
		"version": 1, "action": c.Action, "request_id": RequestID(c.ID, at), "project_id": c.ProjectID,
		"scheduled_at": at.Format(time.RFC3339), "campaign": c.Campaign,
	}
	return json.Marshal(body)
}

// Add validates and stores a campaign: its job must parse as the worker
// will parse it, so a bad campaign is refused now, not at 3 a.m.
func (s *Store) Add(ctx context.Context, c Campaign) error {
	c.Action = cmp.Or(c.Action, string(job.ActionPublish))
	if _, err := ParseSchedule(c.Schedule); err != nil {
		return job.Rejectf("", "%v", err)
	}
	var inner struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(c.Campaign, &inner); err != nil || inner.ID == "" {
		return job.Rejectf("campaign.id", "required")
	}
	c.ID = inner.ID
	body, err := c.Job(time.Now())
	if err != nil {
		return err
	}
	if _, err := job.Parse(body); err != nil {
		return err
	}
	added, err := s.rows.Add(ctx, state.CampaignRow{ID: c.ID, ProjectID: c.ProjectID, Action: c.Action, Campaign: c.Campaign, Schedule: c.Schedule})
	if err != nil {
		return err
	}
	if !added {
		return fmt.Errorf("add campaign %s: a campaign with that id exists", c.ID)
	}
	return nil
}

// List returns every campaign, by id.
func (s *Store) List(ctx context.Context) ([]Campaign, error) {
	rows, err := s.rows.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Campaign, len(rows))
	for i, r := range rows {
		out[i] = Campaign{ID: r.ID, ProjectID: r.ProjectID, Action: r.Action, Campaign: r.Campaign, Schedule: r.Schedule, Status: r.Status, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// SetStatus pauses, resumes or ends a campaign. An ended campaign stays
// ended.
func (s *Store) SetStatus(ctx context.Context, id, status string) error {
	changed, err := s.rows.SetStatus(ctx, id, status)
	if err != nil {
		return err
	}
	if !changed {
		return fmt.Errorf("set campaign %s %s: no such campaign, or it has ended", id, status)
	}
	return nil
}

// Sender is the part of the job queue the scheduler uses.
type Sender = claimcheck.Sender

// Config configures a Scheduler.
type Config struct {
	Store *Store
	Queue Sender
	// Messages holds the jobs over the queue's size limit, which are
	// enqueued as claim checks. Nil: such a job is not sent; its
	// occurrence is recorded as failed, once.
	Messages msgstore.Store
	// Interval between wakes. Default: 5 minutes.
	Interval time.Duration
	// CatchUp is how late an occurrence may still be sent: one missed by
	// more (the scheduler was down, the database was restored from an old
	// snapshot) is recorded as stale and reported, never sent
	// automatically. Default: 1 hour.
	CatchUp time.Duration
	Logger  *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Scheduler wakes on an interval and enqueues due occurrences.
type Scheduler struct {
	cfg  Config
	log  *slog.Logger
	loop lifecycle.Loop
}

// New returns a Scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Store == nil || cfg.Queue == nil {
		return nil, errors.New("scheduler: Config.Store and Config.Queue are required")
	}
	cfg.Interval = cmp.Or(cfg.Interval, 5*time.Minute)
	cfg.CatchUp = cmp.Or(cfg.CatchUp, time.Hour)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scheduler{cfg: cfg, log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))}, nil
}

// lookback is how far back a wake looks for occurrences, to report stale
// ones once.
const lookback = 7 * 24 * time.Hour

// Report says what one wake did.
type Report struct {
	Enqueued []string `json:"enqueued"`
	Stale    []string `json:"stale"`
	// Failed are occurrences that can never be enqueued as they stand
	// (a job over the queue's limit and no message store).
	Failed []string `json:"failed,omitempty"`
}

// Tick is one wake: every due occurrence of every active campaign is
// enqueued, unless another scheduler already did.
func (s *Scheduler) Tick(ctx context.Context) (Report, error) {
	var rep Report
	now := s.cfg.Now()
	campaigns, err := s.cfg.Store.List(ctx)
	if err != nil {
		return rep, err
	}
	for _, c := range campaigns {
		if c.Status != Active {
			continue
		}
		sched, err := ParseSchedule(c.Schedule)
		if err != nil {
			s.log.Error("campaign has a bad schedule; skipped", "campaign_id", c.ID, "err", err)
			continue
		}
		for _, at := range sched.Occurrences(c.CreatedAt, now.Add(-lookback), now) {
			id := RequestID(c.ID, at)
			if at.Before(now.Add(-s.cfg.CatchUp)) {
				recorded, err := s.record(ctx, c, at, "stale", nil)
				if err != nil {
					return rep, err
				}
				if recorded {
					s.log.Warn("occurrence missed by more than the catch-up window; not sent", "campaign_id", c.ID, "occurrence", at, "request_id", id)
					rep.Stale = append(rep.Stale, id)
				}
				continue
			}
			sent, err := s.record(ctx, c, at, "enqueued", func(ctx context.Context) error {
				body, err := c.Job(at.In(sched.loc))
				if err != nil {
					return err
				}
				_, err = claimcheck.Send(ctx, s.cfg.Queue, s.cfg.Messages, body, id)
				return err
			})
			if errors.Is(err, claimcheck.ErrNoStore) {
				// Retrying cannot help: recorded as failed, so it is
				// reported once and the wake goes on to the rest.
				recorded, rerr := s.record(ctx, c, at, "failed", nil)
				if rerr != nil {
					return rep, rerr
				}
				if recorded {
					s.log.Error("occurrence cannot be enqueued; not sent", "campaign_id", c.ID, "occurrence", at, "request_id", id, "err", err)
					rep.Failed = append(rep.Failed, id)
				}
				continue
			}
			if err != nil {
				return rep, err
			}
			if sent {
				s.log.Info("occurrence enqueued", "campaign_id", c.ID, "request_id", id)
				rep.Enqueued = append(rep.Enqueued, id)
			}
		}
		if sched.Kind == Immediate || sched.Kind == Once {
			s.endIfDone(ctx, c, sched, now)
		}
	}
	return rep, nil
}

// record inserts an occurrence and, in the same transaction, runs send.
// Only the scheduler whose insert succeeds sends; a send that fails rolls
// the insert back, so the next wake tries again. A crash after the send but
// before the commit sends the occurrence again on the next wake with the
// same request_id, which the queue's de-duplication and the run ledger drop.
func (s *Scheduler) record(ctx context.Context, c Campaign, at time.Time, status string, send func(context.Context) error) (bool, error) {
	return s.cfg.Store.rows.Record(ctx, state.Occurrence{CampaignID: c.ID, At: at, RequestID: RequestID(c.ID, at), Status: status}, send)
}

// endIfDone ends a one-off campaign once its occurrence is recorded.
func (s *Scheduler) endIfDone(ctx context.Context, c Campaign, p *parsed, now time.Time) {
	var at time.Time
	switch p.Kind {
	case Immediate:
		at = c.CreatedAt
	case Once:
		at = time.Date(p.date.Year(), p.date.Month(), p.date.Day(), p.hour, p.min, 0, 0, p.loc)
	}
	if at.After(now) {
		return
	}
	if err := s.cfg.Store.rows.EndOnceRecorded(ctx, c.ID); err != nil {
		s.log.Error("end one-off campaign", "campaign_id", c.ID, "err", err)
	}
}

// Start wakes now and then every Interval until Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	err := s.loop.Start(ctx, func(ctx context.Context) {
		lifecycle.Every(ctx, s.cfg.Interval, func(ctx context.Context) {
			if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("scheduler wake", "err", err)
			}
		})
	})
	if err != nil {
		return fmt.Errorf("scheduler: %w", err)
	}
	s.log.Info("scheduler started", "interval", s.cfg.Interval, "catch_up", s.cfg.CatchUp)
	return nil
}

// Stop stops waking and waits for a wake in progress, until ctx ends.
func (s *Scheduler) Stop(ctx context.Context) error { return s.loop.Stop(ctx) }

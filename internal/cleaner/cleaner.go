// Package cleaner deletes what segpub's own tables no longer need: finished
// runs past their retention, scheduler occurrences past theirs, and the
// destination fingerprints of partitioned runs once the run has ended.
// `segpub serve` runs it; with several processes one cleans at a time (an
// advisory lock), and each pass deletes in small batches so it never holds
// long locks on tables the workers write.
package cleaner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/lifecycle"
)

// Defaults. Runs are kept well past any queue's retention (SQS keeps a
// message at most 14 days), because a run's row is what stops a late copy
// of a finished job from running again. Occurrences must outlive the
// scheduler's 7-day look-back, or a deleted occurrence could be due again.
const (
	DefaultRunRetention         = 30 * 24 * time.Hour
	DefaultOccurrenceRetention  = 30 * 24 * time.Hour
	DefaultDestinationRetention = time.Hour
	DefaultInterval             = time.Hour
	// MinOccurrenceRetention is the scheduler's look-back.
	MinOccurrenceRetention = 7 * 24 * time.Hour
	// MinRunRetention keeps runs at least as long as a queue may hold a
	// copy of their job.
	MinRunRetention = 14 * 24 * time.Hour
	// batchRows bounds one DELETE.
	batchRows = 5000
)

// lockKey is the advisory lock one cleaning pass holds.
const lockKey int64 = 0x5e6b_c1ea

// Config configures a Cleaner.
type Config struct {
	// Pool is segpub's state database. Required.
	Pool *pgxpool.Pool
	// RunRetention is how long a finished (completed, rejected, failed)
	// run is kept after it finished. Default: DefaultRunRetention.
	RunRetention time.Duration
	// OccurrenceRetention is how long a scheduler occurrence is kept after
	// its time. Default: DefaultOccurrenceRetention.
	OccurrenceRetention time.Duration
	// DestinationRetention is how long a partitioned run's destination
	// fingerprints are kept after the run finished. Default:
	// DefaultDestinationRetention.
	DestinationRetention time.Duration
	// Interval is the time between passes. Default: DefaultInterval.
	Interval time.Duration
	Logger   *slog.Logger
}

func (c *Config) validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("cleaner: Config.Pool is required")
	case c.RunRetention != 0 && c.RunRetention < MinRunRetention:
		return fmt.Errorf("cleaner: Config.RunRetention %v is under %v (a queue may still hold a copy of a finished job)", c.RunRetention, MinRunRetention)
	case c.OccurrenceRetention != 0 && c.OccurrenceRetention < MinOccurrenceRetention:
		return fmt.Errorf("cleaner: Config.OccurrenceRetention %v is under the scheduler's look-back of %v", c.OccurrenceRetention, MinOccurrenceRetention)
	case c.DestinationRetention < 0:
		return fmt.Errorf("cleaner: Config.DestinationRetention %v is negative", c.DestinationRetention)
	case c.Interval < 0:
		return fmt.Errorf("cleaner: Config.Interval %v is negative", c.Interval)
	}
	return nil
}

// Cleaner deletes expired rows of segpub's tables.
type Cleaner struct {
	cfg  Config
	log  *slog.Logger
	loop lifecycle.Loop
}

// New returns a Cleaner.
func New(cfg Config) (*Cleaner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.RunRetention == 0 {
		cfg.RunRetention = DefaultRunRetention
	}
	if cfg.OccurrenceRetention == 0 {
		cfg.OccurrenceRetention = DefaultOccurrenceRetention
	}
	if cfg.DestinationRetention == 0 {
		cfg.DestinationRetention = DefaultDestinationRetention
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cleaner{cfg: cfg, log: log}, nil
}

// Deleted counts the rows a pass deleted, by table.
type Deleted struct {
	Runs         int64 `json:"runs"`
	Occurrences  int64 `json:"occurrences"`
	Destinations int64 `json:"destinations"`
	// Skipped is true when another process held the lock.
	Skipped bool `json:"skipped,omitempty"`
}

// statements delete one batch each; every one takes its cut-off as $1 and
// the batch size as $2. Destinations go first, while their run's row still
// says when it finished.
var statements = []struct {
	table string
	sql   string
}{
	{"segpub_partition_destinations", `DELETE FROM segpub_partition_destinations WHERE ctid = ANY(ARRAY(
  SELECT d.ctid FROM segpub_partition_destinations d JOIN segpub_runs r ON r.request_id = d.request_id
  WHERE r.status IN ('completed', 'rejected', 'failed', 'cancelled') AND r.finished_at < $1 LIMIT $2))`},
	{"segpub_runs", `DELETE FROM segpub_runs WHERE request_id = ANY(ARRAY(
  SELECT request_id FROM segpub_runs WHERE status IN ('completed', 'rejected', 'failed', 'cancelled') AND finished_at < $1
  AND (parent IS NULL OR parent NOT IN (SELECT request_id FROM segpub_runs WHERE status NOT IN ('completed', 'rejected', 'failed', 'cancelled')))
  LIMIT $2))`},
	{"segpub_occurrences", `DELETE FROM segpub_occurrences WHERE (campaign_id, occurrence) IN (
  SELECT campaign_id, occurrence FROM segpub_occurrences WHERE occurrence < $1 LIMIT $2)`},
}

// Clean runs one pass, unless another process is cleaning.
func (c *Cleaner) Clean(ctx context.Context) (Deleted, error) {
	var d Deleted
	conn, err := c.cfg.Pool.Acquire(ctx)
	if err != nil {
		return d, fmt.Errorf("clean: acquire connection: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&locked); err != nil {
		return d, fmt.Errorf("clean: take lock: %w", err)
	}
	if !locked {
		d.Skipped = true
		return d, nil
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey)
	}()
	now := time.Now()
	cutoffs := map[string]time.Time{
		"segpub_partition_destinations": now.Add(-c.cfg.DestinationRetention),
		"segpub_runs":                   now.Add(-c.cfg.RunRetention),
		"segpub_occurrences":            now.Add(-c.cfg.OccurrenceRetention),
	}
	counts := map[string]*int64{
		"segpub_partition_destinations": &d.Destinations,
		"segpub_runs":                   &d.Runs,
		"segpub_occurrences":            &d.Occurrences,
	}
	for _, st := range statements {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, st.table).Scan(&exists); err != nil {
			return d, fmt.Errorf("clean %s: %w", st.table, err)
		}
		if !exists {
			continue
		}
		for {
			tag, err := conn.Exec(ctx, st.sql, cutoffs[st.table], batchRows)
			if err != nil {
				return d, fmt.Errorf("clean %s: %w", st.table, err)
			}
			*counts[st.table] += tag.RowsAffected()
			if tag.RowsAffected() < batchRows {
				break
			}
		}
	}
	return d, nil
}

// Start cleans now and then every Interval until Stop.
func (c *Cleaner) Start(ctx context.Context) error {
	err := c.loop.Start(ctx, func(ctx context.Context) {
		lifecycle.Every(ctx, c.cfg.Interval, func(ctx context.Context) {
			d, err := c.Clean(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				c.log.Error("clean segpub tables", "err", err)
			case err == nil && !d.Skipped && d.Runs+d.Occurrences+d.Destinations > 0:
				c.log.Info("cleaned segpub tables", "runs", d.Runs, "occurrences", d.Occurrences, "destinations", d.Destinations)
			}
		})
	})
	if err != nil {
		return fmt.Errorf("cleaner: %w", err)
	}
	c.log.Info("cleaner started", "interval", c.cfg.Interval, "run_retention", c.cfg.RunRetention,
		"occurrence_retention", c.cfg.OccurrenceRetention, "destination_retention", c.cfg.DestinationRetention)
	return nil
}

// Stop stops cleaning and waits for a pass in progress, until ctx ends.
func (c *Cleaner) Stop(ctx context.Context) error { return c.loop.Stop(ctx) }

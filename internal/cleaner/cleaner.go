// Package cleaner deletes what segpub's own tables no longer need (which
// rows those are, internal/state says): finished
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
	"github.com/segpub/segpub/internal/state"
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

// Clean runs one pass, unless another process is cleaning.
func (c *Cleaner) Clean(ctx context.Context) (Deleted, error) {
	var d Deleted
	// The tables exist whichever process starts first.
	if err := state.Migrate(ctx, c.cfg.Pool); err != nil {
		return d, fmt.Errorf("clean: %w", err)
	}
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
	cutoffs := map[state.Expiring]time.Time{
		state.ExpiredDestinations: now.Add(-c.cfg.DestinationRetention),
		state.ExpiredRuns:         now.Add(-c.cfg.RunRetention),
		state.ExpiredOccurrences:  now.Add(-c.cfg.OccurrenceRetention),
	}
	counts := map[state.Expiring]*int64{
		state.ExpiredDestinations: &d.Destinations,
		state.ExpiredRuns:         &d.Runs,
		state.ExpiredOccurrences:  &d.Occurrences,
	}
	for _, k := range state.Expirings {
		for {
			n, err := state.DeleteExpired(ctx, conn, k, cutoffs[k], batchRows)
			if err != nil {
				return d, fmt.Errorf("clean: %w", err)
			}
			*counts[k] += n
			if n < batchRows {
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

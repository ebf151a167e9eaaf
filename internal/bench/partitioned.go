package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/partition"
	"github.com/segpub/segpub/internal/publish"
)

// The partitioned workloads run the push campaign as `segpub serve`
// partitions it, in 4 and in 8 ranges, twice back to back on the same
// database with no ANALYZE in between: each range's scan records its
// destinations (a COPY into segpub_partition_destinations), then the
// publish phase starts with each range's look-up of the destinations
// earlier ranges take (partition's Taken), the query whose plan issue 19 found
// quadratic on the statistics of earlier runs. The measurement is that
// phase advance: every range's look-up, one after the other. The second
// round finds the first round's rows in the table, as a scheduled
// campaign's next run does.
const (
	JobPartitioned4 = "partitioned-4"
	JobPartitioned8 = "partitioned-8"
)

// partitionedRounds is how many times each is run back to back.
const partitionedRounds = 2

var partitionedWorkloads = []struct {
	job   string
	parts int
}{{JobPartitioned4, 4}, {JobPartitioned8, 8}}

// runPartitioned measures the partitioned workloads cfg wants on project.
func runPartitioned(ctx context.Context, cfg Config, project string, users int64) ([]Measurement, error) {
	var out []Measurement
	var parts *partition.Coordinator
	runner, err := publish.New(publish.Config{Pool: cfg.Pool})
	if err != nil {
		return nil, err
	}
	stamp := time.Now().UTC().Format("20060102T150405")
	for _, wl := range partitionedWorkloads {
		if !cfg.wants(wl.job) {
			continue
		}
		if parts == nil {
			// The ledger's tables hold the partitions' records.
			if _, err = ledger.New(ctx, cfg.Pool); err != nil {
				return nil, err
			}
			if parts, err = partition.New(partition.Config{Audience: cfg.Pool, State: cfg.Pool, Engine: runner}); err != nil {
				return nil, err
			}
		}
		for round := 1; round <= partitionedRounds; round++ {
			id := fmt.Sprintf("bench-%s-%s-%s-%d", project, wl.job, stamp, round)
			m, err := partitionedRound(ctx, cfg, runner, parts, project, id, users, wl.parts)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", wl.job, round, err)
			}
			m.Job = wl.job
			m.Name = fmt.Sprintf("partitioned push, %d parts, run %d of %d: phase advance (%s)", wl.parts, round, partitionedRounds, m.Name)
			out = append(out, m)
			if cfg.Step != nil {
				cfg.Step(fmt.Sprintf("%s run %d %s", wl.job, round, project))
			}
		}
	}
	return out, nil
}

// partitionedRound scans every range of one partitioned run, recording its
// destinations as the scan phase does, then times each range's look-up of
// the destinations earlier ranges take.
func partitionedRound(ctx context.Context, cfg Config, runner *publish.Runner, pc *partition.Coordinator, project, id string, users int64, parts int) (Measurement, error) {
	j, err := job.Parse(PushAllJob(project))
	if err != nil {
		return Measurement{}, err
	}
	j.RequestID = id
	// Ranges of a fiftieth more than an exact share: the planner's estimate
	// of the users, which Bounds divides, is seldom exact, and a hair over
	// the share would add a range.
	bounds, _, err := pc.Bounds(ctx, j, int(users*51/50/int64(parts))+1)
	if err != nil {
		return Measurement{}, fmt.Errorf("plan ranges: %w", err)
	}
	if bounds == nil {
		return Measurement{}, fmt.Errorf("the campaign was not split in %d ranges", parts)
	}
	start := time.Now()
	for i := 0; i+1 < len(bounds); i++ {
		res, err := runner.RunWith(ctx, j, &publish.Range{From: bounds[i], Before: bounds[i+1], Collect: true}, nil, publish.Checkpoint{}, publish.Hooks{})
		if err != nil {
			return Measurement{}, fmt.Errorf("scan range %d: %w", i, err)
		}
		if err := pc.RecordScan(ctx, id, i, res.Destinations); err != nil {
			return Measurement{}, fmt.Errorf("scan range %d: %w", i, err)
		}
	}
	scan := time.Since(start)
	analyzed, err := analyzedSince(ctx, cfg.Pool, start)
	if err != nil {
		return Measurement{}, err
	}
	var total, slowest time.Duration
	var taken int
	for i := 0; i+1 < len(bounds); i++ {
		t0 := time.Now()
		fps, _, err := pc.Taken(ctx, id, i)
		if err != nil {
			return Measurement{}, err
		}
		d := time.Since(t0)
		total += d
		slowest = max(slowest, d)
		taken += len(fps)
	}
	var rows int64
	if err := cfg.Pool.QueryRow(ctx, `SELECT count(*) FROM segpub_partition_destinations`).Scan(&rows); err != nil {
		return Measurement{}, fmt.Errorf("count recorded destinations: %w", err)
	}
	note := fmt.Sprintf("%d ranges, slowest %.2f s; %d rows in the table, not analyzed since the scans", len(bounds)-1, slowest.Seconds(), rows)
	if analyzed {
		note = fmt.Sprintf("%d ranges, slowest %.2f s; %d rows in the table, autovacuum analyzed it after the scans", len(bounds)-1, slowest.Seconds(), rows)
	}
	cfg.Logger.Info("partitioned run", "request_id", id, "parts", len(bounds)-1, "scan_seconds", scan.Seconds(),
		"advance_seconds", total.Seconds(), "slowest_part_seconds", slowest.Seconds(), "taken", taken, "table_rows", rows, "analyzed_since_scan", analyzed)
	return Measurement{Name: note, Seconds: total.Seconds()}, nil
}

// analyzedSince reports whether segpub_partition_destinations was analyzed
// (by autovacuum or anyone) after t: the figure then is not the stale case.
func analyzedSince(ctx context.Context, pool *pgxpool.Pool, t time.Time) (bool, error) {
	var last *time.Time
	err := pool.QueryRow(ctx, `SELECT greatest(last_analyze, last_autoanalyze) FROM pg_stat_user_tables
WHERE relid = to_regclass('segpub_partition_destinations')`).Scan(&last)
	if err != nil {
		return false, fmt.Errorf("read the table's last analyze: %w", err)
	}
	return last != nil && last.After(t), nil
}

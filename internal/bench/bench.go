// Package bench measures segpub against the physical floor of reading an
// audience: PostgreSQL's own COPY of the same query, timed in the same run
// on the same data. Each segpub run is a child process (the segpub binary
// itself), so its wall time and peak RSS are its own.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// Config configures a benchmark run.
type Config struct {
	Pool        *pgxpool.Pool
	DatabaseURL string
	// Binary is the segpub executable to run (os.Executable by default).
	Binary    string
	ProjectID string
	Users     int
	// Runs is how many times each measurement is repeated (best kept).
	Runs   int
	OutDir string
	Logger *slog.Logger
	// Step, when set, is called after each measurement.
	Step func()
}

// Measurement is one timed step.
type Measurement struct {
	Name      string  `json:"name"`
	Seconds   float64 `json:"seconds"`
	Messages  int64   `json:"messages,omitempty"`
	PerSecond float64 `json:"messages_per_second,omitempty"`
	PeakRSSMB float64 `json:"peak_rss_mib,omitempty"`
	// VsCopy is Seconds divided by the COPY baseline's.
	VsCopy float64 `json:"vs_copy,omitempty"`
}

// Report is a benchmark's results.
type Report struct {
	ProjectID string        `json:"project_id"`
	Users     int64         `json:"users"`
	Devices   int64         `json:"devices"`
	CPUs      int           `json:"cpus"`
	Taken     time.Time     `json:"taken"`
	Results   []Measurement `json:"results"`
}

// PushAllJob is the benchmark's project-wide push campaign.
func PushAllJob(project string) []byte {
	return []byte(fmt.Sprintf(`{"version":1,"action":"publish","request_id":"bench-push-all","project_id":%q,
"scheduled_at":"2026-11-24T18:00:00+09:00","campaign":{"id":"bench_push","channel":"push_notification",
"audience":{"type":"all"},"message":{"title":"Hello","body":"A benchmark message."}}}`, project))
}

// Run seeds the project when it has no tables, then measures.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	log := cfg.Logger
	tables, err := schema.For(cfg.ProjectID)
	if err != nil {
		return nil, err
	}
	rep := &Report{ProjectID: cfg.ProjectID, CPUs: numCPU(), Taken: time.Now().UTC()}
	var exists bool
	if err := cfg.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, tables.User).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up project %s: %w", cfg.ProjectID, err)
	}
	if !exists {
		log.Info("seeding", "project", cfg.ProjectID, "users", cfg.Users)
		if _, err := seed.Run(ctx, cfg.Pool, seed.Config{ProjectID: cfg.ProjectID, Users: cfg.Users, Logger: log}); err != nil {
			return nil, err
		}
	}
	if err := cfg.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+tables.User+`), (SELECT count(*) FROM `+tables.Device+`)`).Scan(&rep.Users, &rep.Devices); err != nil {
		return nil, fmt.Errorf("count project %s: %w", cfg.ProjectID, err)
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	jobPath := filepath.Join(cfg.OutDir, "push-all.json")
	if err := os.WriteFile(jobPath, PushAllJob(cfg.ProjectID), 0o644); err != nil {
		return nil, err
	}
	j, err := job.Parse(PushAllJob(cfg.ProjectID))
	if err != nil {
		return nil, err
	}
	copySQL, err := literalQuery(j, tables)
	if err != nil {
		return nil, err
	}
	var copyBest float64
	for i := 0; i < cfg.Runs; i++ {
		sec, err := timeCopy(ctx, cfg.Pool, copySQL)
		if err != nil {
			return nil, err
		}
		log.Info("copy baseline", "run", i+1, "seconds", sec)
		if cfg.Step != nil {
			cfg.Step()
		}
		if copyBest == 0 || sec < copyBest {
			copyBest = sec
		}
	}
	rep.Results = append(rep.Results, Measurement{Name: "COPY (same user ⟕ device query) TO STDOUT", Seconds: copyBest, VsCopy: 1})
	steps := []struct{ name, command string }{
		{"segpub publish push, all users -> file://", "publish"},
		{"segpub size push, all users", "size"},
	}
	for _, s := range steps {
		var best Measurement
		for i := 0; i < cfg.Runs; i++ {
			m, err := runChild(ctx, cfg, s.command, jobPath)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			log.Info("measured", "step", s.name, "run", i+1, "seconds", m.Seconds, "peak_rss_mib", m.PeakRSSMB)
			if cfg.Step != nil {
				cfg.Step()
			}
			if best.Seconds == 0 || m.Seconds < best.Seconds {
				best = m
			}
		}
		best.Name = s.name
		best.VsCopy = best.Seconds / copyBest
		if s.command == "publish" {
			best.PerSecond = float64(best.Messages) / best.Seconds
		}
		rep.Results = append(rep.Results, best)
	}
	return rep, nil
}

// literalQuery compiles the job's audience query with its parameters
// written as literals: COPY takes no bind parameters. The benchmark's own
// job is the only input, and its only parameter is the platform list.
func literalQuery(j *job.Job, t schema.Tables) (string, error) {
	q, err := audience.Compile(audience.Spec{Tables: t, Channel: j.Campaign.Channel, Audience: j.Campaign.Audience,
		CampaignID: j.Campaign.ID, Reference: j.ScheduledAt, WithProperties: true})
	if err != nil {
		return "", err
	}
	sql := q.SQL
	for i := len(q.Args); i >= 1; i-- {
		arr, ok := q.Args[i-1].([]string)
		if !ok {
			return "", fmt.Errorf("benchmark query has a parameter of type %T", q.Args[i-1])
		}
		lits := make([]string, len(arr))
		for k, s := range arr {
			lits[k] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
		}
		sql = strings.ReplaceAll(sql, fmt.Sprintf("$%d", i), "ARRAY["+strings.Join(lits, ",")+"]")
	}
	return sql, nil
}

func timeCopy(ctx context.Context, pool *pgxpool.Pool, sql string) (float64, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	start := time.Now()
	if _, err := conn.Conn().PgConn().CopyTo(ctx, io.Discard, "COPY ("+sql+") TO STDOUT"); err != nil {
		return 0, fmt.Errorf("copy baseline: %w", err)
	}
	return time.Since(start).Seconds(), nil
}

// runChild runs `segpub <command> --job F` and reads its result, wall time
// and peak RSS.
func runChild(ctx context.Context, cfg Config, command, jobPath string) (Measurement, error) {
	outDir := filepath.Join(cfg.OutDir, "out")
	if err := os.RemoveAll(outDir); err != nil {
		return Measurement{}, err
	}
	args := []string{command, "--job", jobPath, "--database-url", cfg.DatabaseURL}
	if command == "publish" {
		args = append(args, "--out", "file://"+outDir+"/{channel}.ndjson")
	}
	cmd := exec.CommandContext(ctx, cfg.Binary, args...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = io.Discard
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return Measurement{}, fmt.Errorf("run %s: %w (%s)", command, err, stdout.String())
	}
	m := Measurement{Seconds: time.Since(start).Seconds()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.PeakRSSMB = float64(ru.Maxrss) / 1024 // Linux reports KiB
	}
	var res struct {
		Published int64 `json:"published"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		return m, fmt.Errorf("read %s result %q: %w", command, stdout.String(), err)
	}
	m.Messages = res.Published
	return m, os.RemoveAll(outDir)
}

package cli

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/segpub/segpub/internal/bench"
	"github.com/segpub/segpub/internal/demo"
	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/localpg"
	"github.com/segpub/segpub/internal/progress"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// runMigrate is `segpub migrate indexes --project P`.
func runMigrate(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] != "indexes" {
		fmt.Fprintln(env.Stderr, "usage: segpub migrate indexes --project P [--database-url URL]")
		return ExitFailure
	}
	fs := flag.NewFlagSet("migrate indexes", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	project := fs.String("project", "", "project id whose tables get the indexes")
	if ok, code := parseFlags(fs, args[1:], env); !ok {
		return code
	}
	tables, err := schema.For(*project)
	if err != nil {
		return fail(env, "migrate", fmt.Errorf("--project: %w", err))
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "migrate", err)
	}
	defer pool.Close()
	bar := progress.New(progress.Config{Label: "indexes", Total: int64(len(indexes.For(tables))), Out: env.Stderr})
	out, err := indexes.Create(ctx, pool, tables, c.logger(env), func() { bar.Add(1) })
	bar.Done()
	printJSON(env.Stdout, map[string]any{"project_id": *project, "indexes": out})
	if err != nil {
		return fail(env, "migrate", err)
	}
	return ExitOK
}

// runSeed is `segpub seed --project P --users N`.
func runSeed(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	project := fs.String("project", "", "project id to create and fill")
	users := fs.Int("users", 10000, "number of users")
	seedN := fs.Int64("seed", 1, "random seed: the same seed gives the same data")
	replace := fs.Bool("replace", false, "drop the project's tables first if they exist")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	if _, err := schema.For(*project); err != nil {
		return fail(env, "seed", fmt.Errorf("--project: %w", err))
	}
	if *users < 0 {
		return fail(env, "seed", fmt.Errorf("--users: must not be negative, got %d", *users))
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "seed", err)
	}
	defer pool.Close()
	cfg := seed.Config{ProjectID: *project, Users: *users, Seed: *seedN, Logger: c.logger(env), Replace: *replace}
	if f, ok := env.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cfg.Progress = f
	}
	stats, err := seed.Run(ctx, pool, cfg)
	if err != nil {
		return fail(env, "seed", err)
	}
	printJSON(env.Stdout, map[string]any{
		"project_id": *project, "users": stats.Users, "devices": stats.Devices, "events": stats.Events,
		"deliveries": stats.Deliveries, "variants": stats.Variants, "duration_ms": stats.Duration.Milliseconds(),
	})
	return ExitOK
}

// runBench is `segpub bench`.
func runBench(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	project := fs.String("project", "bench1m", "project to measure (seeded when it has no tables)")
	users := fs.Int("users", 1_000_000, "users to seed when the project has no tables")
	runs := fs.Int("runs", 3, "repetitions of each measurement; the best is kept")
	out := fs.String("out", os.TempDir()+"/segpub-bench", "working directory")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	if *runs < 1 {
		return fail(env, "bench", fmt.Errorf("--runs: must be at least 1"))
	}
	self, err := os.Executable()
	if err != nil {
		return fail(env, "bench", err)
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "bench", err)
	}
	defer pool.Close()
	bar := progress.New(progress.Config{Label: "measurements", Total: int64(*runs) * 3, Out: env.Stderr})
	rep, err := bench.Run(ctx, bench.Config{Pool: pool, DatabaseURL: c.databaseURL, Binary: self, ProjectID: *project,
		Users: *users, Runs: *runs, OutDir: *out, Logger: c.logger(env), Step: func() { bar.Add(1) }})
	bar.Done()
	if err != nil {
		return fail(env, "bench", err)
	}
	if *asJSON {
		printJSON(env.Stdout, rep)
		return ExitOK
	}
	fmt.Fprintf(env.Stdout, "project %s: %d users, %d devices; %d CPUs; %s\n\n", rep.ProjectID, rep.Users, rep.Devices, rep.CPUs, rep.Taken.Format(time.RFC3339))
	fmt.Fprintf(env.Stdout, "| step | seconds | messages | messages/s | peak RSS MiB | vs COPY |\n|---|---:|---:|---:|---:|---:|\n")
	for _, m := range rep.Results {
		fmt.Fprintf(env.Stdout, "| %s | %.2f | %d | %.0f | %.0f | %.2fx |\n", m.Name, m.Seconds, m.Messages, m.PerSecond, m.PeakRSSMB, m.VsCopy)
	}
	return ExitOK
}

// runDemo is `segpub demo`.
func runDemo(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	users := fs.Int("users", 100_000, "users to seed")
	dataDir := fs.String("data-dir", envOr(env, "SEGPUB_DATA_DIR", "segpub-data"), "where the demo keeps its JetStream, CSV and (if started) PostgreSQL")
	asJSON := fs.Bool("json", false, "print the runs as JSON instead of a table")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	log := c.logger(env)
	if c.databaseURL == "" {
		c.databaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	pool, err := c.pool(ctx)
	if err != nil {
		log.Info("no PostgreSQL answers; starting a local one", "reason", err.Error())
		url, lerr := localpg.Ensure(ctx, filepath.Join(*dataDir, "postgres"), log)
		if lerr != nil {
			return fail(env, "demo", lerr)
		}
		c.databaseURL = url
		if pool, err = c.pool(ctx); err != nil {
			return fail(env, "demo", err)
		}
	}
	defer pool.Close()
	cfg := demo.Config{Pool: pool, Users: *users, DataDir: *dataDir, Logger: log, Out: env.Stdout}
	if *asJSON {
		cfg.Out, cfg.JSON = env.Stderr, env.Stdout
	}
	if err := demo.Run(ctx, cfg); err != nil {
		return fail(env, "demo", err)
	}
	return ExitOK
}

// runHealthcheck is `segpub healthcheck --url U`: the container image has no
// curl, so the binary checks its own /healthz.
func runHealthcheck(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:9090/healthz", "URL that must answer 200")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fail(env, "healthcheck", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fail(env, "healthcheck", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(env, "healthcheck", fmt.Errorf("%s answered %s", *url, resp.Status))
	}
	return ExitOK
}

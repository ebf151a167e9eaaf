package cli

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/segpub/segpub/internal/bench"
	"github.com/segpub/segpub/internal/demo"
	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/job"
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
	if len(args) > 0 && args[0] == "baseline" {
		return runBaseline(ctx, env, args[1:])
	}
	if len(args) > 0 && args[0] == "indexes" {
		return runIndexStudy(ctx, env, args[1:])
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	sizes := fs.String("sizes", "1m", "comma-separated audience sizes (1m, 3m, 10m, 250k…); each is project bench<size>, seeded when it has no tables")
	project := fs.String("project", "", "measure this project instead of --sizes (seeded with --users when it has no tables)")
	users := fs.Int("users", 1_000_000, "users to seed --project with when it has no tables")
	runs := fs.Int("runs", 1, "repetitions of each measurement; the best is kept")
	baselineMax := fs.Int64("baseline-max-users", 1_000_000, "run the seed pattern on projects of at most this many users (its OFFSET paging is quadratic); 0: never")
	only := fs.String("only", "", "comma-separated workloads to measure (default: all): "+strings.Join(bench.Workloads(), ", "))
	out := fs.String("out", os.TempDir()+"/segpub-bench", "working directory")
	plots := fs.String("plots", "", "directory to write throughput.svg and memory.svg to")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	sqsRTT := fs.Duration("sqs-rtt", 20*time.Millisecond, "round-trip time of the SQS workload's built-in endpoint (in-region SendMessageBatch takes about 20ms); 0 leaves the workload out")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	if *sqsRTT < 0 || *sqsRTT > 10*time.Second {
		return fail(env, "bench", fmt.Errorf("--sqs-rtt: %v out of range 0..10s", *sqsRTT))
	}
	if *runs < 1 {
		return fail(env, "bench", fmt.Errorf("--runs: must be at least 1"))
	}
	var projects []bench.Project
	if *project != "" {
		if err := schema.ValidateProjectID(*project); err != nil {
			return fail(env, "bench", fmt.Errorf("--project: %w", err))
		}
		projects = []bench.Project{{ID: *project, Users: *users}}
	} else {
		for _, s := range strings.Split(*sizes, ",") {
			n, err := parseSize(strings.TrimSpace(s))
			if err != nil {
				return fail(env, "bench", fmt.Errorf("--sizes: %w", err))
			}
			projects = append(projects, bench.Project{ID: "bench" + strings.ToLower(strings.TrimSpace(s)), Users: n})
		}
	}
	var onlyList []string
	if *only != "" {
		known := map[string]bool{}
		for _, w := range bench.Workloads() {
			known[w] = true
		}
		for _, o := range strings.Split(*only, ",") {
			if o = strings.TrimSpace(o); !known[o] {
				return fail(env, "bench", fmt.Errorf("--only: unknown workload %q", o))
			}
			onlyList = append(onlyList, o)
		}
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
	cfg := bench.Config{Pool: pool, DatabaseURL: c.databaseURL, Binary: self, Projects: projects,
		Runs: *runs, BaselineMaxUsers: *baselineMax, Only: onlyList, SQSRTT: *sqsRTT, OutDir: *out, Logger: c.logger(env)}
	bar := progress.New(progress.Config{Label: "measurements", Total: int64(bench.Steps(cfg)), Out: env.Stderr})
	cfg.Step = func(string) { bar.Add(1) }
	rep, err := bench.Run(ctx, cfg)
	bar.Done()
	if err != nil {
		return fail(env, "bench", err)
	}
	if *plots != "" {
		tp, mem := rep.Plots()
		if err := os.MkdirAll(*plots, 0o755); err != nil {
			return fail(env, "bench", fmt.Errorf("--plots: %w", err))
		}
		for name, data := range map[string][]byte{"throughput.svg": tp, "memory.svg": mem} {
			if err := os.WriteFile(filepath.Join(*plots, name), data, 0o644); err != nil {
				return fail(env, "bench", fmt.Errorf("--plots: %w", err))
			}
		}
	}
	if *asJSON {
		printJSON(env.Stdout, rep)
		return ExitOK
	}
	fmt.Fprint(env.Stdout, rep.Markdown())
	return ExitOK
}

// parseSize reads 1m, 3m, 10m, 250k or a plain number of users.
func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(strings.ToLower(s), "m"):
		mult, s = 1_000_000, s[:len(s)-1]
	case strings.HasSuffix(strings.ToLower(s), "k"):
		mult, s = 1_000, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number, optionally with k or m", s)
	}
	return n * mult, nil
}

// runIndexStudy is `segpub bench indexes`.
func runIndexStudy(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("bench indexes", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	project := fs.String("project", "bench1m", "project to study (it must exist; its secondary indexes are dropped and rebuilt)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	if err := schema.ValidateProjectID(*project); err != nil {
		return fail(env, "bench indexes", fmt.Errorf("--project: %w", err))
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "bench indexes", err)
	}
	defer pool.Close()
	res, err := bench.IndexStudy(ctx, pool, *project, c.logger(env))
	if err != nil {
		return fail(env, "bench indexes", err)
	}
	if *asJSON {
		printJSON(env.Stdout, res)
		return ExitOK
	}
	fmt.Fprint(env.Stdout, bench.IndexMarkdown(res))
	return ExitOK
}

// runBaseline is `segpub bench baseline`: the seed pattern, run by the
// benchmark as a child process so its time and memory are its own.
func runBaseline(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("bench baseline", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	jobPath := fs.String("job", "", "job file")
	out := fs.String("out", "", "file to write messages to")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	if *jobPath == "" || *out == "" {
		return fail(env, "bench baseline", fmt.Errorf("--job and --out are required"))
	}
	data, err := c.readJob(*jobPath, env.Stdin)
	if err != nil {
		return fail(env, "bench baseline", err)
	}
	j, err := job.Parse(data)
	if err != nil {
		return fail(env, "bench baseline", err)
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "bench baseline", err)
	}
	defer pool.Close()
	f, err := os.Create(*out)
	if err != nil {
		return fail(env, "bench baseline", err)
	}
	defer f.Close()
	n, err := bench.Baseline(ctx, pool, j, f)
	if err != nil {
		return fail(env, "bench baseline", err)
	}
	if err := f.Close(); err != nil {
		return fail(env, "bench baseline", err)
	}
	printJSON(env.Stdout, map[string]int64{"published": n})
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

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/segpub/segpub/internal/bench"
	"github.com/segpub/segpub/internal/console"
	"github.com/segpub/segpub/internal/demo"
	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/localpg"
	"github.com/segpub/segpub/internal/pgdb"
	"github.com/segpub/segpub/internal/progress"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

func (a *App) migrateCmd() *cobra.Command {
	cmd, d := a.newCmd("indexes --project P", "create the secondary indexes the audience queries use")
	var c common
	var project string
	d.String(&project, "project", "", "", "project id whose tables get the indexes")
	c.registerDB(d)
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runMigrate(ctx, a.env, &c, &project) })
	return a.group("migrate", "create the secondary indexes the audience queries use (migrate indexes)", cmd)
}

// runMigrate is `segpub migrate indexes --project P`.
func runMigrate(ctx context.Context, env *Env, c *common, project *string) int {
	tables, err := schema.For(*project)
	if err != nil {
		return fail(env, "migrate", fmt.Errorf("--project: %w", err))
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "migrate", err)
	}
	defer pool.Close()
	bar := progress.New(progress.Config{Label: "indexes", Total: int64(len(indexes.For(tables))), Out: env.progressOut()})
	out, err := indexes.Create(ctx, pool, tables, c.logger(env), func() { bar.Add(1) })
	bar.Done()
	printJSON(env.Stdout, map[string]any{"project_id": *project, "indexes": out})
	if err != nil {
		return fail(env, "migrate", err)
	}
	return ExitOK
}

// seedOptions are the settings of `segpub seed`.
type seedOptions struct {
	common
	project   string
	users     int
	seed      int64
	replace   bool
	targeting bool
	generator string
}

// DefaultSeedUsers is how many users seed makes without --users.
const DefaultSeedUsers = 10_000

func (a *App) seedCmd() *cobra.Command {
	cmd, d := a.newCmd("seed --project P", "create a project's tables and fill them with synthetic data")
	var o seedOptions
	d.String(&o.project, "project", "", "", "project id to create and fill")
	d.Int(&o.users, "users", "", DefaultSeedUsers, "number of users")
	d.Int64(&o.seed, "seed", "", 1, "random seed: the same seed gives the same data")
	d.fs.BoolVar(&o.replace, "replace", false, "drop the project's tables first if they exist")
	d.fs.BoolVar(&o.targeting, "targeting", false, "also write the timezone and language properties delivery targeting reads")
	d.String(&o.generator, "generator", "", string(seed.Uniform), "shape of the data: "+strings.Join(seed.Generators(), ", ")+" (docs/benchmarks.md)")
	o.common.registerDB(d)
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runSeed(ctx, a.env, &o) })
	return cmd
}

// runSeed is `segpub seed --project P --users N`.
func runSeed(ctx context.Context, env *Env, o *seedOptions) int {
	c, project, users, seedN, replace := &o.common, &o.project, &o.users, &o.seed, &o.replace
	if _, err := schema.For(*project); err != nil {
		return fail(env, "seed", fmt.Errorf("--project: %w", err))
	}
	if *users < 0 {
		return fail(env, "seed", fmt.Errorf("--users: must not be negative, got %d", *users))
	}
	gen, err := seed.ParseGenerator(o.generator)
	if err != nil {
		return fail(env, "seed", fmt.Errorf("--generator: %w", err))
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "seed", err)
	}
	defer pool.Close()
	cfg := seed.Config{ProjectID: *project, Users: *users, Seed: *seedN, Logger: c.logger(env), Replace: *replace, Targeting: o.targeting, Generator: gen}
	if env.term != nil {
		cfg.Progress = env.term
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

// benchOptions are the settings of `segpub bench`.
type benchOptions struct {
	common
	sizes, project, only, out, plots string
	results, generator, profileDir   string
	users, runs                      int
	baselineMax                      int64
	asJSON, keysOnly, targeting      bool
	sqsRTT                           time.Duration
}

func (a *App) benchCmd() *cobra.Command {
	cmd, d := a.newCmd("bench", "measure publish and size against PostgreSQL's COPY of the same query")
	var o benchOptions
	d.String(&o.sizes, "sizes", "", "1m", "comma-separated audience sizes (1m, 3m, 10m, 250k…); each is project bench<size>, seeded when it has no tables")
	d.String(&o.project, "project", "", "", "measure this project instead of --sizes (seeded with --users when it has no tables)")
	d.Int(&o.users, "users", "", 1_000_000, "users to seed --project with when it has no tables")
	d.Int(&o.runs, "runs", "", 1, "repetitions of each measurement; the best is kept")
	d.Int64(&o.baselineMax, "baseline-max-users", "", 1_000_000, "run the seed pattern on projects of at most this many users (its OFFSET paging is quadratic); 0: never")
	d.String(&o.only, "only", "", "", "comma-separated workloads to measure; empty: all of "+strings.Join(slices.DeleteFunc(bench.Workloads(), bench.OnlyWhenNamed), ", ")+
		"; "+bench.JobServeSQS+" runs only when named")
	d.String(&o.out, "out", "", filepath.Join(os.TempDir(), "segpub-bench"), "working directory")
	d.String(&o.plots, "plots", "", "", "directory to write throughput.svg and memory.svg to")
	d.String(&o.results, "results", "", "", "also write the report as JSON to this file, with its date and machine (make bench: docs/benchmarks.json, which segpub cost reads)")
	d.fs.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	d.String(&o.profileDir, "cpuprofile-dir", "", "", "write a CPU profile of every publish run to this directory (go tool pprof reads them)")
	d.String(&o.generator, "generator", "", string(seed.Uniform), "shape of the data seeded into projects that have no tables: "+strings.Join(seed.Generators(), ", "))
	d.fs.BoolVar(&o.keysOnly, "keys-only", false, "measure the tables with only their keys: do not create segpub's indexes first (existing ones stay)")
	d.fs.BoolVar(&o.targeting, "targeting", false, "seed new projects with the timezone and language properties the push-all-delivery workload reads")
	d.Duration(&o.sqsRTT, "sqs-rtt", "", 20*time.Millisecond, "round-trip time of the SQS workload's built-in endpoint (in-region SendMessageBatch takes about 20ms); 0 leaves the workload out")
	o.common.registerDB(d)
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runBench(ctx, a.env, &o) })
	cmd.AddCommand(a.benchBaselineCmd(), a.benchIndexesCmd())
	return cmd
}

// runBench is `segpub bench`.
func runBench(ctx context.Context, env *Env, o *benchOptions) int {
	c, sizes, project, users, runs, baselineMax, only, out, plots, asJSON := &o.common, &o.sizes, &o.project, &o.users, &o.runs, &o.baselineMax, &o.only, &o.out, &o.plots, &o.asJSON
	if *runs < 1 {
		return fail(env, "bench", fmt.Errorf("--runs: must be at least 1"))
	}
	if o.sqsRTT < 0 || o.sqsRTT > 10*time.Second {
		return fail(env, "bench", fmt.Errorf("--sqs-rtt: %v out of range 0..10s", o.sqsRTT))
	}
	gen, err := seed.ParseGenerator(o.generator)
	if err != nil {
		return fail(env, "bench", fmt.Errorf("--generator: %w", err))
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
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return fail(env, "bench", fmt.Errorf("--cpuprofile-dir: %w", err))
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
	// The COPY floors run at the server's session settings, not segpub's.
	fc := *c
	fc.workMem = ""
	floorPool, err := fc.pool(ctx)
	if err != nil {
		return fail(env, "bench", err)
	}
	defer floorPool.Close()
	cfg := bench.Config{Pool: pool, FloorPool: floorPool, DatabaseURL: c.databaseURL, Binary: self, Projects: projects,
		Runs: *runs, BaselineMaxUsers: *baselineMax, Only: onlyList, SQSRTT: o.sqsRTT, KeysOnly: o.keysOnly, Targeting: o.targeting, Generator: gen, OutDir: *out, ProfileDir: o.profileDir, Logger: c.logger(env)}
	bar := progress.New(progress.Config{Label: "measurements", Total: int64(bench.Steps(cfg)), Out: env.progressOut()})
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
	if o.results != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fail(env, "bench", err)
		}
		if err := os.WriteFile(o.results, append(data, '\n'), 0o644); err != nil {
			return fail(env, "bench", fmt.Errorf("--results: %w", err))
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

func (a *App) benchIndexesCmd() *cobra.Command {
	cmd, d := a.newCmd("indexes", "measure each query with and without candidate indexes")
	var c common
	var project string
	var asJSON bool
	d.String(&project, "project", "", "bench1m", "project to study (it must exist; its secondary indexes are dropped and rebuilt)")
	d.fs.BoolVar(&asJSON, "json", false, "print the results as JSON")
	c.registerDB(d)
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runIndexStudy(ctx, a.env, &c, &project, &asJSON) })
	return cmd
}

// runIndexStudy is `segpub bench indexes`.
func runIndexStudy(ctx context.Context, env *Env, c *common, project *string, asJSON *bool) int {
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

func (a *App) benchBaselineCmd() *cobra.Command {
	cmd, d := a.newCmd("baseline --job FILE --out FILE", "run a job the seed's way (the benchmark's child process)")
	var c common
	var jobPath, out string
	d.String(&jobPath, "job", "", "", "job file")
	d.String(&out, "out", "", "", "file to write messages to")
	c.register(d)
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runBaseline(ctx, a.env, &c, &jobPath, &out) })
	return cmd
}

// runBaseline is `segpub bench baseline`: the seed pattern, run by the
// benchmark as a child process so its time and memory are its own.
func runBaseline(ctx context.Context, env *Env, c *common, jobPath, out *string) int {
	if *jobPath == "" || *out == "" {
		return usageError(env, "bench baseline", "--job and --out are required")
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

func (a *App) demoCmd() *cobra.Command {
	cmd, d := a.newCmd("demo", "run the whole service on this machine: seed, schedule, publish, summarize")
	var c common
	var o demoOptions
	var cs consoleSettings
	d.Int(&o.users, "users", "", 100_000, "users to seed")
	d.String(&o.project, "project", "", "demo", "project to seed and publish from")
	d.fs.BoolVar(&o.replace, "replace", false, "reseed the project even if it holds another number of users")
	d.String(&o.dataDir, "data-dir", "SEGPUB_DATA_DIR", DefaultDataDir, "where the demo keeps its JetStream, CSV and (if started) PostgreSQL")
	d.fs.BoolVar(&o.asJSON, "json", false, "print the runs as JSON instead of a table")
	c.registerDB(d)
	cs.register(d, DefaultConsoleAddr)
	d.fs.Lookup("console-addr").Usage = "address of the operator console while the demo runs; empty: none ($SEGPUB_CONSOLE_ADDR)"
	d.fs.Lookup("database-url").Usage = "database URL; empty: database " + pgdb.Demo + " (created) on the PostgreSQL at 127.0.0.1:5432, or on one started here when none answers ($SEGPUB_DATABASE_URL)"
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int {
		return runDemo(ctx, a.env, &c, &cs, &o)
	})
	return cmd
}

type demoOptions struct {
	users   int
	project string
	replace bool
	dataDir string
	asJSON  bool
}

// defaultServerURL is the local server the demo looks for first.
const defaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// runDemo is `segpub demo`.
func runDemo(ctx context.Context, env *Env, c *common, cs *consoleSettings, o *demoOptions) int {
	log := c.logger(env)
	where := ""
	// Without a URL the demo keeps to a database of its own, on the server
	// it finds or on one it starts: nothing lands in the server's postgres
	// database, and its runs stay out of the tests' ledger.
	if c.databaseURL == "" {
		url, err := pgdb.Ensure(ctx, defaultServerURL, pgdb.Demo)
		if err != nil {
			log.Info("no PostgreSQL answers; starting a local one", "reason", err.Error())
			where = ", started here in " + filepath.Join(o.dataDir, "postgres")
			server, lerr := localpg.Ensure(ctx, filepath.Join(o.dataDir, "postgres"), log)
			if lerr != nil {
				return fail(env, "demo", lerr)
			}
			if url, err = pgdb.Ensure(ctx, server, pgdb.Demo); err != nil {
				return fail(env, "demo", err)
			}
		}
		c.databaseURL = url
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "demo", err)
	}
	defer pool.Close()
	con := demo.Console{Addr: cs.addr, Token: cs.token, Keep: env.interactive(),
		Databases: []console.Database{{Name: "database", Redacted: redactDB(c.databaseURL)}}}
	if cs.addr != "" {
		cc, err := cs.config(log)
		if err != nil {
			return fail(env, "demo", err)
		}
		con.Hosts, con.TrustProxy, con.SessionLifetime = cc.Hosts, cc.TrustProxy, cc.SessionLifetime
	}
	// On a terminal the console stays up after the summary, until Ctrl-C;
	// in a script the demo ends as it always did.
	cfg := demo.Config{Pool: pool, ProjectID: o.project, Users: o.users, Replace: o.replace, DataDir: o.dataDir, Logger: log, Out: env.stdout(), Console: con}
	if o.asJSON {
		cfg.Out, cfg.JSON = env.progressOut(), env.Stdout
	}
	// Say which database gets the demo's tables before anything is written.
	fmt.Fprintf(cfg.Out, "== database %s%s\n", redactDB(c.databaseURL), where)
	if err := demo.Run(ctx, cfg); err != nil {
		return fail(env, "demo", err)
	}
	return ExitOK
}

func (a *App) healthcheckCmd() *cobra.Command {
	cmd, d := a.newCmd("healthcheck", "exit 0 when the service's /healthz answers (for container health checks)")
	var url string
	d.String(&url, "url", "", "http://127.0.0.1:9090/healthz", "URL that must answer 200")
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runHealthcheck(ctx, a.env, &url) })
	return cmd
}

// runHealthcheck is `segpub healthcheck --url U`: the container image has no
// curl, so the binary checks its own /healthz.
func runHealthcheck(ctx context.Context, env *Env, url *string) int {
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

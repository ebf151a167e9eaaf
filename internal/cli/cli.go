// Package cli is segpub's command line. main is a thin wrapper around Main,
// so every command can be run and checked from tests.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/pgtimeout"
)

// Exit codes (CONTRACT.md section 8).
const (
	ExitOK       = 0
	ExitFailure  = 1
	ExitRejected = 2
)

// Env is what a command sees of its process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string

	// bad collects environment settings that did not parse; a command
	// refuses to run with any.
	bad []string
}

type command struct {
	summary string
	run     func(ctx context.Context, env *Env, args []string) int
}

func commands() map[string]command {
	return map[string]command{
		"size":        {"print the audience size and skip reasons of a job", runSize},
		"publish":     {"run a job, publishing its channel messages to --out", runPublish},
		"seed":        {"create a project's tables and fill them with synthetic data", runSeed},
		"migrate":     {"create the secondary indexes the audience queries use", runMigrate},
		"bench":       {"measure publish and size against PostgreSQL's COPY of the same query", runBench},
		"serve":       {"run the service: take jobs from the job queue and publish them", runServe},
		"submit":      {"put a job on the job queue (as a claim check when it is too large)", runSubmit},
		"status":      {"show a run's status, progress and result by request_id", runStatus},
		"scheduler":   {"run the scheduler alone: enqueue due campaign occurrences", runScheduler},
		"campaign":    {"manage scheduled campaigns: add, list, pause, resume, end", runCampaign},
		"healthcheck": {"exit 0 when the service's /healthz answers (for container health checks)", runHealthcheck},
		"explain":     {"show what a job would do: counts, sample messages, SQL and plan, missing indexes", runExplain},
		"why":         {"show what a job does to one user: each condition, the variant, the skip reason or message", runWhy},
		"diff":        {"compare two channel outputs by destination (old publisher vs segpub)", runDiff},
		"cost":        {"monthly cost of a workload on Fargate, from measured throughput, beside Glue and EMR", runCost},
		"demo":        {"run the whole service on this machine: seed, schedule, publish, summarize", runDemo},
	}
}

// Main runs one command and returns the process exit code.
func Main(ctx context.Context, args []string, env *Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr, cmds)
		if len(args) == 0 {
			return ExitFailure
		}
		return ExitOK
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "segpub: unknown command %q\n", args[0])
		usage(env.Stderr, cmds)
		return ExitFailure
	}
	return cmd.run(ctx, env, args[1:])
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: segpub <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'segpub <command> -h' for a command's flags.")
}

// common holds the flags every database command shares.
type common struct {
	databaseURL string
	verbose     bool
	dbStall     time.Duration
	// stmtTimeout is the statement_timeout of the pool's connections: the
	// audience's, or segpub's own tables' (settings.statePool).
	stmtTimeout   time.Duration
	stmtSetting   string
	checkInterval time.Duration
}

func (c *common) register(fs *flag.FlagSet, env *Env) {
	fs.StringVar(&c.databaseURL, "database-url", env.Getenv("SEGPUB_DATABASE_URL"), "audience database URL (default $SEGPUB_DATABASE_URL)")
	fs.BoolVar(&c.verbose, "v", false, "log debug detail")
	fs.DurationVar(&c.dbStall, "db-stall-timeout", envDuration(env, "SEGPUB_DB_STALL_TIMEOUT", 10*time.Minute),
		"close a database connection that sends nothing for this long while a reply is due; 0: never ($SEGPUB_DB_STALL_TIMEOUT)")
	fs.DurationVar(&c.stmtTimeout, "statement-timeout", envDuration(env, "SEGPUB_STATEMENT_TIMEOUT", pgtimeout.DefaultStatementTimeout),
		"the server ends an audience statement that runs longer; 0: never ($SEGPUB_STATEMENT_TIMEOUT)")
	c.stmtSetting = "--statement-timeout ($SEGPUB_STATEMENT_TIMEOUT)"
	fs.DurationVar(&c.checkInterval, "db-check-interval", envDuration(env, "SEGPUB_DB_CHECK_INTERVAL", pgtimeout.DefaultCheckInterval),
		"how often the server checks that segpub is still connected while it runs a statement (PostgreSQL 14+); 0: never ($SEGPUB_DB_CHECK_INTERVAL)")
}

func (c *common) logger(env *Env) *slog.Logger {
	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
}

func (c *common) pool(ctx context.Context) (*pgxpool.Pool, error) {
	if c.databaseURL == "" {
		return nil, errors.New("no database: pass --database-url or set SEGPUB_DATABASE_URL")
	}
	cfg, err := pgxpool.ParseConfig(c.databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "segpub"
	}
	// segpub's queries stream whole tables once; JIT compiling them costs
	// more than it saves. A URL that sets jit keeps its choice.
	if _, ok := cfg.ConnConfig.RuntimeParams["jit"]; !ok {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	if c.dbStall < 0 {
		return nil, fmt.Errorf("--db-stall-timeout ($SEGPUB_DB_STALL_TIMEOUT): %s is negative", c.dbStall)
	}
	pgtimeout.Apply(&cfg.ConnConfig.Config, c.dbStall)
	if err := pgtimeout.CheckSetting(c.stmtTimeout); err != nil {
		return nil, fmt.Errorf("%s: %w", c.stmtSetting, err)
	}
	if err := pgtimeout.CheckSetting(c.checkInterval); err != nil {
		return nil, fmt.Errorf("--db-check-interval ($SEGPUB_DB_CHECK_INTERVAL): %w", err)
	}
	if err := (pgtimeout.Session{StatementTimeout: c.stmtTimeout, CheckInterval: c.checkInterval}).Apply(&cfg.ConnConfig.Config); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s: %w", redact(c.databaseURL), err)
	}
	return pool, nil
}

// redact hides a URL's password in messages.
func redact(u string) string {
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
}

func parseFlags(fs *flag.FlagSet, args []string, env *Env) (ok bool, code int) {
	fs.SetOutput(env.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, ExitOK
		}
		return false, ExitFailure
	}
	if badEnv(fs, env) {
		return false, ExitFailure
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "segpub %s: unexpected arguments: %s\n", fs.Name(), strings.Join(fs.Args(), " "))
		return false, ExitFailure
	}
	return true, 0
}

// badEnv reports the environment settings that did not parse, if any.
func badEnv(fs *flag.FlagSet, env *Env) bool {
	if len(env.bad) == 0 {
		return false
	}
	fmt.Fprintf(env.Stderr, "segpub %s: %s\n", fs.Name(), strings.Join(env.bad, "; "))
	return true
}

func printJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Results are plain structs; this cannot fail.
		panic(err)
	}
	fmt.Fprintf(w, "%s\n", b)
}

func fail(env *Env, name string, err error) int {
	fmt.Fprintf(env.Stderr, "segpub %s: %v\n", name, err)
	return ExitFailure
}

// Package cli is segpub's command line. main is a thin wrapper around Main,
// so every command can be run and checked from tests.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/segpub/segpub/internal/endpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/pgtimeout"
	"github.com/segpub/segpub/internal/progress"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/redact"
)

// Exit codes (docs/result.md).
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

	// term is standard error's display when it is a terminal: logs and
	// the progress line share it without mixing.
	term *progress.Terminal
}

// logOut is where log lines go.
func (e *Env) logOut() io.Writer {
	if e.term != nil {
		return e.term
	}
	return e.Stderr
}

// progressOut is where progress goes: the terminal's display, or standard
// error, where the reporters log lines instead.
func (e *Env) progressOut() io.Writer { return e.logOut() }

// stdout is standard output, kept out of the progress line's way when both
// are the terminal.
func (e *Env) stdout() io.Writer {
	if e.term != nil && isTerminal(e.Stdout) {
		return e.term.Above(e.Stdout)
	}
	return e.Stdout
}

// exitCode ends a command with a code whose message the command printed.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// App is segpub's command tree for one process: main builds one and runs
// it; tests do the same with their own Env.
type App struct {
	env *Env
}

// New returns the command line of a process with the given environment.
func New(env *Env) *App {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.term == nil && isTerminal(env.Stderr) {
		env.term = progress.NewTerminal(env.Stderr)
	}
	return &App{env: env}
}

// Main runs one command line and returns the process exit code.
func Main(ctx context.Context, args []string, env *Env) int {
	return New(env).Run(ctx, args)
}

// Run runs one command line and returns the process exit code: 0 ok, 2 a
// rejected job, 1 anything else, usage errors included (an unknown command
// or flag, a missing or extra argument). -h and --help exit 0.
func (a *App) Run(ctx context.Context, args []string) int {
	root := a.Command()
	root.SetArgs(longFlagsWithOneDash(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	// A usage error found by the parser: say it once, point at the help.
	fmt.Fprintf(a.env.Stderr, "%s: %v\nRun '%s -h' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
	return ExitFailure
}

// usageError reports a usage error a command finds after parsing (a
// required flag missing) as the parser reports its own: once, with the
// pointer to the command's help.
func usageError(env *Env, name, msg string) int {
	fmt.Fprintf(env.Stderr, "segpub %s: %s\nRun 'segpub %s -h' for usage.\n", name, msg, name)
	return ExitFailure
}

// suggestFlag adds "Did you mean this?" to an unknown flag's error, as
// cobra does for mistyped commands: the command's flags within two edits
// of the one given, or starting with it.
func suggestFlag(cmd *cobra.Command, err error) error {
	msg := err.Error()
	var given string
	switch {
	case strings.HasPrefix(msg, "unknown flag: --"):
		given = strings.TrimPrefix(msg, "unknown flag: --")
	case strings.HasPrefix(msg, "unknown shorthand flag: ") && strings.Contains(msg, " in -"):
		// -jbo: a long flag written with one dash and mistyped.
		given = msg[strings.LastIndex(msg, " in -")+len(" in -"):]
	default:
		return err
	}
	given, _, _ = strings.Cut(given, "=")
	var near []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		if editDistance(given, f.Name) <= 2 || (len(given) >= 3 && strings.HasPrefix(f.Name, given)) {
			near = append(near, "--"+f.Name)
		}
	})
	if len(near) == 0 {
		return err
	}
	return fmt.Errorf("%w\n\nDid you mean this?\n\t%s", err, strings.Join(near, "\n\t"))
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Command builds the command tree.
func (a *App) Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "segpub",
		Short: "segpub turns campaign jobs into per-recipient channel messages",
		Long: `segpub turns campaign jobs into per-recipient channel messages.

Exit status: 0 success; 2 a rejected job (its reason on standard error);
1 any other failure, usage errors included. -h on any command exits 0.
Flags may come before or after positional arguments. Settings with a
$SEGPUB_* variable read it when the flag is not given.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Bare "segpub" is a usage error: the help, on standard error.
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(a.env.Stderr)
			_ = cmd.Help()
			return exitCode(ExitFailure)
		},
	}
	root.SetIn(a.env.Stdin)
	root.SetOut(a.env.Stdout)
	root.SetErr(a.env.Stderr)
	root.SetFlagErrorFunc(suggestFlag)
	root.AddCommand(
		a.jobCmd("size"), a.jobCmd("publish"), a.seedCmd(), a.migrateCmd(), a.benchCmd(),
		a.serveCmd(), a.consoleCmd(), a.submitCmd(), a.statusCmd(), a.runCmd(), a.schedulerCmd(), a.campaignCmd(),
		a.healthcheckCmd(), a.checkCmd(), a.explainCmd(), a.whyCmd(), a.diffCmd(), a.costCmd(), a.demoCmd(),
		a.versionCmd(),
	)
	// completion bash|zsh|fish|powershell is cobra's; alone, or with
	// another shell, it is a usage error like every group.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Short = "print a shell completion script: bash, zsh, fish or powershell"
			c.RunE = needSubcommand
		}
	}
	return root
}

// group is a command that only holds subcommands: alone, or with an
// unknown subcommand, it is a usage error.
func (a *App) group(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, RunE: needSubcommand}
	cmd.AddCommand(subs...)
	return cmd
}

func needSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return errors.New("a subcommand is required: " + subNames(cmd))
}

func subNames(cmd *cobra.Command) string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

// action adapts a command body to cobra: settings from the environment
// apply first (a bad one stops the command, by name), then the positional
// arguments are checked, then the body runs and its exit code is kept.
func (a *App) action(d *decls, args cobra.PositionalArgs, body func(ctx context.Context, args []string) int) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, pos []string) error {
		if d != nil {
			if err := d.applyEnv(); err != nil {
				fmt.Fprintf(a.env.Stderr, "%s: %v\n", cmd.CommandPath(), err)
				return exitCode(ExitFailure)
			}
		}
		if args != nil {
			if err := args(cmd, pos); err != nil {
				return err
			}
		}
		if code := body(cmd.Context(), pos); code != ExitOK {
			return exitCode(code)
		}
		return nil
	}
}

// newCmd returns a command and the declarations of its settings.
func (a *App) newCmd(use, short string) (*cobra.Command, *decls) {
	cmd := &cobra.Command{Use: use, Short: short}
	cmd.Flags().SortFlags = false
	return cmd, newDecls(cmd.Flags(), a.env)
}

// noArgs, oneArg and twoArgs check positional arguments with messages that
// name what is expected.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(args, " "))
	}
	return nil
}

func argsNamed(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return fmt.Errorf("want %s, got %d argument(s)", strings.Join(names, " "), len(args))
		}
		return nil
	}
}

// longFlagsWithOneDash rewrites -name to --name for every long flag of the
// tree: segpub's flags were Go flag package flags, which take one dash, and
// command lines written then keep working.
func longFlagsWithOneDash(root *cobra.Command, args []string) []string {
	long := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if len(f.Name) > 1 {
				long[f.Name] = true
			}
		})
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, len(args))
	for i, arg := range args {
		out[i] = arg
		if arg == "--v" { // -v was also spelled --v
			out[i] = "-v"
			continue
		}
		if arg == "--" {
			copy(out[i:], args[i:])
			break
		}
		if len(arg) > 2 && arg[0] == '-' && arg[1] != '-' {
			name, _, _ := strings.Cut(arg[1:], "=")
			if long[name] {
				out[i] = "-" + arg
			}
		}
	}
	return out
}

// common holds the settings every database command shares.
type common struct {
	databaseURL string
	verbose     bool
	dbStall     time.Duration
	maxJobBytes int64
	csvMaxBytes int64
	// stmtTimeout is the statement_timeout of the pool's connections: the
	// audience's, or segpub's own tables' (settings.statePool).
	stmtTimeout   time.Duration
	stmtSetting   string
	checkInterval time.Duration
	// workMem is the work_mem of the pool's sessions ("" leaves the
	// server's): set for the audience database only (statePool clears it).
	workMem string
}

// Defaults of the common settings.
const (
	DefaultDBStallTimeout = 10 * time.Minute
	// DefaultAudienceWorkMem is the work_mem of segpub's audience
	// sessions: empty, the server's own. A larger one shortens the
	// audience query's sort under EXPLAIN ANALYZE, but measured end to end
	// (segpub bench, 4MB against 64MB) no workload got faster and some got
	// slower (docs/benchmarks.md, "The read path"), while it costs the
	// database memory per sort and hash node of every parallel process.
	DefaultAudienceWorkMem = ""
)

// workMemPattern is what the setting accepts: an integer and one of
// PostgreSQL's memory units.
var workMemPattern = regexp.MustCompile(`^[1-9][0-9]{0,9}(kB|MB|GB)$`)

// register declares the common settings of a command that reads jobs.
func (c *common) register(d *decls) {
	c.registerDB(d)
	d.Int64(&c.maxJobBytes, "max-job-bytes", "SEGPUB_MAX_JOB_BYTES", job.DefaultMaxJobBytes,
		"larger jobs (inline, file, standard input or claim check) are rejected before parsing")
	d.Int64(&c.csvMaxBytes, "csv-max-bytes", "SEGPUB_CSV_MAX_BYTES", publish.DefaultMaxCSVBytes,
		"larger CSV audiences (file:// or s3://) are rejected")
}

// registerDB declares the common settings of a command that reads no job
// (seed, migrate, bench, demo): the job and CSV size caps do not apply to
// it, so its help does not list them; they keep their defaults.
func (c *common) registerDB(d *decls) {
	c.maxJobBytes, c.csvMaxBytes = job.DefaultMaxJobBytes, publish.DefaultMaxCSVBytes
	d.String(&c.databaseURL, "database-url", "SEGPUB_DATABASE_URL", "", "audience database URL (postgres://…)")
	d.Duration(&c.dbStall, "db-stall-timeout", "SEGPUB_DB_STALL_TIMEOUT", DefaultDBStallTimeout,
		"close a database connection that sends nothing for this long while a reply is due; 0: never")
	d.Duration(&c.stmtTimeout, "statement-timeout", "SEGPUB_STATEMENT_TIMEOUT", pgtimeout.DefaultStatementTimeout,
		"the server ends an audience statement that runs longer; 0: never")
	c.stmtSetting = "--statement-timeout ($SEGPUB_STATEMENT_TIMEOUT)"
	d.Duration(&c.checkInterval, "db-check-interval", "SEGPUB_DB_CHECK_INTERVAL", pgtimeout.DefaultCheckInterval,
		"how often the server checks that segpub is still connected while it runs a statement (PostgreSQL 14+); 0: never")
	d.String(&c.workMem, "audience-work-mem", "SEGPUB_AUDIENCE_WORK_MEM", DefaultAudienceWorkMem,
		"work_mem of the audience database sessions (e.g. 64MB); empty: the server's own")
	d.fs.BoolVarP(&c.verbose, "verbose", "v", false, "log debug detail")
}

// checkLimits validates the size caps.
func (c *common) checkLimits() error {
	if c.maxJobBytes <= 0 {
		return fmt.Errorf("--max-job-bytes ($SEGPUB_MAX_JOB_BYTES): %d is not positive", c.maxJobBytes)
	}
	if c.csvMaxBytes <= 0 {
		return fmt.Errorf("--csv-max-bytes ($SEGPUB_CSV_MAX_BYTES): %d is not positive", c.csvMaxBytes)
	}
	return nil
}

// operatorFiles opens the CSV audiences of jobs an operator runs by hand
// (run, explain, why): any local file the operator names, within the size
// cap.
func (c *common) operatorFiles() publish.FileOpener {
	return publish.FileOpener{MaxBytes: c.csvMaxBytes}
}

// audienceReads is the runner configuration of every read of an audience in
// one process: the run itself, its size, explain, why and the console's
// preview get the same pool, the same CSV opener (files, and s3:// within
// the same cap) and the same limits, so none of them reads a file the
// others would refuse.
func audienceReads(pool *pgxpool.Pool, log *slog.Logger, files publish.FileOpener) publish.Config {
	return publish.Config{Pool: pool, Logger: log, Open: endpoint.CSVOpener(log, files), MaxCSVBytes: files.MaxBytes}
}

// readJob reads --job within the job size cap; an oversized job is a
// rejection.
func (c *common) readJob(path string, stdin io.Reader) ([]byte, error) {
	if err := c.checkLimits(); err != nil {
		return nil, err
	}
	return readJob(path, stdin, c.maxJobBytes)
}

func (c *common) logger(env *Env) *slog.Logger {
	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	return slog.New(redact.Handler(slog.NewTextHandler(env.logOut(), &slog.HandlerOptions{Level: level})))
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
	if c.workMem != "" {
		if !workMemPattern.MatchString(c.workMem) {
			return nil, fmt.Errorf("--audience-work-mem ($SEGPUB_AUDIENCE_WORK_MEM): %q is not a size such as 64MB (units kB, MB, GB)", c.workMem)
		}
		// A URL that sets work_mem (options=-c work_mem=…) keeps its choice.
		if _, ok := cfg.ConnConfig.RuntimeParams["work_mem"]; !ok && !strings.Contains(cfg.ConnConfig.RuntimeParams["options"], "work_mem") {
			cfg.ConnConfig.RuntimeParams["work_mem"] = c.workMem
		}
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
		return nil, fmt.Errorf("connect to database %s: %w", redactDB(c.databaseURL), err)
	}
	return pool, nil
}

// redactDB hides a database URL's password in messages.
func redactDB(u string) string {
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
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
	fmt.Fprintf(env.Stderr, "segpub %s: %s\n", name, redact.Text(err.Error()))
	return ExitFailure
}

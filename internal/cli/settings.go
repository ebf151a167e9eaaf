package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/pflag"

	"github.com/segpub/segpub/internal/cleaner"
	"github.com/segpub/segpub/internal/pgtimeout"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/redact"
	"github.com/segpub/segpub/internal/service"
)

// decls declares one command's settings. A setting is one call: its flag,
// its environment variable (or "" for none), its default and its help. The
// flag wins over the variable; the variable wins over the default. Help
// prints the default once (pflag's "(default …)") and names the variable.
type decls struct {
	fs   *pflag.FlagSet
	env  *Env
	vars []envVar
}

// envVar reads one setting from the environment when its flag is not given.
type envVar struct {
	flag, name string
	set        func(raw string) error
}

func newDecls(fs *pflag.FlagSet, env *Env) *decls { return &decls{fs: fs, env: env} }

func envHelp(help, env string) string {
	if env == "" {
		return help
	}
	return help + " ($" + env + ")"
}

func (d *decls) bind(flag, env string, set func(raw string) error) {
	if env != "" {
		d.vars = append(d.vars, envVar{flag: flag, name: env, set: set})
	}
}

// String declares a string setting.
func (d *decls) String(p *string, flag, env, def, help string) {
	d.fs.StringVar(p, flag, def, envHelp(help, env))
	d.bind(flag, env, func(raw string) error { *p = raw; return nil })
}

// Int declares a whole-number setting.
func (d *decls) Int(p *int, flag, env string, def int, help string) {
	d.fs.IntVar(p, flag, def, envHelp(help, env))
	d.bind(flag, env, func(raw string) error {
		v, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		*p = v
		return nil
	})
}

// Int64 declares a 64-bit whole-number setting.
func (d *decls) Int64(p *int64, flag, env string, def int64, help string) {
	d.fs.Int64Var(p, flag, def, envHelp(help, env))
	d.bind(flag, env, func(raw string) error {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		*p = v
		return nil
	})
}

// Float64 declares a number setting.
func (d *decls) Float64(p *float64, flag, env string, def float64, help string) {
	d.fs.Float64Var(p, flag, def, envHelp(help, env))
	// Help shows 10000000, not pflag's 1e+07.
	d.fs.Lookup(flag).DefValue = strconv.FormatFloat(def, 'f', -1, 64)
	d.bind(flag, env, func(raw string) error {
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", raw)
		}
		*p = v
		return nil
	})
}

// Duration declares a duration setting (90s, 10m, 1h30m).
func (d *decls) Duration(p *time.Duration, flag, env string, def time.Duration, help string) {
	d.fs.DurationVar(p, flag, def, envHelp(help, env))
	d.bind(flag, env, func(raw string) error {
		v, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration (like 90s or 10m)", raw)
		}
		*p = v
		return nil
	})
}

// Bool declares an on/off setting. parse reads the variable's value; nil
// accepts true/false/1/0/on/off.
func (d *decls) Bool(p *bool, flag, env string, def bool, help string, parse func(raw string) (bool, error)) {
	d.fs.BoolVar(p, flag, def, envHelp(help, env))
	if parse == nil {
		parse = parseOnOff
	}
	d.bind(flag, env, func(raw string) error {
		v, err := parse(raw)
		if err != nil {
			return err
		}
		*p = v
		return nil
	})
}

func parseOnOff(raw string) (bool, error) {
	switch strings.ToLower(raw) {
	case "1", "true", "on", "yes":
		return true, nil
	case "0", "false", "off", "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not on or off", raw)
}

// hideExcept keeps the named flags (and -h) in the help; the others stay
// accepted, so command lines written before the command had its own flag
// list keep working.
func (d *decls) hideExcept(shown ...string) {
	keep := map[string]bool{"help": true}
	for _, s := range shown {
		keep[s] = true
	}
	d.fs.VisitAll(func(f *pflag.Flag) {
		if !keep[f.Name] {
			f.Hidden = true
		}
	})
}

// applyEnv reads the environment variables of the settings whose flag was
// not given. Every variable that does not parse is reported, by name.
func (d *decls) applyEnv() error {
	var bad []string
	for _, v := range d.vars {
		if d.fs.Changed(v.flag) {
			continue
		}
		raw := d.env.Getenv(v.name)
		if raw == "" {
			continue
		}
		if err := v.set(raw); err != nil {
			bad = append(bad, fmt.Sprintf("$%s: %v", v.name, err))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// settings are the service's settings (docs/configuration.md), from flags
// or SEGPUB_* variables; docs/configuration.md lists them all.
type settings struct {
	common
	stateURL      string
	jobQueueURL   string
	channelURL    string
	storeURL      string
	deadLetterURL string
	eventsURL     string
	dataDir       string
	listen        string
	concurrency   int
	maxInFlight   int
	maxAttempts   int
	lease         time.Duration
	grace         time.Duration
	jsonLogs      bool
	partitionRows int
	csvRoot       string
	stateTimeout  time.Duration
	// Retention of segpub's own tables (internal/cleaner).
	retainRuns, retainOccurrences, retainDestinations, cleanInterval time.Duration
}

// Defaults of the service's settings: the service's own (internal/service).
const (
	DefaultJobQueueURL     = service.DefaultJobQueueURL
	DefaultChannelURL      = service.DefaultChannelURL
	DefaultMessageStoreURL = service.DefaultMessageStoreURL
	DefaultDeadLetterURL   = service.DefaultDeadLetterURL
	DefaultListen          = service.DefaultListen
	DefaultConcurrency     = service.DefaultConcurrency
	DefaultMaxAttempts     = service.DefaultMaxAttempts
	DefaultLease           = service.DefaultLease
	DefaultShutdownGrace   = service.DefaultShutdownGrace
	DefaultPartitionRows   = service.DefaultPartitionRows
)

// register declares the service's settings, one line each:
// d.Int(&s.field, "flag-name", "SEGPUB_VARIABLE", DefaultConstant, "help"),
// with the range checked in validate. The help omits the default and the
// variable: they are printed from the declaration.
func (s *settings) register(d *decls) {
	s.common.register(d)
	d.String(&s.stateURL, "state-url", "SEGPUB_STATE_URL", "", "segpub's own database (run ledger, pg: message store); empty: --database-url")
	d.String(&s.jobQueueURL, "job-queue-url", "SEGPUB_JOB_QUEUE_URL", DefaultJobQueueURL, "where jobs arrive")
	d.String(&s.channelURL, "channel-url", "SEGPUB_CHANNEL_URL", DefaultChannelURL, "where channel messages go, {channel} replaced")
	d.String(&s.storeURL, "message-store-url", "SEGPUB_MESSAGE_STORE_URL", DefaultMessageStoreURL, "claim-check bodies")
	d.String(&s.deadLetterURL, "dead-letter-url", "SEGPUB_DEAD_LETTER_URL", DefaultDeadLetterURL, "rejected and exhausted jobs")
	d.String(&s.eventsURL, "events-url", "SEGPUB_EVENTS_URL", "", "where run events go; empty: nowhere")
	d.String(&s.dataDir, "data-dir", "SEGPUB_DATA_DIR", DefaultDataDir, "embedded JetStream's data directory")
	d.String(&s.listen, "listen", "SEGPUB_LISTEN", DefaultListen, "address of /metrics, /healthz and /readyz; empty: none")
	d.Int(&s.concurrency, "concurrency", "SEGPUB_CONCURRENCY", DefaultConcurrency, "jobs run at once")
	d.Int(&s.maxInFlight, "max-in-flight", "SEGPUB_MAX_IN_FLIGHT", 0, "channel messages awaiting acknowledgement at once; 0: the output's default")
	d.Int(&s.maxAttempts, "max-attempts", "SEGPUB_MAX_ATTEMPTS", DefaultMaxAttempts, "runs of a failing job before it is dead-lettered")
	d.Duration(&s.lease, "lease", "SEGPUB_LEASE", DefaultLease, "how long a run is held without a heartbeat")
	d.Duration(&s.grace, "shutdown-grace", "SEGPUB_SHUTDOWN_GRACE", DefaultShutdownGrace, "on SIGTERM, how long running jobs may finish before they are handed back")
	d.Int(&s.partitionRows, "partition-rows", "SEGPUB_PARTITION_ROWS", DefaultPartitionRows, "split publish jobs over this many users into ranges every worker shares; 0: never")
	d.Duration(&s.stateTimeout, "state-statement-timeout", "SEGPUB_STATE_STATEMENT_TIMEOUT", pgtimeout.DefaultStateStatementTimeout,
		"the server ends a statement on segpub's own tables that runs longer; 0: never")
	d.String(&s.csvRoot, "csv-root", "SEGPUB_CSV_ROOT", "", "directory whose regular files file:// CSV audiences may name; empty: file:// audiences are rejected")
	d.Duration(&s.retainRuns, "retain-runs", "SEGPUB_RETAIN_RUNS", cleaner.DefaultRunRetention, "how long a finished run is kept (it stops late copies of its job from running again)")
	d.Duration(&s.retainOccurrences, "retain-occurrences", "SEGPUB_RETAIN_OCCURRENCES", cleaner.DefaultOccurrenceRetention, "how long a scheduler occurrence is kept")
	d.Duration(&s.retainDestinations, "retain-partition-destinations", "SEGPUB_RETAIN_PARTITION_DESTINATIONS", cleaner.DefaultDestinationRetention, "how long a partitioned run's destination fingerprints are kept after it finished")
	d.Duration(&s.cleanInterval, "clean-interval", "SEGPUB_CLEAN_INTERVAL", cleaner.DefaultInterval, "time between passes of the cleaner of segpub's own tables")
	d.Bool(&s.jsonLogs, "json-logs", "SEGPUB_LOG_FORMAT", false, "JSON logs (the variable: json or text)", func(raw string) (bool, error) {
		switch raw {
		case "json":
			return true, nil
		case "text":
			return false, nil
		}
		return false, fmt.Errorf("%q is not json or text", raw)
	})
}

// validate checks the service's settings; an error names the flag and
// the variable.
func (s *settings) validate() error {
	switch {
	case s.maxInFlight < 0:
		return fmt.Errorf("--max-in-flight ($SEGPUB_MAX_IN_FLIGHT): %d is negative", s.maxInFlight)
	case s.concurrency < 1:
		return fmt.Errorf("--concurrency ($SEGPUB_CONCURRENCY): %d; want at least 1", s.concurrency)
	case s.maxAttempts < 1:
		return fmt.Errorf("--max-attempts ($SEGPUB_MAX_ATTEMPTS): %d; want at least 1", s.maxAttempts)
	case s.lease < service.MinLease:
		return fmt.Errorf("--lease ($SEGPUB_LEASE): %s; want at least %s (heartbeats are every third of it)", s.lease, service.MinLease)
	case s.grace <= 0:
		return fmt.Errorf("--shutdown-grace ($SEGPUB_SHUTDOWN_GRACE): %s is not positive", s.grace)
	case s.retainRuns < cleaner.MinRunRetention:
		return fmt.Errorf("--retain-runs ($SEGPUB_RETAIN_RUNS): %s; want at least %s (a queue may still hold a copy of a finished job)", s.retainRuns, cleaner.MinRunRetention)
	case s.retainOccurrences < cleaner.MinOccurrenceRetention:
		return fmt.Errorf("--retain-occurrences ($SEGPUB_RETAIN_OCCURRENCES): %s; want at least the scheduler's look-back of %s", s.retainOccurrences, cleaner.MinOccurrenceRetention)
	case s.retainDestinations < 0:
		return fmt.Errorf("--retain-partition-destinations ($SEGPUB_RETAIN_PARTITION_DESTINATIONS): %s is negative", s.retainDestinations)
	case s.cleanInterval <= 0:
		return fmt.Errorf("--clean-interval ($SEGPUB_CLEAN_INTERVAL): %s is not positive", s.cleanInterval)
	case s.partitionRows < 0:
		return fmt.Errorf("--partition-rows ($SEGPUB_PARTITION_ROWS): %d is negative", s.partitionRows)
	}
	return nil
}

func (s *settings) logger(env *Env) *slog.Logger {
	if !s.jsonLogs {
		return s.common.logger(env)
	}
	level := slog.LevelInfo
	if s.verbose {
		level = slog.LevelDebug
	}
	// Job and output URLs may carry passwords: every line is redacted.
	return slog.New(redact.Handler(slog.NewJSONHandler(env.logOut(), &slog.HandlerOptions{Level: level})))
}

// statePool connects to segpub's own database: --state-url, or the
// audience database when it is not set.
func (s *settings) statePool(ctx context.Context) (*pgxpool.Pool, error) {
	c := s.common
	if s.stateURL != "" {
		c.databaseURL = s.stateURL
	}
	c.stmtTimeout = s.stateTimeout
	c.workMem = "" // segpub's own tables: short statements, the server's work_mem
	c.stmtSetting = "--state-statement-timeout ($SEGPUB_STATE_STATEMENT_TIMEOUT)"
	return c.pool(ctx)
}

// opened is the service built from the settings, and the databases it
// runs on (opened here, with segpub's session settings).
type opened struct {
	*service.Service
	audience, state *pgxpool.Pool
}

// open checks the settings, opens the databases and builds the service;
// configure sets what only some commands run (modules, listeners).
func (s *settings) open(ctx context.Context, log *slog.Logger, configure func(*service.Config)) (*opened, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if err := s.checkLimits(); err != nil {
		return nil, err
	}
	if err := publish.CheckCSVRoot(s.csvRoot); err != nil {
		return nil, fmt.Errorf("--csv-root ($SEGPUB_CSV_ROOT): %w", err)
	}
	aud, err := s.pool(ctx)
	if err != nil {
		return nil, err
	}
	// Its own pool even on the audience's database: its statements get
	// the shorter timeout.
	state, err := s.statePool(ctx)
	if err != nil {
		aud.Close()
		return nil, fmt.Errorf("state database: %w", err)
	}
	cfg := s.config(aud, state, log)
	if configure != nil {
		configure(&cfg)
	}
	svc, err := service.New(ctx, cfg)
	if err != nil {
		state.Close()
		aud.Close()
		return nil, err
	}
	return &opened{Service: svc, audience: aud, state: state}, nil
}

// config is the service's Config from the settings.
func (s *settings) config(aud, state *pgxpool.Pool, log *slog.Logger) service.Config {
	return service.Config{Audience: aud, State: state, Logger: log,
		JobQueueURL: s.jobQueueURL, ChannelURL: s.channelURL, MessageStoreURL: s.storeURL, DeadLetterURL: s.deadLetterURL,
		EventsURL: s.eventsURL, DataDir: s.dataDir,
		Concurrency: s.concurrency, MaxInFlight: s.maxInFlight, MaxAttempts: s.maxAttempts, Lease: s.lease, ShutdownGrace: s.grace,
		PartitionRows: s.partitionRows, CSVRoot: s.csvRoot, MaxCSVBytes: s.csvMaxBytes, MaxJobBytes: s.maxJobBytes,
		RunRetention: s.retainRuns, OccurrenceRetention: s.retainOccurrences, DestinationRetention: s.retainDestinations,
		CleanInterval: s.cleanInterval}
}

func (o *opened) close() {
	_ = o.Close()
	if o.state != o.audience {
		o.state.Close()
	}
	o.audience.Close()
}

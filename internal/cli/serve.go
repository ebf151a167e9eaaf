package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/cleaner"
	"github.com/segpub/segpub/internal/endpoint"
	"github.com/segpub/segpub/internal/httpserve"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/metrics"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/partition"
	"github.com/segpub/segpub/internal/pgtimeout"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/redact"
	"github.com/segpub/segpub/internal/worker"
)

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

// Defaults of the service's settings.
const (
	DefaultJobQueueURL     = "embedded:"
	DefaultChannelURL      = "embedded:"
	DefaultMessageStoreURL = "pg:"
	DefaultDeadLetterURL   = "embedded:"
	DefaultListen          = "127.0.0.1:9090"
	DefaultConcurrency     = 2
	DefaultMaxAttempts     = 5
	DefaultLease           = 60 * time.Second
	DefaultShutdownGrace   = 30 * time.Second
	DefaultPartitionRows   = 2_000_000
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
	case s.lease < 3*time.Second:
		return fmt.Errorf("--lease ($SEGPUB_LEASE): %s; want at least 3s (heartbeats are every third of it)", s.lease)
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

// service is what serve and submit open.
type service struct {
	audience *pgxpool.Pool
	state    *pgxpool.Pool
	nats     *natsjs.Connector
	opener   *endpoint.Opener
	// reads is how the service reads audiences: the worker, and the
	// console's preview, with the same confined CSV opener.
	reads publish.Config
}

func (s *settings) open(ctx context.Context, log *slog.Logger) (*service, error) {
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
	nc := &natsjs.Connector{DefaultDir: s.dataDir + "/jetstream", Logger: log}
	return &service{audience: aud, state: state, nats: nc, reads: audienceReads(aud, log, s.serviceFiles()),
		opener: &endpoint.Opener{State: state, NATS: nc, Logger: log, AWS: newAWSOpener(log), Lease: s.lease, MaxInFlight: s.maxInFlight}}, nil
}

// serviceFiles opens the CSV audiences of jobs that come from another
// system: only regular files under the operator's CSV directory.
func (s *settings) serviceFiles() publish.FileOpener {
	return publish.FileOpener{Confined: true, Root: s.csvRoot, MaxBytes: s.csvMaxBytes}
}

func (svc *service) close() {
	svc.nats.Close()
	if svc.state != svc.audience {
		svc.state.Close()
	}
	svc.audience.Close()
}

func (a *App) serveCmd() *cobra.Command {
	cmd, d := a.newCmd("serve", "run the service: take jobs from the job queue and publish them")
	var s settings
	var ss schedSettings
	var cs consoleSettings
	var withScheduler bool
	s.register(d)
	ss.register(d)
	d.Bool(&withScheduler, "scheduler", "SEGPUB_SCHEDULER", true, "run the scheduler in this process too; --scheduler=false: not (the variable: on or off)", nil)
	cs.register(d, "")
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runServe(ctx, a.env, &s, &ss, &cs, withScheduler) })
	return cmd
}

// runServe is `segpub serve`.
func runServe(ctx context.Context, env *Env, s *settings, ss *schedSettings, cs *consoleSettings, withScheduler bool) int {
	if err := ss.validate(); err != nil {
		return fail(env, "serve", err)
	}
	log := s.logger(env)
	svc, err := s.open(ctx, log)
	if err != nil {
		return fail(env, "serve", err)
	}
	// A job that ignored cancellation may still hold connections, and
	// closing the pools would wait for it: the process exits instead.
	abandoned := false
	defer func() {
		if !abandoned {
			svc.close()
		}
	}()
	w, m, err := s.worker(ctx, svc, log)
	if err != nil {
		return fail(env, "serve", err)
	}
	// Read by the /readyz handler's goroutines.
	var ready atomic.Bool
	var srv *http.Server
	if s.listen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
		mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
			if err := svc.state.Ping(r.Context()); err != nil || !ready.Load() {
				http.Error(rw, "not ready", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(rw, "ready")
		})
		ln, err := net.Listen("tcp", s.listen)
		if err != nil {
			return fail(env, "serve", fmt.Errorf("listen on %s: %w", s.listen, err))
		}
		srv = httpserve.Server(mux, 0)
		go func() { _ = srv.Serve(ln) }()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	con, err := cs.start(ctx, svc, s, log)
	if err != nil {
		return fail(env, "serve", err)
	}
	if err := w.Start(ctx); err != nil {
		return fail(env, "serve", err)
	}
	var sch interface{ Stop(context.Context) error }
	if withScheduler {
		if sch, err = ss.start(ctx, svc, s.jobQueueURL, s.storeURL, log); err != nil {
			return fail(env, "serve", err)
		}
	}
	cl, err := cleaner.New(cleaner.Config{Pool: svc.state, RunRetention: s.retainRuns, OccurrenceRetention: s.retainOccurrences,
		DestinationRetention: s.retainDestinations, Interval: s.cleanInterval, Logger: log})
	if err != nil {
		return fail(env, "serve", err)
	}
	if err := cl.Start(ctx); err != nil {
		return fail(env, "serve", err)
	}
	ready.Store(true)
	<-ctx.Done()
	log.Info("shutting down: no new jobs; running ones may finish", "grace", s.grace)
	ready.Store(false)
	// The whole stop fits in the grace: running jobs may finish until
	// the hand-back allowance before its end, are then cancelled, and
	// whatever still runs at the end is abandoned.
	hardCtx, cancelHard := context.WithTimeout(context.Background(), s.grace)
	defer cancelHard()
	stopCtx, cancel := context.WithTimeout(hardCtx, s.grace-handBackWait(s.grace))
	defer cancel()
	if sch != nil {
		_ = sch.Stop(stopCtx)
	}
	_ = cl.Stop(stopCtx)
	code := ExitOK
	if err := w.Stop(stopCtx); errors.Is(err, worker.ErrAbandoned) {
		abandoned = true
		code = ExitFailure
		log.Error("stop worker: exiting with jobs still running", "err", err)
	} else if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("stop worker", "err", err)
	}
	if srv != nil {
		if err := srv.Shutdown(hardCtx); err != nil {
			_ = srv.Close()
		}
	}
	con.stop(hardCtx)
	log.Info("stopped")
	return code
}

// handBackWait is the part of the shutdown grace kept for cancelled jobs
// to hand their runs back: a quarter, at most worker.DefaultHandBackWait.
func handBackWait(grace time.Duration) time.Duration {
	return max(min(grace/4, worker.DefaultHandBackWait), time.Millisecond)
}

func (s *settings) worker(ctx context.Context, svc *service, log *slog.Logger) (*worker.Worker, *metrics.Metrics, error) {
	led, err := ledger.New(ctx, svc.state)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := svc.opener.Queue(ctx, s.jobQueueURL, endpoint.Jobs)
	if err != nil {
		return nil, nil, fmt.Errorf("job queue: %w", err)
	}
	dead, err := svc.opener.Queue(ctx, s.deadLetterURL, endpoint.DeadLetters)
	if err != nil {
		return nil, nil, fmt.Errorf("dead letters: %w", err)
	}
	store, err := svc.opener.Store(ctx, s.storeURL)
	if err != nil {
		return nil, nil, fmt.Errorf("message store: %w", err)
	}
	sink, _, err := svc.opener.Sink(ctx, s.channelURL)
	if err != nil {
		return nil, nil, fmt.Errorf("channel output: %w", err)
	}
	ev, err := svc.opener.Events(ctx, s.eventsURL)
	if err != nil {
		return nil, nil, fmt.Errorf("events: %w", err)
	}
	// What the console shows is recorded whether or not this process
	// serves it: `segpub console` reads the same tables.
	rec, err := s.recorder(ctx, svc, log)
	if err != nil {
		return nil, nil, err
	}
	// Jobs come from another system: file:// audiences only under the
	// operator's CSV directory.
	runner, err := publish.New(svc.reads)
	if err != nil {
		return nil, nil, err
	}
	// Every worker runs the sub-jobs of partitioned runs, whoever split
	// them; only those with --partition-rows split.
	parts, err := partition.New(partition.Config{Audience: svc.audience, State: svc.state, Queue: jobs, Engine: runner, Rows: s.partitionRows})
	if err != nil {
		return nil, nil, err
	}
	m := metrics.New()
	w, err := worker.New(worker.Config{Queue: jobs, DeadLetter: rec.DeadLetters(dead), Store: store, Ledger: led, Runner: rec.Runner(runner),
		Sink: m.Sink(sink), Logger: log, Observer: m, Events: rec.Events(ev), Concurrency: s.concurrency, MaxAttempts: s.maxAttempts, Lease: s.lease,
		Partitions: parts, HandBackWait: handBackWait(s.grace), MaxJobBytes: s.maxJobBytes})
	return w, m, err
}

func (a *App) submitCmd() *cobra.Command {
	cmd, d := a.newCmd("submit --job FILE", "put a job on the job queue (as a claim check when it is too large)")
	var s settings
	var jobPath string
	d.String(&jobPath, "job", "", "", "job file (JSON), or - for standard input")
	s.register(d)
	// The serve settings submit does not read stay accepted, not shown.
	d.hideExcept("job", "database-url", "state-url", "job-queue-url", "message-store-url", "data-dir", "db-stall-timeout", "verbose", "json-logs")
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runSubmit(ctx, a.env, &s, &jobPath) })
	return cmd
}

// runSubmit is `segpub submit`: it puts a job on the job queue, as a claim
// check when it is over the queue's size limit.
func runSubmit(ctx context.Context, env *Env, s *settings, jobPath *string) int {
	if *jobPath == "" {
		return usageError(env, "submit", "--job is required")
	}
	data, err := s.readJob(*jobPath, env.Stdin)
	if err != nil {
		return outcome(env, "submit", err)
	}
	// Reject here what a worker would reject: the operator sees the path
	// now rather than in the dead letters later.
	j, err := job.Parse(data)
	if err != nil {
		fmt.Fprintf(env.Stderr, "segpub submit: rejected: %v\n", redact.Text(err.Error()))
		return ExitRejected
	}
	log := s.logger(env)
	svc, err := s.open(ctx, log)
	if err != nil {
		return fail(env, "submit", err)
	}
	defer svc.close()
	q, err := svc.opener.Queue(ctx, s.jobQueueURL, endpoint.Jobs)
	if err != nil {
		return fail(env, "submit", err)
	}
	// The message store is opened only for a job that needs it: a
	// deployment of small jobs needs none.
	var store msgstore.Store
	if len(data) > q.MaxMessageBytes() {
		if store, err = svc.opener.Store(ctx, s.storeURL); err != nil {
			return fail(env, "submit", err)
		}
	}
	claim, err := claimcheck.Send(ctx, q, store, data, j.RequestID)
	if err != nil {
		return fail(env, "submit", err)
	}
	printJSON(env.Stdout, map[string]any{"request_id": j.RequestID, "bytes": len(data), "claim_check": claim})
	return ExitOK
}

func (a *App) statusCmd() *cobra.Command {
	cmd, d := a.newCmd("status REQUEST_ID", "show a run's status, progress and result by request_id")
	var s settings
	s.register(d)
	d.hideExcept("database-url", "state-url", "db-stall-timeout")
	cmd.RunE = a.action(d, argsNamed("REQUEST_ID"), func(ctx context.Context, args []string) int { return runStatus(ctx, a.env, &s, args[0]) })
	return cmd
}

// runStatus is `segpub status REQUEST_ID`.
func runStatus(ctx context.Context, env *Env, s *settings, requestID string) int {
	pool, err := s.statePool(ctx)
	if err != nil {
		return fail(env, "status", err)
	}
	defer pool.Close()
	led, err := ledger.New(ctx, pool)
	if err != nil {
		return fail(env, "status", err)
	}
	run, err := led.Get(ctx, requestID)
	if err != nil {
		return fail(env, "status", err)
	}
	printJSON(env.Stdout, run)
	return ExitOK
}

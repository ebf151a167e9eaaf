package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/endpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/metrics"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/pgtimeout"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/worker"
)

// settings are the service's settings (CONTRACT.md section 9), from flags
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
	stateTimeout  time.Duration
}

func envInt(env *Env, name string, def int) int {
	raw := env.Getenv(name)
	if raw == "" {
		return def
	}
	v, err := strconv.Atoi(raw)
	if err != nil {
		env.bad = append(env.bad, fmt.Sprintf("$%s: %q is not a whole number", name, raw))
		return def
	}
	return v
}

func envDuration(env *Env, name string, def time.Duration) time.Duration {
	raw := env.Getenv(name)
	if raw == "" {
		return def
	}
	v, err := time.ParseDuration(raw)
	if err != nil {
		env.bad = append(env.bad, fmt.Sprintf("$%s: %q is not a duration (like 90s or 10m)", name, raw))
		return def
	}
	return v
}

func envOr(env *Env, name, def string) string {
	if v := env.Getenv(name); v != "" {
		return v
	}
	return def
}

func (s *settings) register(fs *flag.FlagSet, env *Env) {
	s.common.register(fs, env)
	fs.StringVar(&s.stateURL, "state-url", env.Getenv("SEGPUB_STATE_URL"), "segpub's own database (run ledger, pg: message store); default: --database-url ($SEGPUB_STATE_URL)")
	fs.StringVar(&s.jobQueueURL, "job-queue-url", envOr(env, "SEGPUB_JOB_QUEUE_URL", "embedded:"), "where jobs arrive ($SEGPUB_JOB_QUEUE_URL)")
	fs.StringVar(&s.channelURL, "channel-url", envOr(env, "SEGPUB_CHANNEL_URL", "embedded:"), "where channel messages go, {channel} replaced ($SEGPUB_CHANNEL_URL)")
	fs.StringVar(&s.storeURL, "message-store-url", envOr(env, "SEGPUB_MESSAGE_STORE_URL", "pg:"), "claim-check bodies ($SEGPUB_MESSAGE_STORE_URL)")
	fs.StringVar(&s.deadLetterURL, "dead-letter-url", envOr(env, "SEGPUB_DEAD_LETTER_URL", "embedded:"), "rejected and exhausted jobs ($SEGPUB_DEAD_LETTER_URL)")
	fs.StringVar(&s.eventsURL, "events-url", env.Getenv("SEGPUB_EVENTS_URL"), "where run events go; empty: nowhere ($SEGPUB_EVENTS_URL)")
	fs.StringVar(&s.dataDir, "data-dir", envOr(env, "SEGPUB_DATA_DIR", "segpub-data"), "embedded JetStream's data directory ($SEGPUB_DATA_DIR)")
	fs.StringVar(&s.listen, "listen", envOr(env, "SEGPUB_LISTEN", ":9090"), "address of /metrics, /healthz and /readyz; empty: none ($SEGPUB_LISTEN)")
	fs.IntVar(&s.concurrency, "concurrency", envInt(env, "SEGPUB_CONCURRENCY", 2), "jobs run at once ($SEGPUB_CONCURRENCY)")
	fs.IntVar(&s.maxInFlight, "max-in-flight", envInt(env, "SEGPUB_MAX_IN_FLIGHT", 0), "channel messages awaiting acknowledgement at once; 0: the output's default ($SEGPUB_MAX_IN_FLIGHT)")
	fs.IntVar(&s.maxAttempts, "max-attempts", envInt(env, "SEGPUB_MAX_ATTEMPTS", 5), "runs of a failing job before it is dead-lettered ($SEGPUB_MAX_ATTEMPTS)")
	fs.DurationVar(&s.lease, "lease", envDuration(env, "SEGPUB_LEASE", 60*time.Second), "how long a run is held without a heartbeat ($SEGPUB_LEASE)")
	fs.DurationVar(&s.grace, "shutdown-grace", envDuration(env, "SEGPUB_SHUTDOWN_GRACE", 30*time.Second), "on SIGTERM, how long running jobs may finish before they are handed back ($SEGPUB_SHUTDOWN_GRACE)")
	fs.IntVar(&s.partitionRows, "partition-rows", envInt(env, "SEGPUB_PARTITION_ROWS", 2_000_000), "split publish jobs over this many users into ranges every worker shares; 0: never ($SEGPUB_PARTITION_ROWS)")
	fs.DurationVar(&s.stateTimeout, "state-statement-timeout", envDuration(env, "SEGPUB_STATE_STATEMENT_TIMEOUT", pgtimeout.DefaultStateStatementTimeout),
		"the server ends a statement on segpub's own tables that runs longer; 0: never ($SEGPUB_STATE_STATEMENT_TIMEOUT)")
	fs.BoolVar(&s.jsonLogs, "json-logs", env.Getenv("SEGPUB_LOG_FORMAT") == "json", "JSON logs ($SEGPUB_LOG_FORMAT=json)")
}

func (s *settings) logger(env *Env) *slog.Logger {
	if !s.jsonLogs {
		return s.common.logger(env)
	}
	level := slog.LevelInfo
	if s.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
}

// statePool connects to segpub's own database: --state-url, or the
// audience database when it is not set.
func (s *settings) statePool(ctx context.Context) (*pgxpool.Pool, error) {
	c := s.common
	if s.stateURL != "" {
		c.databaseURL = s.stateURL
	}
	c.stmtTimeout = s.stateTimeout
	c.stmtSetting = "--state-statement-timeout ($SEGPUB_STATE_STATEMENT_TIMEOUT)"
	return c.pool(ctx)
}

// service is what serve and submit open.
type service struct {
	audience *pgxpool.Pool
	state    *pgxpool.Pool
	nats     *natsjs.Connector
	opener   *endpoint.Opener
}

func (s *settings) open(ctx context.Context, log *slog.Logger) (*service, error) {
	if s.maxInFlight < 0 {
		return nil, fmt.Errorf("--max-in-flight ($SEGPUB_MAX_IN_FLIGHT): %d is negative", s.maxInFlight)
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
	return &service{audience: aud, state: state, nats: nc,
		opener: &endpoint.Opener{State: state, NATS: nc, Logger: log, AWS: newAWSOpener(log), Lease: s.lease, MaxInFlight: s.maxInFlight}}, nil
}

func (svc *service) close() {
	svc.nats.Close()
	if svc.state != svc.audience {
		svc.state.Close()
	}
	svc.audience.Close()
}

// runServe is `segpub serve`.
func runServe(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var s settings
	var ss schedSettings
	s.register(fs, env)
	ss.register(fs, env)
	withScheduler := fs.Bool("scheduler", env.Getenv("SEGPUB_SCHEDULER") != "off", "run the scheduler in this process too ($SEGPUB_SCHEDULER=off disables)")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	log := s.logger(env)
	svc, err := s.open(ctx, log)
	if err != nil {
		return fail(env, "serve", err)
	}
	defer svc.close()
	w, m, err := s.worker(ctx, svc, log)
	if err != nil {
		return fail(env, "serve", err)
	}
	var ready bool
	var srv *http.Server
	if s.listen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
		mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
			if err := svc.state.Ping(r.Context()); err != nil || !ready {
				http.Error(rw, "not ready", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(rw, "ready")
		})
		ln, err := net.Listen("tcp", s.listen)
		if err != nil {
			return fail(env, "serve", fmt.Errorf("listen on %s: %w", s.listen, err))
		}
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	if err := w.Start(ctx); err != nil {
		return fail(env, "serve", err)
	}
	var sch interface{ Stop(context.Context) error }
	if *withScheduler {
		if sch, err = ss.start(ctx, svc, s.jobQueueURL, log); err != nil {
			return fail(env, "serve", err)
		}
	}
	ready = true
	<-ctx.Done()
	log.Info("shutting down: no new jobs; running ones may finish", "grace", s.grace)
	ready = false
	stopCtx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	if sch != nil {
		_ = sch.Stop(stopCtx)
	}
	if err := w.Stop(stopCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("stop worker", "err", err)
	}
	if srv != nil {
		_ = srv.Shutdown(context.Background())
	}
	log.Info("stopped")
	return ExitOK
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
	runner, err := publish.New(publish.Config{Pool: svc.audience, Logger: log, Open: openCSV(ctx, log)})
	if err != nil {
		return nil, nil, err
	}
	m := metrics.New()
	w, err := worker.New(worker.Config{Queue: jobs, DeadLetter: dead, Store: store, Ledger: led, Runner: runner,
		Sink: m.Sink(sink), Logger: log, Observer: m, Events: ev, Concurrency: s.concurrency, MaxAttempts: s.maxAttempts, Lease: s.lease,
		PartitionRows: s.partitionRows})
	return w, m, err
}

// runSubmit is `segpub submit`: it puts a job on the job queue, as a claim
// check when it is over the queue's size limit.
func runSubmit(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	var s settings
	s.register(fs, env)
	jobPath := fs.String("job", "", "job file (JSON), or - for standard input")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	if *jobPath == "" {
		fmt.Fprintln(env.Stderr, "segpub submit: --job is required")
		return ExitFailure
	}
	data, err := readJob(*jobPath, env.Stdin)
	if err != nil {
		return fail(env, "submit", err)
	}
	// Reject here what a worker would reject: the operator sees the path
	// now rather than in the dead letters later.
	j, err := job.Parse(data)
	if err != nil {
		fmt.Fprintf(env.Stderr, "segpub submit: rejected: %v\n", err)
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
	body, claim := data, ""
	if len(data) > q.MaxMessageBytes() {
		sum := sha256.Sum256(data)
		claim = "m-" + hex.EncodeToString(sum[:12])
		store, err := svc.opener.Store(ctx, s.storeURL)
		if err != nil {
			return fail(env, "submit", err)
		}
		if err := store.Put(ctx, claim, data); err != nil {
			return fail(env, "submit", err)
		}
		body = fmt.Appendf(nil, `{"version":1,"message_id":%q}`, claim)
	}
	if err := q.Send(ctx, body, j.RequestID); err != nil {
		return fail(env, "submit", err)
	}
	printJSON(env.Stdout, map[string]any{"request_id": j.RequestID, "bytes": len(data), "claim_check": claim})
	return ExitOK
}

// runStatus is `segpub status REQUEST_ID`.
func runStatus(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var s settings
	s.register(fs, env)
	fs.SetOutput(env.Stderr)
	if err := fs.Parse(args); err != nil || badEnv(fs, env) {
		return ExitFailure
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(env.Stderr, "usage: segpub status [flags] REQUEST_ID")
		return ExitFailure
	}
	pool, err := s.statePool(ctx)
	if err != nil {
		return fail(env, "status", err)
	}
	defer pool.Close()
	led, err := ledger.New(ctx, pool)
	if err != nil {
		return fail(env, "status", err)
	}
	run, err := led.Get(ctx, fs.Arg(0))
	if err != nil {
		return fail(env, "status", err)
	}
	printJSON(env.Stdout, run)
	return ExitOK
}

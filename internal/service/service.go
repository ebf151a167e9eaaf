// Package service is segpub's composition root: from one validated Config
// it builds the worker, the scheduler, the cleaner, the operator console,
// the metrics listener and everything they share (the endpoint opener, the
// job and dead-letter queues, the message store, the channel sink, the
// event sink, the CSV opener), and starts and stops them in dependency
// order. `segpub serve`, `segpub console`, `segpub scheduler` and
// `segpub demo` are all a Config given to New; they differ only in the
// modules they run (Config.Run) and their defaults.
//
// Nothing else wires these components together: a component added to the
// service is added here, once.
package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/cleaner"
	"github.com/segpub/segpub/internal/console"
	"github.com/segpub/segpub/internal/endpoint"
	"github.com/segpub/segpub/internal/httpserve"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/metrics"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/partition"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/scheduler"
	"github.com/segpub/segpub/internal/worker"
)

// Module is a part of the service a process may run.
type Module string

// The modules, in the order they start (they stop in the reverse order):
// the listeners first, so /readyz and the console answer while the rest
// starts; the worker before the scheduler, which feeds it; the cleaner
// last.
const (
	Metrics   Module = "metrics"
	Console   Module = "console"
	Worker    Module = "worker"
	Scheduler Module = "scheduler"
	Cleaner   Module = "cleaner"
)

// order is the start order.
var order = []Module{Metrics, Console, Worker, Scheduler, Cleaner}

// Defaults of the service's settings (docs/configuration.md).
const (
	DefaultJobQueueURL     = "embedded:"
	DefaultChannelURL      = "embedded:"
	DefaultMessageStoreURL = "pg:"
	DefaultDeadLetterURL   = "embedded:"
	DefaultDataDir         = "segpub-data"
	// DefaultListen is loopback: /metrics says what runs and how much;
	// a deployment that scrapes from elsewhere sets its address (the image
	// sets :9090).
	DefaultListen         = "127.0.0.1:9090"
	DefaultConcurrency    = 2
	DefaultMaxAttempts    = 5
	DefaultLease          = 60 * time.Second
	DefaultShutdownGrace  = 30 * time.Second
	DefaultPartitionRows  = 2_000_000
	DefaultSchedulerEvery = 5 * time.Minute
	DefaultSchedulerCatch = time.Hour
	// MinLease: heartbeats are every third of the lease.
	MinLease = 3 * time.Second
)

// Config is the whole service's configuration. The zero value of a field
// means its default, except where the field says otherwise.
type Config struct {
	// Audience is the audience database. Required.
	Audience *pgxpool.Pool
	// State is segpub's own database (run ledger, campaigns, the pg:
	// message store). Default: Audience.
	State  *pgxpool.Pool
	Logger *slog.Logger

	// Run lists the modules this process runs; none is a service that
	// only opens endpoints (submit). Metrics runs when Listen is set and
	// Console when Console has an address or a listener, whether listed
	// or not.
	Run []Module

	// The endpoints (docs/configuration.md, internal/endpoint).
	JobQueueURL     string // Default: DefaultJobQueueURL.
	ChannelURL      string // Default: DefaultChannelURL.
	MessageStoreURL string // Default: DefaultMessageStoreURL.
	DeadLetterURL   string // Default: DefaultDeadLetterURL.
	// EventsURL is where run events go; empty: nowhere.
	EventsURL string
	// DataDir holds the embedded JetStream (in DataDir/jetstream).
	// Default: DefaultDataDir.
	DataDir string
	// AWS opens Amazon endpoints. Default: endpoint.NewAWS.
	AWS endpoint.AWSOpener

	// Listen is the address of /metrics, /healthz and /readyz; empty:
	// none.
	Listen  string
	Console ConsoleConfig
	// Scheduler configures the Scheduler module.
	Scheduler SchedulerConfig

	// Concurrency is the number of jobs run at once. Default:
	// DefaultConcurrency.
	Concurrency int
	// MaxInFlight bounds the channel messages awaiting acknowledgement;
	// 0: the output's default.
	MaxInFlight int
	// MaxAttempts is how many runs a failing job gets. Default:
	// DefaultMaxAttempts.
	MaxAttempts int
	// Lease is how long a run is held without a heartbeat. Default:
	// DefaultLease.
	Lease time.Duration
	// ShutdownGrace is how long Stop takes at most: running jobs may
	// finish until HandBackWait before its end. Default:
	// DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// PartitionRows splits publish jobs over this many users into ranges
	// every worker shares; 0: never.
	PartitionRows int
	// CSVRoot is the directory whose regular files file:// CSV audiences
	// may name; empty: file:// audiences are rejected (jobs come from
	// other systems).
	CSVRoot string
	// MaxCSVBytes caps a CSV audience. Default: publish's.
	MaxCSVBytes int64
	// MaxJobBytes caps a job. Default: job.DefaultMaxJobBytes.
	MaxJobBytes int64

	// Retention of segpub's own tables (internal/cleaner). Defaults: the
	// cleaner's.
	RunRetention, OccurrenceRetention, DestinationRetention, CleanInterval time.Duration
}

// ConsoleConfig configures the operator console (docs/console.md).
type ConsoleConfig struct {
	// Addr is where it listens; empty: no console unless Listener is set.
	Addr string
	// Listener, when set, is used instead of listening on Addr (the demo
	// opens its own, to run without a console when the port is taken).
	Listener net.Listener
	// Config is the console's own configuration (its token, host names,
	// sessions, the databases its footer shows, redacted by the caller);
	// the service sets its State, Audience (the worker's audience reads,
	// CSV opener included), Jobs and Logger, and MaxJobBytes when unset.
	Config console.Config
}

// SchedulerConfig configures the scheduler (internal/scheduler).
type SchedulerConfig struct {
	// Interval is how often it wakes. Default: DefaultSchedulerEvery.
	Interval time.Duration
	// CatchUp: occurrences missed by more are reported, not sent.
	// Default: DefaultSchedulerCatch.
	CatchUp time.Duration
}

func (c *Config) withDefaults() Config {
	out := *c
	out.State = cmp.Or(out.State, out.Audience)
	out.Logger = cmp.Or(out.Logger, slog.New(slog.DiscardHandler))
	out.JobQueueURL = cmp.Or(out.JobQueueURL, DefaultJobQueueURL)
	out.ChannelURL = cmp.Or(out.ChannelURL, DefaultChannelURL)
	out.MessageStoreURL = cmp.Or(out.MessageStoreURL, DefaultMessageStoreURL)
	out.DeadLetterURL = cmp.Or(out.DeadLetterURL, DefaultDeadLetterURL)
	out.DataDir = cmp.Or(out.DataDir, DefaultDataDir)
	if out.AWS == nil {
		out.AWS = endpoint.NewAWS(out.Logger)
	}
	out.Concurrency = cmp.Or(out.Concurrency, DefaultConcurrency)
	out.MaxAttempts = cmp.Or(out.MaxAttempts, DefaultMaxAttempts)
	out.Lease = cmp.Or(out.Lease, DefaultLease)
	out.ShutdownGrace = cmp.Or(out.ShutdownGrace, DefaultShutdownGrace)
	out.MaxJobBytes = cmp.Or(out.MaxJobBytes, job.DefaultMaxJobBytes)
	// The console's recorder keeps its rows as long as the cleaner keeps
	// the runs.
	out.RunRetention = cmp.Or(out.RunRetention, cleaner.DefaultRunRetention)
	out.Scheduler.Interval = cmp.Or(out.Scheduler.Interval, DefaultSchedulerEvery)
	out.Scheduler.CatchUp = cmp.Or(out.Scheduler.CatchUp, DefaultSchedulerCatch)
	out.Run = slices.Clone(out.Run)
	if out.Listen != "" && !slices.Contains(out.Run, Metrics) {
		out.Run = append(out.Run, Metrics)
	}
	if (out.Console.Addr != "" || out.Console.Listener != nil) && !slices.Contains(out.Run, Console) {
		out.Run = append(out.Run, Console)
	}
	return out
}

// validate checks a Config with its defaults applied; an error names the
// field.
func (c *Config) validate() error {
	switch {
	case c.Audience == nil:
		return errors.New("service: Config.Audience is required")
	case c.Concurrency < 1:
		return fmt.Errorf("service: Config.Concurrency %d; want at least 1", c.Concurrency)
	case c.MaxInFlight < 0:
		return fmt.Errorf("service: Config.MaxInFlight %d is negative", c.MaxInFlight)
	case c.MaxAttempts < 1:
		return fmt.Errorf("service: Config.MaxAttempts %d; want at least 1", c.MaxAttempts)
	case c.Lease < MinLease:
		return fmt.Errorf("service: Config.Lease %s; want at least %s (heartbeats are every third of it)", c.Lease, MinLease)
	case c.ShutdownGrace <= 0:
		return fmt.Errorf("service: Config.ShutdownGrace %s is not positive", c.ShutdownGrace)
	case c.PartitionRows < 0:
		return fmt.Errorf("service: Config.PartitionRows %d is negative", c.PartitionRows)
	case c.MaxCSVBytes < 0:
		return fmt.Errorf("service: Config.MaxCSVBytes %d is negative", c.MaxCSVBytes)
	case c.Scheduler.Interval <= 0:
		return fmt.Errorf("service: Config.Scheduler.Interval %s; want more than 0", c.Scheduler.Interval)
	case c.Scheduler.CatchUp <= 0:
		return fmt.Errorf("service: Config.Scheduler.CatchUp %s; want more than 0", c.Scheduler.CatchUp)
	}
	for _, m := range c.Run {
		if !slices.Contains(order, m) {
			return fmt.Errorf("service: Config.Run: unknown module %q", m)
		}
	}
	if err := publish.CheckCSVRoot(c.CSVRoot); err != nil {
		return fmt.Errorf("service: Config.CSVRoot: %w", err)
	}
	return nil
}

// HandBackWait is the part of the shutdown grace kept for cancelled jobs
// to hand their runs back: a quarter, at most worker.DefaultHandBackWait.
func HandBackWait(grace time.Duration) time.Duration {
	return max(min(grace/4, worker.DefaultHandBackWait), time.Millisecond)
}

// startStopper is a module once built.
type startStopper interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Service is the service built from a Config.
type Service struct {
	cfg     Config
	log     *slog.Logger
	nats    *natsjs.Connector
	opener  *endpoint.Opener
	metrics *metrics.Metrics
	csv     func(context.Context, string) (io.ReadCloser, error)
	// reads is how the service reads audiences: the worker's runs and the
	// console's preview, with the same pool, CSV opener and limits.
	reads publish.Config

	// What modules share, opened once on first use.
	mu    sync.Mutex
	jobs  queue.Queue
	store msgstore.Store
	sink  publish.Sink

	modules map[Module]startStopper
	started []Module
	// ready is read by /readyz's goroutines.
	ready      atomic.Bool
	consoleURL string
}

// New builds the service: every module cfg.Run lists, and what they need.
// Nothing runs until Start. On error, what was opened is closed.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	nc := &natsjs.Connector{DefaultDir: filepath.Join(c.DataDir, "jetstream"), Logger: c.Logger}
	s := &Service{cfg: c, log: c.Logger, nats: nc, metrics: metrics.New(), modules: map[Module]startStopper{},
		opener: &endpoint.Opener{State: c.State, NATS: nc, Logger: c.Logger, AWS: c.AWS, Lease: c.Lease, MaxInFlight: c.MaxInFlight},
		// Jobs come from other systems: file:// audiences only under the
		// operator's CSV directory. The worker and the console's preview
		// open CSV audiences with this one opener.
		csv: endpoint.CSVOpener(c.Logger, publish.FileOpener{Confined: true, Root: c.CSVRoot, MaxBytes: c.MaxCSVBytes})}
	s.reads = publish.Config{Pool: c.Audience, Logger: c.Logger, Open: s.csv, MaxCSVBytes: c.MaxCSVBytes}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	for _, m := range order {
		if !slices.Contains(c.Run, m) {
			continue
		}
		mod, err := s.build(ctx, m)
		if err != nil {
			return nil, err
		}
		s.modules[m] = mod
	}
	return s, nil
}

func (s *Service) build(ctx context.Context, m Module) (startStopper, error) {
	switch m {
	case Metrics:
		return s.metricsListener(), nil
	case Console:
		return s.console(ctx)
	case Worker:
		return s.worker(ctx)
	case Scheduler:
		return s.scheduler(ctx)
	case Cleaner:
		c := s.cfg
		return cleaner.New(cleaner.Config{Pool: c.State, RunRetention: c.RunRetention, OccurrenceRetention: c.OccurrenceRetention,
			DestinationRetention: c.DestinationRetention, Interval: c.CleanInterval, Logger: s.log})
	}
	return nil, fmt.Errorf("service: unknown module %q", m)
}

// Opener is the service's endpoint opener.
func (s *Service) Opener() *endpoint.Opener { return s.opener }

// CSVOpener opens CSV audiences as the service's worker does.
func (s *Service) CSVOpener() func(context.Context, string) (io.ReadCloser, error) { return s.csv }

// JobQueue opens the job queue (once).
func (s *Service) JobQueue(ctx context.Context) (queue.Queue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs == nil {
		q, err := s.opener.Queue(ctx, s.cfg.JobQueueURL, endpoint.Jobs)
		if err != nil {
			return nil, fmt.Errorf("job queue: %w", err)
		}
		s.jobs = q
	}
	return s.jobs, nil
}

// MessageStore opens the claim-check message store (once).
func (s *Service) MessageStore(ctx context.Context) (msgstore.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == nil {
		st, err := s.opener.Store(ctx, s.cfg.MessageStoreURL)
		if err != nil {
			return nil, fmt.Errorf("message store: %w", err)
		}
		s.store = st
	}
	return s.store, nil
}

// channelSink opens the channel output (once), behind the metrics.
func (s *Service) channelSink(ctx context.Context) (publish.Sink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sink == nil {
		sk, err := s.opener.Sink(ctx, s.cfg.ChannelURL)
		if err != nil {
			return nil, fmt.Errorf("channel output: %w", err)
		}
		s.sink = s.metrics.Sink(sk)
	}
	return s.sink, nil
}

func (s *Service) worker(ctx context.Context) (*worker.Worker, error) {
	c := s.cfg
	led, err := ledger.New(ctx, c.State)
	if err != nil {
		return nil, err
	}
	jobs, err := s.JobQueue(ctx)
	if err != nil {
		return nil, err
	}
	dead, err := s.opener.Queue(ctx, c.DeadLetterURL, endpoint.DeadLetters)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	store, err := s.MessageStore(ctx)
	if err != nil {
		return nil, err
	}
	sink, err := s.channelSink(ctx)
	if err != nil {
		return nil, err
	}
	ev, err := s.opener.Events(ctx, c.EventsURL)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	// What the console shows is recorded whether or not this process
	// serves it: `segpub console` reads the same tables.
	rec, err := console.NewRecorder(ctx, console.RecorderConfig{Pool: c.State, Retention: c.RunRetention, Logger: s.log})
	if err != nil {
		return nil, err
	}
	runner, err := publish.New(s.reads)
	if err != nil {
		return nil, err
	}
	// Every worker runs the sub-jobs of partitioned runs, whoever split
	// them; only those with PartitionRows split.
	parts, err := partition.New(partition.Config{Audience: c.Audience, State: c.State, Queue: jobs, Engine: runner, Rows: c.PartitionRows})
	if err != nil {
		return nil, err
	}
	return worker.New(worker.Config{Queue: jobs, DeadLetter: rec.DeadLetters(dead), Store: store, Ledger: led, Runner: rec.Runner(runner),
		Sink: sink, Logger: s.log, Observer: s.metrics, Events: rec.Events(ev), Concurrency: c.Concurrency, MaxAttempts: c.MaxAttempts,
		Lease: c.Lease, Partitions: parts, HandBackWait: HandBackWait(c.ShutdownGrace), MaxJobBytes: c.MaxJobBytes})
}

func (s *Service) scheduler(ctx context.Context) (*scheduler.Scheduler, error) {
	store, err := scheduler.NewStore(ctx, s.cfg.State)
	if err != nil {
		return nil, err
	}
	q, err := s.JobQueue(ctx)
	if err != nil {
		return nil, err
	}
	// Jobs over the queue's limit go as claim checks, as submit sends them.
	messages, err := s.MessageStore(ctx)
	if err != nil {
		return nil, err
	}
	return scheduler.New(scheduler.Config{Store: store, Queue: q, Messages: messages, Interval: s.cfg.Scheduler.Interval,
		CatchUp: s.cfg.Scheduler.CatchUp, Logger: s.log})
}

func (s *Service) console(ctx context.Context) (startStopper, error) {
	// Opened on the first resume or replay: a console that is only read
	// (`segpub console` beside no serve) starts no embedded JetStream.
	jobs := func(ctx context.Context) (claimcheck.Sender, msgstore.Store, error) {
		q, err := s.JobQueue(ctx)
		if err != nil {
			return nil, nil, err
		}
		store, err := s.MessageStore(ctx)
		if err != nil {
			return nil, nil, err
		}
		return q, store, nil
	}
	cfg := s.cfg.Console.Config
	cfg.State, cfg.Audience, cfg.Jobs, cfg.Logger = s.cfg.State, s.reads, jobs, s.log
	cfg.MaxJobBytes = cmp.Or(cfg.MaxJobBytes, s.cfg.MaxJobBytes)
	c, err := console.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The preview runs the audience query: its responses may take that
	// long to write.
	return &listener{addr: s.cfg.Console.Addr, ln: s.cfg.Console.Listener, handler: c,
		write: console.WriteTimeout(cfg.PreviewTimeout), started: func(url string) {
			s.consoleURL = url
			s.log.Info("serving the console", "url", url)
		}}, nil
}

func (s *Service) metricsListener() startStopper {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		if err := s.cfg.State.Ping(r.Context()); err != nil || !s.ready.Load() {
			http.Error(rw, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	return &listener{addr: s.cfg.Listen, handler: mux,
		started: func(url string) {
			s.log.Info("serving metrics", "addr", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"))
		}}
}

// ConsoleURL is the console's address once started ("" without one).
func (s *Service) ConsoleURL() string { return s.consoleURL }

// Start starts the modules in dependency order. When one fails, those
// already started are stopped.
func (s *Service) Start(ctx context.Context) error {
	for _, m := range order {
		mod, ok := s.modules[m]
		if !ok {
			continue
		}
		if err := mod.Start(ctx); err != nil {
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownGrace)
			defer cancel()
			_ = s.stopStarted(stop, stop)
			return fmt.Errorf("start %s: %w", m, err)
		}
		s.started = append(s.started, m)
	}
	s.ready.Store(true)
	return nil
}

// Stop stops the modules in the reverse order, within the shutdown grace:
// running jobs may finish until HandBackWait before its end (the soft
// stop), are then cancelled and given that long to hand their runs back;
// a job still running then is abandoned, and Stop returns an error
// wrapping worker.ErrAbandoned. The caller then exits without Close: the
// abandoned job may still hold the sink and the databases.
func (s *Service) Stop() error {
	s.ready.Store(false)
	grace := s.cfg.ShutdownGrace
	hard, cancelHard := context.WithTimeout(context.Background(), grace)
	defer cancelHard()
	soft, cancel := context.WithTimeout(hard, grace-HandBackWait(grace))
	defer cancel()
	return s.stopStarted(soft, hard)
}

func (s *Service) stopStarted(soft, hard context.Context) error {
	var abandoned error
	for _, m := range slices.Backward(s.started) {
		ctx := soft
		if m == Metrics || m == Console {
			// The listeners answer until the end: /readyz says the
			// process is stopping, the console shows the runs handed back.
			ctx = hard
		}
		err := s.modules[m].Stop(ctx)
		switch {
		case errors.Is(err, worker.ErrAbandoned):
			abandoned = err
			s.log.Error("stop worker: exiting with jobs still running", "err", err)
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			s.log.Error("stop "+string(m), "err", err)
		}
	}
	s.started = nil
	return abandoned
}

// Close closes what the service opened: the channel sink (flushing what it
// buffers) and the JetStream connections. The databases are the caller's.
func (s *Service) Close() error {
	s.mu.Lock()
	sink := s.sink
	s.sink = nil
	s.mu.Unlock()
	var err error
	if sink != nil {
		if err = sink.Close(); err != nil {
			err = fmt.Errorf("close the channel output: %w", err)
			s.log.Error("close the channel output", "err", err)
		}
	}
	s.nats.Close()
	return err
}

// listener serves an HTTP handler as a module.
type listener struct {
	addr    string
	ln      net.Listener
	handler http.Handler
	// write bounds writing a response (0: httpserve's default).
	write time.Duration
	// started is told the listener's URL (and logs it).
	started func(url string)
	srv     *http.Server
}

func (l *listener) Start(context.Context) error {
	ln := l.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", l.addr); err != nil {
			return fmt.Errorf("listen on %s: %w", l.addr, err)
		}
	}
	// Every phase of a request is bounded: a slow client holds nothing
	// for long.
	l.srv = httpserve.Server(l.handler, l.write)
	go func() { _ = l.srv.Serve(ln) }()
	l.started("http://" + ln.Addr().String() + "/")
	return nil
}

func (l *listener) Stop(ctx context.Context) error {
	if l.srv == nil {
		return nil
	}
	if err := l.srv.Shutdown(ctx); err != nil {
		return l.srv.Close()
	}
	return nil
}

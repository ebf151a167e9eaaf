// Package console is segpub's operator console: a few server-rendered
// pages (html/template, one stylesheet and a few lines of script, embedded
// in the binary) over the run ledger, the scheduler's campaigns, the
// recorded dead letters and run events, and explain/why. It answers only to
// the host names it is configured with; what shows people's data (the
// audience preview, why, dead-letter bodies) needs a signed-in session when
// a console token is set and is withheld when none is; every action that
// changes state is a POST that needs the console token and passes the
// cross-origin checks (docs/console.md).
package console

import (
	"cmp"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/scheduler"
	"github.com/segpub/segpub/internal/state"
)

//go:embed templates/*.html static/*
var assets embed.FS

// DefaultPreviewTimeout bounds an audience preview (explain and why run the
// whole audience query).
const DefaultPreviewTimeout = 2 * time.Minute

// Database is a database the console reads, shown by name with its URL
// redacted (no password).
type Database struct {
	Name, Redacted string
}

// Config configures the console.
type Config struct {
	// State is segpub's own database: the run ledger, the campaigns, the
	// recorded events and dead letters.
	State *pgxpool.Pool
	// Audience is how the preview reads audiences: the same database, CSV
	// opener and limits the worker runs jobs with, from the caller (a
	// preview must read no file a run would refuse). Pool nil: no preview.
	Audience publish.Config
	// Jobs opens the job queue, where resumed runs and replayed dead
	// letters go, and the message store that holds a replayed job over
	// the queue's limit (nil: such a job cannot be replayed). It is called
	// on the first resume or replay, so a console that is only read opens
	// no queue. Nil: resume and replay are unavailable.
	Jobs func(context.Context) (claimcheck.Sender, msgstore.Store, error)
	// Token is what actions, and pages that show people's data, need.
	// Empty: every action is refused and such data is withheld.
	Token string
	// Hosts are the host names (a Host header's, without the port) the
	// console answers to; any other is refused before anything else runs,
	// so a page that rebinds its own name to the console's address reads
	// nothing. Default: DefaultHosts.
	Hosts []string
	// TrustProxy: the console is behind a proxy that sets
	// X-Forwarded-Proto, and a request it says came over TLS gets Secure
	// cookies. Off: only a request that came over TLS itself does.
	TrustProxy bool
	// SessionLifetime is how long a sign-in lasts. Default:
	// DefaultSessionLifetime.
	SessionLifetime time.Duration
	// MaxJobBytes bounds a claim-checked job fetched from the message
	// store for a replay. Default: job.DefaultMaxJobBytes.
	MaxJobBytes int64
	// Databases are shown in the footer, redacted by the caller.
	Databases []Database
	// PreviewTimeout bounds an audience preview. Default:
	// DefaultPreviewTimeout.
	PreviewTimeout time.Duration
	Logger         *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// WriteTimeout is the write bound of a server of a console whose preview
// is bounded by previewTimeout (0: DefaultPreviewTimeout): the preview
// and a margin to render it.
func WriteTimeout(previewTimeout time.Duration) time.Duration {
	return cmp.Or(previewTimeout, DefaultPreviewTimeout) + 30*time.Second
}

// DefaultHosts are the host names a console answers to when Config.Hosts
// is empty: the loopback names.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// DefaultSessionLifetime is how long a sign-in lasts.
const DefaultSessionLifetime = 12 * time.Hour

func (c *Config) validate() error {
	switch {
	case c.State == nil:
		return errors.New("console: State is required")
	case c.PreviewTimeout < 0:
		return fmt.Errorf("console: PreviewTimeout %s is negative", c.PreviewTimeout)
	case c.SessionLifetime < 0:
		return fmt.Errorf("console: SessionLifetime %s is negative", c.SessionLifetime)
	case c.MaxJobBytes < 0:
		return fmt.Errorf("console: MaxJobBytes %d is negative", c.MaxJobBytes)
	}
	for i, h := range c.Hosts {
		if hostName(h) == "" {
			return fmt.Errorf("console: Hosts[%d] %q is not a host name", i, h)
		}
	}
	return nil
}

// Console serves the console's pages.
type Console struct {
	cfg       Config
	log       *slog.Logger
	led       *ledger.Ledger
	campaigns *scheduler.Store
	records   *state.Records
	pages     map[string]*template.Template
	handler   http.Handler
	// previews holds a slot while a preview runs: one at a time, as it
	// runs the whole audience query.
	previews chan struct{}

	// hosts is Config.Hosts as hostName gives them.
	hosts    map[string]bool
	sessions *sessions
	signIns  *limiter
	// flashKey signs the messages result pages show (doneURL).
	flashKey [32]byte

	jobsMu sync.Mutex
	queue  claimcheck.Sender
	store  msgstore.Store
}

// jobs returns the job queue and message store, opened on first use.
func (c *Console) jobs(ctx context.Context) (claimcheck.Sender, msgstore.Store, error) {
	c.jobsMu.Lock()
	defer c.jobsMu.Unlock()
	if c.queue == nil {
		q, st, err := c.cfg.Jobs(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("open the job queue: %w", err)
		}
		c.queue, c.store = q, st
	}
	return c.queue, c.store, nil
}

// New returns the console, creating the tables it reads if needed.
func New(ctx context.Context, cfg Config) (*Console, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.PreviewTimeout == 0 {
		cfg.PreviewTimeout = DefaultPreviewTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.SessionLifetime = cmp.Or(cfg.SessionLifetime, DefaultSessionLifetime)
	cfg.MaxJobBytes = cmp.Or(cfg.MaxJobBytes, job.DefaultMaxJobBytes)
	if len(cfg.Hosts) == 0 {
		cfg.Hosts = DefaultHosts
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	led, err := ledger.New(ctx, cfg.State)
	if err != nil {
		return nil, err
	}
	store, err := scheduler.NewStore(ctx, cfg.State)
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, log: log, led: led, campaigns: store, records: state.RecordsOn(cfg.State), previews: make(chan struct{}, 1), hosts: map[string]bool{},
		sessions: newSessions(cfg.SessionLifetime, cfg.Now), signIns: newLimiter(signInFailures, signInWindow, cfg.Now)}
	for _, h := range cfg.Hosts {
		c.hosts[hostName(h)] = true
	}
	_, _ = rand.Read(c.flashKey[:])
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.handler = c.routes()
	return c, nil
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/runs", http.StatusFound) })
	mux.HandleFunc("GET /runs", c.runsPage)
	mux.HandleFunc("GET /runs/{id}", c.runPage)
	mux.HandleFunc("GET /campaigns", c.campaignsPage)
	mux.HandleFunc("GET /dead-letters", c.deadLettersPage)
	mux.HandleFunc("GET /dead-letters/{id}", c.deadLetterPage)
	// GET shows the form and runs nothing: the preview reads the
	// audience, so it is a POST, with the CSRF value of a session when a
	// token is set, under the cross-origin checks.
	mux.HandleFunc("GET /preview", c.previewForm)
	mux.HandleFunc("POST /preview", c.previewPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
	mux.HandleFunc("POST /runs/{id}/{verb}", c.action(c.controlRun))
	mux.HandleFunc("POST /campaigns/{id}/{verb}", c.action(c.controlCampaign))
	mux.HandleFunc("POST /dead-letters/{id}/replay", c.action(c.replay))
	// Cross-origin POSTs (a page elsewhere submitting a form to the
	// console) are refused before any handler runs.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.refuse(w, r, http.StatusForbidden, "cross-origin request refused")
	}))
	return c.checkHost(limitBodies(securityHeaders(cop.Handler(mux))))
}

// Request body limits: a pasted job for the preview, a small form
// otherwise. Every body is bounded, whoever sends it.
const (
	maxPreviewBody = 4 << 20
	maxFormBody    = 64 << 10
)

func limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(maxFormBody)
		if r.URL.Path == "/preview" {
			limit = maxPreviewBody
		}
		if r.ContentLength > limit {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// checkHost refuses a request whose Host is not one of the console's
// names, before anything else: a page on another site that rebinds its
// name to the console's address gets nothing, and its POSTs, same-origin
// to the browser, never reach a handler.
func (c *Console) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.hosts[hostName(r.Host)] {
			c.log.Warn("console: request for another host refused", "host", r.Host, "remote", r.RemoteAddr)
			http.Error(w, "misdirected request: this console does not answer to that host name", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostName is a Host header's or a configured name's host, lower case,
// without port, brackets or trailing dot; "" when it is not one.
func hostName(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")), ".")
	if h == "" || strings.ContainsAny(h, "/\\@ \t\r\n") {
		return ""
	}
	return h
}

// securityHeaders sets headers that keep the pages from being framed or
// running script from anywhere but the console itself.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

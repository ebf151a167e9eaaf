// Package console is segpub's operator console: a few server-rendered
// pages (html/template, one stylesheet and a few lines of script, embedded
// in the binary) over the run ledger, the scheduler's campaigns, the
// recorded dead letters and run events, and explain/why. Reading needs no
// credentials; every action that changes state is a POST that needs the
// console token and passes the cross-origin checks (docs/console.md).
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/ddl"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/scheduler"
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
	// Audience is the audience database, for the audience preview. Nil:
	// no preview.
	Audience *pgxpool.Pool
	// Jobs opens the job queue, where resumed runs and replayed dead
	// letters go, and the message store that holds a replayed job over
	// the queue's limit (nil: such a job cannot be replayed). It is called
	// on the first resume or replay, so a console that is only read opens
	// no queue. Nil: resume and replay are unavailable.
	Jobs func(context.Context) (claimcheck.Sender, msgstore.Store, error)
	// Token is what actions need. Empty: every action is refused.
	Token string
	// Databases are shown in the footer, redacted by the caller.
	Databases []Database
	// PreviewTimeout bounds an audience preview. Default:
	// DefaultPreviewTimeout.
	PreviewTimeout time.Duration
	Logger         *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (c *Config) validate() error {
	switch {
	case c.State == nil:
		return errors.New("console: State is required")
	case c.PreviewTimeout < 0:
		return fmt.Errorf("console: PreviewTimeout %s is negative", c.PreviewTimeout)
	}
	return nil
}

// Console serves the console's pages.
type Console struct {
	cfg       Config
	log       *slog.Logger
	led       *ledger.Ledger
	campaigns *scheduler.Store
	pages     map[string]*template.Template
	handler   http.Handler
	// previews holds a slot while a preview runs: one at a time, as it
	// runs the whole audience query.
	previews chan struct{}

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
	if err := ddl.Apply(ctx, cfg.State, "console tables", Schema); err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, log: log, led: led, campaigns: store, previews: make(chan struct{}, 1)}
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
	mux.HandleFunc("GET /preview", c.previewPage)
	// A preview changes nothing: no token, but a POST (a pasted job can be
	// long) and so under the cross-origin checks.
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
	return securityHeaders(cop.Handler(mux))
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

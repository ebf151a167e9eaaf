package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/console"
	"github.com/segpub/segpub/internal/endpoint"
	"github.com/segpub/segpub/internal/httpserve"
	"github.com/segpub/segpub/internal/msgstore"
)

// consoleSettings are the operator console's settings (docs/console.md).
type consoleSettings struct {
	addr, token, hosts string
	trustProxy         bool
	sessionLifetime    time.Duration
}

// DefaultConsoleAddr is where `segpub console` and `segpub demo` serve the
// console; serve has none unless --console-addr is set.
const DefaultConsoleAddr = "127.0.0.1:8080"

func (cs *consoleSettings) register(d *decls, defAddr string) {
	help := "address of the operator console (docs/console.md)"
	if defAddr == "" {
		help += "; empty: no console"
	}
	d.String(&cs.addr, "console-addr", "SEGPUB_CONSOLE_ADDR", defAddr, help)
	d.String(&cs.token, "console-token", "SEGPUB_CONSOLE_TOKEN", "", "token the console's actions (pause, resume, cancel, replay) and its pages of people's data (preview, dead-letter bodies) need; empty: read-only, no people's data")
	d.String(&cs.hosts, "console-hosts", "SEGPUB_CONSOLE_HOSTS", "", "comma-separated host names the console answers to (the Host header, port ignored); empty: the --console-addr host and localhost, 127.0.0.1, ::1")
	d.Bool(&cs.trustProxy, "console-trust-proxy", "SEGPUB_CONSOLE_TRUST_PROXY", false, "the console is behind a proxy: its X-Forwarded-Proto (https: Secure cookies) and X-Forwarded-For (sign-in limits) are believed", nil)
	d.Duration(&cs.sessionLifetime, "console-session-lifetime", "SEGPUB_CONSOLE_SESSION_LIFETIME", console.DefaultSessionLifetime, "how long a console sign-in lasts")
}

// hostList is the host names the console answers to: --console-hosts, or
// the listen address's host (unless it is every interface) and the
// loopback names.
func (cs *consoleSettings) hostList() ([]string, error) {
	if cs.hosts != "" {
		var out []string
		for _, h := range strings.Split(cs.hosts, ",") {
			if h = strings.TrimSpace(h); h == "" || strings.ContainsAny(h, "/@ ") {
				return nil, fmt.Errorf("--console-hosts ($SEGPUB_CONSOLE_HOSTS): %q is not a host name", h)
			}
			out = append(out, h)
		}
		return out, nil
	}
	out := slices.Clone(console.DefaultHosts)
	host, _, err := net.SplitHostPort(cs.addr)
	if err != nil {
		return nil, fmt.Errorf("--console-addr ($SEGPUB_CONSOLE_ADDR): %w", err)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		out = append(out, host)
	}
	return out, nil
}

// config is the console's configuration from these settings.
func (cs *consoleSettings) config(log *slog.Logger) (console.Config, error) {
	if cs.sessionLifetime <= 0 {
		return console.Config{}, fmt.Errorf("--console-session-lifetime ($SEGPUB_CONSOLE_SESSION_LIFETIME): %s is not positive", cs.sessionLifetime)
	}
	hosts, err := cs.hostList()
	if err != nil {
		return console.Config{}, err
	}
	if cs.token == "" && !loopback(cs.addr) {
		log.Warn("console without a token on an address others reach: read-only, and people's data (preview, dead-letter bodies) is not shown; set SEGPUB_CONSOLE_TOKEN",
			"addr", cs.addr)
	}
	return console.Config{Token: cs.token, Hosts: hosts, TrustProxy: cs.trustProxy, SessionLifetime: cs.sessionLifetime, Logger: log}, nil
}

// loopback reports whether addr listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// consoleServer is a console listening on its address.
type consoleServer struct {
	srv *http.Server
	url string
}

// start opens what the console needs on the service's databases and job
// queue and serves it; nil when no address is set.
func (cs *consoleSettings) start(ctx context.Context, svc *service, s *settings, log *slog.Logger) (*consoleServer, error) {
	if cs.addr == "" {
		return nil, nil
	}
	// Opened on the first resume or replay: a console that is only read
	// (or `segpub console` beside no serve) starts no embedded JetStream.
	jobs := func(ctx context.Context) (claimcheck.Sender, msgstore.Store, error) {
		q, err := svc.opener.Queue(ctx, s.jobQueueURL, endpoint.Jobs)
		if err != nil {
			return nil, nil, fmt.Errorf("job queue: %w", err)
		}
		store, err := svc.opener.Store(ctx, s.storeURL)
		if err != nil {
			return nil, nil, fmt.Errorf("message store: %w", err)
		}
		return q, store, nil
	}
	state := s.databaseURL
	if s.stateURL != "" {
		state = s.stateURL
	}
	cfg, err := cs.config(log)
	if err != nil {
		return nil, err
	}
	cfg.State, cfg.Audience, cfg.Jobs, cfg.MaxJobBytes = svc.state, svc.reads, jobs, s.maxJobBytes
	cfg.Databases = []console.Database{{Name: "audience", Redacted: redactDB(s.databaseURL)}, {Name: "state", Redacted: redactDB(state)}}
	c, err := console.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return serveConsole(c, cs.addr, log)
}

// serveConsole serves a console on addr.
func serveConsole(h http.Handler, addr string, log *slog.Logger) (*consoleServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--console-addr ($SEGPUB_CONSOLE_ADDR): listen on %s: %w", addr, err)
	}
	srv := httpserve.Server(h, console.WriteTimeout(0))
	go func() { _ = srv.Serve(ln) }()
	cs := &consoleServer{srv: srv, url: "http://" + ln.Addr().String() + "/"}
	log.Info("serving the console", "url", cs.url)
	return cs, nil
}

func (cs *consoleServer) stop(ctx context.Context) {
	if cs == nil {
		return
	}
	if err := cs.srv.Shutdown(ctx); err != nil {
		_ = cs.srv.Close()
	}
}

// recorder records what the console shows of the service's runs: run
// events, throughput samples and dead letters (internal/console).
func (s *settings) recorder(ctx context.Context, svc *service, log *slog.Logger) (*console.Recorder, error) {
	return console.NewRecorder(ctx, console.RecorderConfig{Pool: svc.state, Retention: s.retainRuns, Logger: log})
}

func (a *App) consoleCmd() *cobra.Command {
	cmd, d := a.newCmd("console", "serve the operator console in the browser against the service's databases")
	var s settings
	var cs consoleSettings
	cs.register(d, DefaultConsoleAddr)
	s.register(d)
	d.hideExcept("console-addr", "console-token", "console-hosts", "console-trust-proxy", "console-session-lifetime", "csv-root", "csv-max-bytes", "database-url", "state-url", "job-queue-url", "message-store-url", "data-dir",
		"db-stall-timeout", "verbose", "json-logs")
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runConsole(ctx, a.env, &s, &cs) })
	return cmd
}

// runConsole is `segpub console`: the console alone, until interrupted.
func runConsole(ctx context.Context, env *Env, s *settings, cs *consoleSettings) int {
	if cs.addr == "" {
		return fail(env, "console", fmt.Errorf("--console-addr ($SEGPUB_CONSOLE_ADDR) is empty"))
	}
	log := s.logger(env)
	svc, err := s.open(ctx, log)
	if err != nil {
		return fail(env, "console", err)
	}
	defer svc.close()
	srv, err := cs.start(ctx, svc, s, log)
	if err != nil {
		return fail(env, "console", err)
	}
	fmt.Fprintf(env.stdout(), "console: %s\n", srv.url)
	<-ctx.Done()
	stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.stop(stop)
	return ExitOK
}

// interactive reports whether a person is at the keyboard: standard input
// is a terminal.
func (e *Env) interactive() bool {
	f, ok := e.Stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

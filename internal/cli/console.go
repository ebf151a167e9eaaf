package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/segpub/segpub/internal/console"
	"github.com/segpub/segpub/internal/service"
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

// service is the service's console configuration from the settings;
// the service gives the console its databases, audience reads and job
// queue.
func (cs *consoleSettings) service(s *settings, log *slog.Logger) (service.ConsoleConfig, error) {
	if cs.addr == "" {
		return service.ConsoleConfig{}, nil
	}
	cfg, err := cs.config(log)
	if err != nil {
		return service.ConsoleConfig{}, err
	}
	state := s.databaseURL
	if s.stateURL != "" {
		state = s.stateURL
	}
	cfg.MaxJobBytes = s.maxJobBytes
	cfg.Databases = []console.Database{{Name: "audience", Redacted: redactDB(s.databaseURL)}, {Name: "state", Redacted: redactDB(state)}}
	return service.ConsoleConfig{Addr: cs.addr, Config: cfg}, nil
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
	con, err := cs.service(s, log)
	if err != nil {
		return fail(env, "console", err)
	}
	svc, err := s.open(ctx, log, func(c *service.Config) {
		c.Console = con
		// The console's requests are short: its stop waits no longer.
		c.ShutdownGrace = 5 * time.Second
	})
	if err != nil {
		return fail(env, "console", err)
	}
	defer svc.close()
	if err := svc.Start(ctx); err != nil {
		return fail(env, "console", err)
	}
	fmt.Fprintf(env.stdout(), "console: %s\n", svc.ConsoleURL())
	<-ctx.Done()
	_ = svc.Stop()
	return ExitOK
}

// interactive reports whether a person is at the keyboard: standard input
// is a terminal.
func (e *Env) interactive() bool {
	f, ok := e.Stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

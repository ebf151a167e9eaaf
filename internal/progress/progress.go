// Package progress reports how far a long-running command has got: a bar
// with rate and ETA redrawn in place on a terminal, plain log lines
// otherwise (where redraws would flood a log file).
package progress

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Config configures a Reporter.
type Config struct {
	// Label names what is counted ("users", "messages").
	Label string
	// Total is the expected count; 0 when unknown.
	Total int64
	// Out is where the bar goes; a bar is drawn only when it is a
	// terminal. Nil: no bar.
	Out io.Writer
	// Logger receives the plain lines when Out is not a terminal. Nil:
	// no lines.
	Logger *slog.Logger
	// Every is how often a plain line is logged. Default: 5s.
	Every time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Reporter counts and reports. Add may be called from many goroutines.
type Reporter struct {
	cfg      Config
	terminal bool
	n        atomic.Int64
	start    time.Time

	mu   sync.Mutex
	last time.Time
}

// New starts a Reporter.
func New(cfg Config) *Reporter {
	cfg.Every = cmp.Or(cfg.Every, 5*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Reporter{cfg: cfg, start: cfg.Now()}
	if f, ok := cfg.Out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.terminal = true
	}
	return r
}

// IsTerminal reports whether the reporter draws a bar.
func (r *Reporter) IsTerminal() bool { return r.terminal }

// Add counts n more and reports if it is time to.
func (r *Reporter) Add(n int64) { r.report(r.n.Add(n), false) }

// Set sets the count and reports if it is time to.
func (r *Reporter) Set(n int64) {
	r.n.Store(n)
	r.report(n, false)
}

// Done reports the final count.
func (r *Reporter) Done() {
	r.report(r.n.Load(), true)
	if r.terminal {
		fmt.Fprintln(r.cfg.Out)
	}
}

func (r *Reporter) report(n int64, final bool) {
	now := r.cfg.Now()
	every := r.cfg.Every
	if r.terminal {
		every = 100 * time.Millisecond
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !final && now.Sub(r.last) < every {
		return
	}
	r.last = now
	elapsed := now.Sub(r.start)
	switch {
	case r.terminal:
		fmt.Fprintf(r.cfg.Out, "\r%s\x1b[K", Line(r.cfg.Label, n, r.cfg.Total, elapsed, 30))
	case r.cfg.Logger != nil:
		args := []any{"label", r.cfg.Label, "count", n, "rate_per_s", int64(rate(n, elapsed))}
		if r.cfg.Total > 0 {
			args = append(args, "total", r.cfg.Total)
		}
		r.cfg.Logger.Info("progress", args...)
	}
}

func rate(n int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(n) / elapsed.Seconds()
}

// Line renders one progress line: a bar of width cells when the total is
// known, the count, the rate and the time left.
func Line(label string, n, total int64, elapsed time.Duration, width int) string {
	r := rate(n, elapsed)
	if total <= 0 {
		return fmt.Sprintf("%s %d  %s/s", label, n, human(r))
	}
	frac := min(float64(n)/float64(total), 1)
	filled := int(frac * float64(width))
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	eta := "--"
	if r > 0 && n < total {
		eta = (time.Duration(float64(total-n)/r) * time.Second).Round(time.Second).String()
	} else if n >= total {
		eta = "0s"
	}
	return fmt.Sprintf("%s %s %3.0f%% %d/%d  %s/s  ETA %s", label, bar, frac*100, n, total, human(r), eta)
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

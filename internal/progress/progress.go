// Package progress reports how far a long-running command has got: a bar
// with rate and ETA redrawn in place on a terminal, plain log lines
// otherwise (where redraws would flood a log file). On a terminal, a
// Terminal keeps the bar on the bottom line and every log line above it.
package progress

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"math"
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
	// *Terminal or a terminal file. Nil: no bar.
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
	cfg   Config
	term  *Terminal // nil: not a terminal
	n     atomic.Int64
	start time.Time

	mu       sync.Mutex
	last     time.Time
	lastN    int64
	reported bool
	done     bool
}

// New starts a Reporter.
func New(cfg Config) *Reporter {
	cfg.Every = cmp.Or(cfg.Every, 5*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Reporter{cfg: cfg, start: cfg.Now()}
	switch out := cfg.Out.(type) {
	case *Terminal:
		r.term = out
	case *os.File:
		if term.IsTerminal(int(out.Fd())) {
			r.term = NewTerminal(out)
		}
	}
	return r
}

// IsTerminal reports whether the reporter draws a bar.
func (r *Reporter) IsTerminal() bool { return r.term != nil }

// Add counts n more and reports if it is time to.
func (r *Reporter) Add(n int64) { r.report(r.n.Add(n), false) }

// Set sets the count and reports if it is time to.
func (r *Reporter) Set(n int64) {
	r.n.Store(n)
	r.report(n, false)
}

// Done reports the final count: the bar is drawn once more and left above
// what follows; a log line is written unless the last one said the same.
func (r *Reporter) Done() { r.report(r.n.Load(), true) }

func (r *Reporter) report(n int64, final bool) {
	now := r.cfg.Now()
	every := r.cfg.Every
	if r.term != nil {
		every = 100 * time.Millisecond
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done || !final && now.Sub(r.last) < every {
		return
	}
	r.done = final
	if final && r.term == nil && r.reported && n == r.lastN {
		return
	}
	r.last, r.lastN, r.reported = now, n, true
	elapsed := now.Sub(r.start)
	switch {
	case r.term != nil:
		line := Line(r.cfg.Label, n, r.cfg.Total, elapsed, 30)
		if final {
			r.term.finish(line)
		} else {
			r.term.draw(line)
		}
	case r.cfg.Logger != nil:
		// One decimal: a few runs a second must not read as 0/s.
		args := []any{"label", r.cfg.Label, "count", n, "rate_per_s", math.Round(rate(n, elapsed)*10) / 10}
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
		left := time.Duration(float64(total-n) / r * float64(time.Second))
		eta = left.Round(time.Second).String()
		if left < time.Second {
			eta = "<1s" // not "0s" while work is left
		}
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
	case v >= 10 || v == 0:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	// Slow counts (runs, indexes) keep two significant digits: not 0/s.
	return fmt.Sprintf("%.2g", v)
}

// Terminal is one terminal's display: at most one progress line, always
// the last line, and everything else written above it. Log output written
// through a Terminal (or through a writer from Above) clears the progress
// line, is written, and the line is redrawn, so the two never mix.
type Terminal struct {
	*display
	w io.Writer // where Write goes
}

type display struct {
	mu   sync.Mutex
	out  io.Writer // the terminal the progress line is drawn on
	line string    // the progress line shown; "" when none
}

// NewTerminal returns the display of a terminal; writes go to it too.
func NewTerminal(out io.Writer) *Terminal {
	return &Terminal{display: &display{out: out}, w: out}
}

// Above returns a writer to w (another stream on the same terminal, such as
// standard output) that keeps out of the progress line's way.
func (t *Terminal) Above(w io.Writer) *Terminal { return &Terminal{display: t.display, w: w} }

// Write writes p above the progress line.
func (t *Terminal) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.line != "" {
		fmt.Fprint(t.out, "\r\x1b[K")
	}
	n, err := t.w.Write(p)
	if t.line != "" {
		fmt.Fprint(t.out, t.line)
	}
	return n, err
}

// draw replaces the progress line.
func (d *display) draw(line string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "\r%s\x1b[K", line)
	d.line = line
}

// finish draws the line a last time and leaves it, like a log line.
func (d *display) finish(line string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "\r%s\x1b[K\n", line)
	d.line = ""
}

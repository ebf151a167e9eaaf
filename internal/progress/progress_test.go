package progress

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	t.Parallel()
	got := Line("users", 250_000, 1_000_000, 10*time.Second, 20)
	for _, want := range []string{"users ", " 25% ", "250000/1000000", "25.0k/s", "ETA 30s", strings.Repeat("█", 5) + strings.Repeat("░", 15)} {
		if !strings.Contains(got, want) {
			t.Errorf("line %q lacks %q", got, want)
		}
	}
	if got := Line("rows", 1500, 0, 3*time.Second, 20); got != "rows 1500  500/s" {
		t.Errorf("unknown total: %q", got)
	}
	if got := Line("rows", 10, 10, time.Second, 4); !strings.Contains(got, "100%") || !strings.Contains(got, "ETA 0s") {
		t.Errorf("done: %q", got)
	}
}

// Plain output is one log line per interval, however often Add is called.
func TestPlainRateLimited(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	r := New(Config{Label: "rows", Total: 100, Out: &buf, Logger: slog.New(slog.NewTextHandler(&buf, nil)),
		Every: 5 * time.Second, Now: func() time.Time { return now }})
	if r.IsTerminal() {
		t.Fatal("a buffer is not a terminal")
	}
	for i := 0; i < 100; i++ {
		now = now.Add(100 * time.Millisecond) // 10 s in all
		r.Add(1)
	}
	r.Done()
	lines := strings.Count(buf.String(), "msg=progress")
	if lines != 3 { // at 5 s, at 10 s, and the final one
		t.Fatalf("want 3 lines, got %d:\n%s", lines, buf.String())
	}
	if !strings.Contains(buf.String(), "count=100") || strings.Contains(buf.String(), "\r") {
		t.Fatalf("final line: %s", buf.String())
	}
}

// screen replays terminal output: \r returns to the start of the line,
// ESC[K clears to its end. It returns the lines left on the screen.
func screen(s string) []string {
	var lines []string
	var cur []rune
	col := 0
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "\x1b[K"):
			cur = cur[:col]
			i += 3
		case s[i] == '\r':
			col = 0
			i++
		case s[i] == '\n':
			lines = append(lines, string(cur))
			cur, col = nil, 0
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if col < len(cur) {
				cur[col] = r
			} else {
				cur = append(cur, r)
			}
			col++
			i += size
		}
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}

// On a terminal, log lines go above the one progress line, never into it,
// whichever stream (standard error or output) they are written to.
func TestTerminalLogsAbove(t *testing.T) {
	t.Parallel()
	var tty bytes.Buffer
	term := NewTerminal(&tty)
	log := slog.New(slog.NewTextHandler(term, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	now := time.Unix(0, 0)
	r := New(Config{Label: "rows", Total: 10, Out: term, Logger: log, Now: func() time.Time { return now }})
	if !r.IsTerminal() {
		t.Fatal("a Terminal is a terminal")
	}
	stdout := term.Above(&tty)
	for i := 1; i <= 10; i++ {
		now = now.Add(time.Second)
		r.Add(1)
		if i == 4 {
			log.Info("hello")
		}
		if i == 7 {
			stdout.Write([]byte("a result line\n"))
		}
	}
	r.Done()
	r.Done()
	got := screen(tty.String())
	if len(got) != 3 || got[0] != "level=INFO msg=hello" || got[1] != "a result line" ||
		!strings.HasPrefix(got[2], "rows ") || !strings.Contains(got[2], "10/10") {
		t.Fatalf("screen:\n%s", strings.Join(got, "\n"))
	}
	// The last line is the bar, drawn once at the end.
	log.Info("after")
	if got := screen(tty.String()); len(got) != 4 || got[3] != "level=INFO msg=after" {
		t.Fatalf("after done:\n%s", strings.Join(got, "\n"))
	}
}

// The final count is logged once, even when the last regular line had it.
func TestPlainFinalOnce(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	r := New(Config{Label: "candidates", Out: &buf, Logger: slog.New(slog.NewTextHandler(&buf, nil)), Now: func() time.Time { return now }})
	now = now.Add(6 * time.Second)
	r.Set(1000)
	r.Done()
	if n := strings.Count(buf.String(), "count=1000"); n != 1 {
		t.Fatalf("final count logged %d times:\n%s", n, buf.String())
	}
}

// Slow counts show a rate, not 0/s.
func TestSlowRate(t *testing.T) {
	t.Parallel()
	if got := Line("runs", 3, 9, 10*time.Second, 10); !strings.Contains(got, " 0.3/s ") {
		t.Fatalf("line %q", got)
	}
	if got := Line("runs", 1, 9, 40*time.Second, 10); !strings.Contains(got, " 0.025/s ") {
		t.Fatalf("line %q", got)
	}
}

// Work left is never 0s away.
func TestETANotZeroWhileWorkIsLeft(t *testing.T) {
	t.Parallel()
	if got := Line("runs", 4, 9, 400*time.Millisecond, 10); !strings.Contains(got, "ETA <1s") {
		t.Fatalf("line %q", got)
	}
	if got := Line("runs", 1, 9, 10*time.Second, 10); !strings.Contains(got, "ETA 1m20s") {
		t.Fatalf("line %q", got)
	}
}

package progress

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
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

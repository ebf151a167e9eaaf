package fileurl

import (
	"path/filepath"
	"strings"
	"testing"
)

// Only absolute paths without a host pass; the errors say what to write.
func TestParse(t *testing.T) {
	t.Parallel()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if p, q, err := Parse("file:///tmp/{channel}.ndjson?sync=end"); err != nil || p != "/tmp/{channel}.ndjson" || q.Get("sync") != "end" {
		t.Fatalf("got %q %v %v", p, q, err)
	}
	for raw, want := range map[string]string{
		"http://x/y":             "not a file:// URL",
		"file:relative/path":     "want file://" + abs("relative/path"),
		"file://out/x.ndjson":    `got host "out": want file://` + abs("out/x.ndjson"),
		"file://localhost/tmp/x": "no host",
		"file://":                "no path",
	} {
		if _, _, err := Parse(raw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", raw, err, want)
		}
	}
}

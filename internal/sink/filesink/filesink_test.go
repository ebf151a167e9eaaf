package filesink

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/sink/sinktest"
)

func TestSuite(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness {
		dir := t.TempDir()
		s, err := New("file://" + dir + "/out/{channel}.ndjson?sync=batch")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return sinktest.Harness{Sink: s, Ordered: true, Read: func(t *testing.T, ch job.Channel, want int) [][]byte {
			data, err := os.ReadFile(filepath.Join(dir, "out", string(ch)+".ndjson"))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))[:min(want, bytes.Count(data, []byte("\n")))]
		}}
	})
}

func TestBadURLs(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"http://x/y":         "not a file:// URL",
		"file:relative/path": "want file://" + abs(t, "relative/path"),
		// file://out/... names host "out": it used to write /x.ndjson.
		"file://out/{channel}.ndjson":       "want file://" + abs(t, "out/{channel}.ndjson"),
		"file://fileserver/tmp/{channel}.x": "no host",
		"file://localhost/tmp/x":            "no host",
		"file://":                           "no path",
		"file:///tmp/x?sync=no":             `sync="no"`,
	} {
		if _, err := New(url); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", url, err, want)
		}
	}
}

func abs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

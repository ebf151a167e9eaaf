//go:build unix

package publish

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/job"
)

// csvJob is an email job reading url.
func (b *testBundle) csvJob(url string) string {
	return b.jobJSON(`"channel":"email","audience":{"type":"csv","url":"` + url + `"}`)
}

// wantCSVRejection runs url and wants a rejection at campaign.audience.url
// containing want, with nothing published.
func (b *testBundle) wantCSVRejection(url, want string) {
	b.t.Helper()
	_, sink, err := b.tryRun(b.csvJob(url))
	if !job.IsRejection(err) || !strings.HasPrefix(err.Error(), csvPath+": ") || !strings.Contains(err.Error(), want) {
		b.t.Errorf("%s: got %v, want a rejection at %s containing %q", url, err, csvPath, want)
	}
	if len(sink.msgs) != 0 {
		b.t.Errorf("%s: published %d messages", url, len(sink.msgs))
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// In serve, file:// audiences are confined to SEGPUB_CSV_ROOT: no "..", no
// absolute path outside it, no symlink leading out of it (the file or a
// directory on the way), and none at all without a root.
func TestCSVConfinedToRoot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := t.TempDir()
	root, outside := filepath.Join(base, "csv"), filepath.Join(base, "secret")
	for _, d := range []string{root, outside, filepath.Join(root, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "ok.csv"), "email\nin@x.com\n")
	writeFile(t, filepath.Join(root, "sub", "deep.csv"), "email\ndeep@x.com\n")
	// Shaped like a CSV with an email column, so that reading it would
	// publish its content: /etc/shadow's stand-in.
	writeFile(t, filepath.Join(outside, "shadow"), "email,hash\nroot@x.com,$6$secret\n")
	for link, target := range map[string]string{
		"out.csv":    filepath.Join(outside, "shadow"),
		"rel.csv":    "../secret/shadow",
		"outdir":     outside,
		"inside.csv": "sub/deep.csv",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// A FIFO inside the root is refused too, without waiting for a writer
	// (a blocked open would hang the test, not pass it).
	if err := syscall.Mkfifo(filepath.Join(root, "fifo.csv"), 0o644); err != nil {
		t.Fatal(err)
	}
	runner, err := New(Config{Pool: b.pool, Open: FileOpener{Confined: true, Root: root}.Open})
	if err != nil {
		t.Fatal(err)
	}
	b.runner = runner
	for url, want := range map[string]string{
		"file://" + root + "/../secret/shadow":        `".." is not allowed`,
		"file://" + root + "/sub/../../secret/shadow": `".." is not allowed`,
		"file://" + outside + "/shadow":               "outside the CSV directory (SEGPUB_CSV_ROOT)",
		"file://" + root:                              "outside the CSV directory",
		"file:///etc/shadow":                          "outside the CSV directory",
		"file://" + root + "/out.csv":                 "a symlink leads outside the CSV directory",
		"file://" + root + "/rel.csv":                 "a symlink leads outside the CSV directory",
		"file://" + root + "/outdir/shadow":           "a symlink leads outside the CSV directory",
		"file://" + root + "/sub":                     "not a regular file (a directory)",
		"file://" + root + "/missing.csv":             "no such file",
		"file://localhost" + root + "/ok.csv":         `got host "localhost"`,
	} {
		b.wantCSVRejection(url, want)
	}
	for url, dest := range map[string]string{
		"file://" + root + "/ok.csv":       "in@x.com",
		"file://" + root + "/sub/deep.csv": "deep@x.com",
		"file://" + root + "/inside.csv":   "deep@x.com",
	} {
		_, sink := b.run(b.csvJob(url))
		equalStrings(t, url, destinations(sink), []string{dest})
	}

	// No root: file:// audiences are off.
	if b.runner, err = New(Config{Pool: b.pool, Open: FileOpener{Confined: true}.Open}); err != nil {
		t.Fatal(err)
	}
	b.wantCSVRejection("file://"+root+"/ok.csv", "disabled in this service")
}

// The one-shot command line reads any local file the operator names, but a
// host, a FIFO (which would block forever) or a device is refused.
func TestCSVFileKinds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.csv")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Opening a FIFO for reading waits for a writer: run the job aside and
	// give up when the test's context ends, instead of hanging the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		j, err := job.Parse([]byte(b.csvJob("file://" + fifo)))
		if err == nil {
			_, err = b.runner.Run(ctx, j, &captureSink{})
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !job.IsRejection(err) || !strings.Contains(err.Error(), "not a regular file (a FIFO)") {
			t.Errorf("FIFO: got %v", err)
		}
	case <-ctx.Done():
		t.Fatal("opening a FIFO blocked the run")
	}
	b.wantCSVRejection("file:///dev/zero", "not a regular file (a character device)")
	b.wantCSVRejection("file://evil.example"+dir+"/x.csv", `no host (file:///path); got host "evil.example"`)
	b.wantCSVRejection("file://segpub-data/x.csv", `got host "segpub-data"`)
}

// A file over SEGPUB_CSV_MAX_BYTES is refused before it is read; a source
// that is not a file (S3) is cut off once it has sent one byte too many;
// a record over MaxCSVRecordBytes is refused without holding it whole (a
// sparse file used to be read as one gigantic line).
func TestCSVSizeLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := t.TempDir()
	content := "email\n" + strings.Repeat("a@x.com\n", 100)
	writeFile(t, filepath.Join(dir, "list.csv"), content)
	url := "file://" + dir + "/list.csv"
	var err error
	if b.runner, err = New(Config{Pool: b.pool, Open: FileOpener{MaxBytes: int64(len(content)) - 1}.Open}); err != nil {
		t.Fatal(err)
	}
	b.wantCSVRejection(url, "over the limit of 805 (SEGPUB_CSV_MAX_BYTES)")
	if b.runner, err = New(Config{Pool: b.pool, Open: FileOpener{MaxBytes: int64(len(content))}.Open}); err != nil {
		t.Fatal(err)
	}
	b.run(b.csvJob(url))

	// Any source: the engine stops reading at the cap.
	var served int64
	stream := func(_ context.Context, _ string) (io.ReadCloser, error) {
		return io.NopCloser(&countingReader{r: strings.NewReader(content), n: &served}), nil
	}
	if b.runner, err = New(Config{Pool: b.pool, Open: stream, MaxCSVBytes: 100}); err != nil {
		t.Fatal(err)
	}
	b.wantCSVRejection("s3://bucket/list.csv", "over the limit of 100 bytes (SEGPUB_CSV_MAX_BYTES)")
	if served > 101 {
		t.Errorf("read %d bytes of a source capped at 100", served)
	}

	// Long records, in the default runner.
	if b.runner, err = New(Config{Pool: b.pool}); err != nil {
		t.Fatal(err)
	}
	sparse := filepath.Join(dir, "sparse.csv")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b.wantCSVRejection("file://"+sparse, "record 1 is over 65536 bytes")
	wide := "email,note\n" + "a@x.com," + strings.Repeat("n", MaxCSVRecordBytes-20) + "\n" +
		"b@x.com,\"" + strings.Repeat("line\n", MaxCSVRecordBytes/5) + "\"\n"
	writeFile(t, filepath.Join(dir, "wide.csv"), wide)
	b.wantCSVRejection("file://"+dir+"/wide.csv", "record 3 is over 65536 bytes")
	writeFile(t, filepath.Join(dir, "wide.csv"), wide[:strings.Index(wide, "b@x.com")])
	_, sink := b.run(b.csvJob("file://" + dir + "/wide.csv"))
	equalStrings(t, "wide row", destinations(sink), []string{"a@x.com"})
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	*c.n += int64(k)
	return k, err
}

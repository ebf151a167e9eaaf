package filesink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
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

// msgs is a batch of n one-line messages of a run, numbered from first.
func msgs(run publish.RunID, first, n int) *publish.Batch {
	b := &publish.Batch{Channel: job.ChannelEmail, Run: run, First: int64(first)}
	for i := first; i < first+n; i++ {
		line := fmt.Sprintf(`{"request_id":%q,"n":%d}`, run.RequestID, i)
		b.Messages = append(b.Messages, publish.Message{Body: []byte(line)})
		b.Data = append(append(b.Data, line...), '\n')
	}
	return b
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// runTo stages, publishes and (when commit) commits a run of n messages in
// batches of 10, resuming after done.
func runTo(t *testing.T, s *Sink, run publish.RunID, done, n int, commit bool) error {
	t.Helper()
	ctx := context.Background()
	if err := s.Begin(ctx, run, job.ChannelEmail, int64(done)); err != nil {
		return err
	}
	for i := done; i < n; i += 10 {
		if err := s.Publish(ctx, msgs(run, i, min(10, n-i))); err != nil {
			t.Fatal(err)
		}
	}
	if !commit {
		return nil
	}
	return s.Commit(ctx, run, job.ChannelEmail)
}

// An interrupted run leaves only a .partial file; its rerun (same
// request_id) writes each message once; running the request again is
// refused as a rejection; another request_id appends.
func TestRerunsDoNotDuplicate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "email.ndjson")
	r1 := publish.RunID{RequestID: "r-1"}

	s, err := New("file://" + dir + "/{channel}.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if err := runTo(t, s, r1, 0, 35, false); err != nil {
		t.Fatal(err)
	}
	s.Close() // interrupted: never committed
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("an interrupted run left %s (%v)", target, err)
	}
	if got := lines(t, target+".r-1.partial"); len(got) != 35 {
		t.Fatalf("staging file has %d lines, want 35", len(got))
	}

	s, _ = New("file://" + dir + "/{channel}.ndjson")
	defer s.Close()
	if err := runTo(t, s, r1, 0, 50, true); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, target); len(got) != 50 || got[49] != `{"request_id":"r-1","n":49}` {
		t.Fatalf("after the rerun the file has %d lines, want 50 (last %q)", len(got), got[len(got)-1])
	}
	if _, err := os.Stat(target + ".r-1.partial"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the staging file is still there (%v)", err)
	}

	err = runTo(t, s, r1, 0, 50, true)
	if !job.IsRejection(err) || !strings.Contains(err.Error(), `request_id "r-1"`) {
		t.Fatalf("a second run of r-1: %v, want a rejection naming it", err)
	}
	if got := lines(t, target); len(got) != 50 {
		t.Fatalf("a refused rerun changed the file: %d lines", len(got))
	}

	if err := runTo(t, s, publish.RunID{RequestID: "r-2"}, 0, 20, true); err != nil {
		t.Fatal(err)
	}
	got := lines(t, target)
	if len(got) != 70 || got[0] != `{"request_id":"r-1","n":0}` || got[69] != `{"request_id":"r-2","n":19}` {
		t.Fatalf("another request_id did not append: %d lines", len(got))
	}
}

// A resumed run keeps the messages up to its checkpoint and drops those
// written after it, so the file holds each message once.
func TestResumeCutsBackToCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := New("file://" + dir + "/{channel}.ndjson?sync=batch")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run := publish.RunID{RequestID: "sched:c@2026-12-01T00:00:00Z"}
	if err := runTo(t, s, run, 0, 45, false); err != nil { // crashed with 30 checkpointed
		t.Fatal(err)
	}
	if err := runTo(t, s, run, 30, 60, true); err != nil {
		t.Fatal(err)
	}
	got := lines(t, filepath.Join(dir, "email.ndjson"))
	if len(got) != 60 {
		t.Fatalf("%d lines, want 60", len(got))
	}
	for i, l := range got {
		if want := fmt.Sprintf(`{"request_id":%q,"n":%d}`, run.RequestID, i); l != want {
			t.Fatalf("line %d = %s, want %s", i, l, want)
		}
	}
	// A checkpoint ahead of the staging file cannot be resumed.
	if err := runTo(t, s, publish.RunID{RequestID: "r-9"}, 10, 20, false); err == nil || !strings.Contains(err.Error(), "holds 0 messages") {
		t.Fatalf("resume past the staging file: %v", err)
	}
}

// Partitions of one request are committed one by one; a whole rerun of the
// request, or a partition committed twice, is refused.
func TestPartitionsCommitSeparately(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := New("file://" + dir + "/{channel}.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := publish.RunID{RequestID: "r", Part: "from:"}
	b := publish.RunID{RequestID: "r", Part: "from:u5"}
	if err := runTo(t, s, a, 0, 5, true); err != nil {
		t.Fatal(err)
	}
	if err := runTo(t, s, b, 0, 5, true); err != nil {
		t.Fatal(err)
	}
	if err := runTo(t, s, b, 0, 5, true); !job.IsRejection(err) {
		t.Fatalf("partition committed twice: %v", err)
	}
	if err := runTo(t, s, publish.RunID{RequestID: "r"}, 0, 10, true); !job.IsRejection(err) {
		t.Fatalf("whole rerun of a partitioned request: %v", err)
	}
	if got := lines(t, filepath.Join(dir, "email.ndjson")); len(got) != 10 {
		t.Fatalf("%d lines, want 10", len(got))
	}
}

// A commit that died while the file grew (the manifest lists the run, the
// file holds part of it) is cut off, and the run can be committed again.
func TestRecoversPartlyAppendedRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "email.ndjson")
	s, err := New("file://" + dir + "/{channel}.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := runTo(t, s, publish.RunID{RequestID: "r-1"}, 0, 10, true); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(target)
	// r-2 was recorded, then the process died having appended 7 bytes.
	entry := fmt.Sprintf(`{"request_id":"r-2","offset":%d,"bytes":500,"messages":10,"committed_at":"2026-12-01T00:00:00Z"}`+"\n", before.Size())
	f, _ := os.OpenFile(target+manifestSuffix, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(entry)
	f.Close()
	f, _ = os.OpenFile(target, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"reque`)
	f.Close()

	if err := runTo(t, s, publish.RunID{RequestID: "r-2"}, 0, 10, true); err != nil {
		t.Fatalf("rerun of the run whose commit died: %v", err)
	}
	got := lines(t, target)
	if len(got) != 20 || got[10] != `{"request_id":"r-2","n":0}` {
		t.Fatalf("%d lines (line 11: %q), want 20 with r-2 whole after r-1", len(got), got[min(10, len(got)-1)])
	}
}

// Files and directories the sink creates are its user's alone: messages
// carry people's addresses and tokens.
func TestCreatedPrivate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "out")
	s, err := New("file://" + dir + "/{channel}.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	run := publish.RunID{RequestID: "r-private"}
	ctx := context.Background()
	if err := s.Begin(ctx, run, "email", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, &publish.Batch{Run: run, Channel: "email", Messages: []publish.Message{{Body: []byte(`{"to":"a@example.com"}`)}}, Data: []byte("{\"to\":\"a@example.com\"}\n")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, run, "email"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm()&0o077 != 0 {
		t.Errorf("directory %s is %v", dir, st.Mode().Perm())
	}
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v, want no access for group or others", e.Name(), info.Mode().Perm())
		}
	}
	if len(entries) == 0 {
		t.Fatal("nothing written")
	}
}

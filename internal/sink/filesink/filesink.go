// Package filesink writes channel messages to local files, one JSON message
// per line: the file:// destination of docs/cli.md, for operators,
// tests and laptops.
package filesink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/segpub/segpub/internal/fileurl"
	"github.com/segpub/segpub/internal/flock"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// Modes of what the sink creates: messages carry people's addresses and
// tokens, so only the service's own user reads them. A file that exists
// keeps its mode.
const (
	fileMode fs.FileMode = 0o600
	dirMode  fs.FileMode = 0o700
)

// Sink appends messages to the file its URL names for the batch's channel.
//
// A run's messages are staged: they go to NAME.<request_id>.partial beside
// the file NAME, and join NAME only when the run has completed (Commit), by
// a rename when NAME is new and by appending otherwise. NAME.runs, the
// file's manifest, lists the runs NAME holds (request_id, partition, byte
// offset and length): a run already listed is refused (a rejection), so a
// rerun of a request_id never duplicates its messages, while other
// request_ids keep appending. An interrupted run leaves only its .partial
// file, which its rerun or resumption starts from (cut back to the run's
// checkpoint). Processes sharing a file take turns through a lock on the
// manifest.
type Sink struct {
	pattern string
	// sync is when files are fsynced: "batch" (before each batch is
	// acknowledged), "end" (when the run is committed or the sink is
	// closed) or "" (never: the page cache is enough for tests, demos
	// and side-by-side diffs).
	sync string

	mu sync.Mutex
	// files are the channel files of batches that name no run (callers
	// other than the engine), appended to directly.
	files map[job.Channel]*os.File
	// runs are the staged runs.
	runs map[stageKey]*stage
}

type stageKey struct {
	run publish.RunID
	ch  job.Channel
}

// stage is a run's staging file.
type stage struct {
	f        *os.File
	target   string
	messages int64
}

const (
	// manifestSuffix names a file's manifest: the runs it holds.
	manifestSuffix = ".runs"
	partialSuffix  = ".partial"
)

// manifestEntry is one line of a manifest: a committed run.
type manifestEntry struct {
	RequestID string `json:"request_id"`
	Part      string `json:"part,omitempty"`
	// Offset and Bytes place the run's messages in the file.
	Offset      int64     `json:"offset"`
	Bytes       int64     `json:"bytes"`
	Messages    int64     `json:"messages"`
	CommittedAt time.Time `json:"committed_at"`
}

// New parses a file:// URL whose path may contain {channel}. The query
// parameter sync=batch fsyncs after every batch, for runs whose checkpoints
// must never run ahead of the disk; sync=end fsyncs once at the end.
func New(rawURL string) (*Sink, error) {
	path, query, err := fileurl.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("output URL %q: %w", rawURL, err)
	}
	mode := query.Get("sync")
	switch mode {
	case "", "batch", "end":
	default:
		return nil, fmt.Errorf("output URL %q: sync=%q (want batch or end)", rawURL, mode)
	}
	return &Sink{pattern: path, sync: mode, files: map[job.Channel]*os.File{}, runs: map[stageKey]*stage{}}, nil
}

// Path returns the file a channel's messages go to.
func (s *Sink) Path(ch job.Channel) string {
	return strings.ReplaceAll(s.pattern, "{channel}", string(ch))
}

func (s *Sink) file(ch job.Channel) (*os.File, error) {
	if f, ok := s.files[ch]; ok {
		return f, nil
	}
	path := s.Path(ch)
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("create directory for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return nil, err // an *fs.PathError: it says "open <path>" itself
	}
	s.files[ch] = f
	return f, nil
}

// Publish appends a batch: one write of the batch's newline-separated
// messages, to the run's staging file (or, for a batch that names no run,
// to the channel's file).
func (s *Sink) Publish(_ context.Context, b *publish.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f *os.File
	if b.Run == (publish.RunID{}) {
		var err error
		if f, err = s.file(b.Channel); err != nil {
			return err
		}
	} else {
		st := s.runs[stageKey{b.Run, b.Channel}]
		if st == nil {
			return fmt.Errorf("file output: run %q was not begun", b.Run.RequestID)
		}
		f = st.f
		st.messages += int64(len(b.Messages))
	}
	if _, err := f.Write(b.Data); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if s.sync == "batch" {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
	}
	return nil
}

// Begin stages a run: it refuses a run the channel's file holds already,
// and opens the run's staging file, keeping its first done messages (a
// resumed run's) and dropping any after them.
func (s *Sink) Begin(_ context.Context, run publish.RunID, ch job.Channel, done int64) error {
	target := s.Path(ch)
	if err := os.MkdirAll(filepath.Dir(target), dirMode); err != nil {
		return fmt.Errorf("create directory for %s: %w", target, err)
	}
	err := withManifest(target, func(m *manifest) error { return m.refuse(run) })
	if err != nil {
		return err
	}
	path := partialPath(target, run)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	keep, err := lineOffset(f, done)
	if err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(keep); err != nil {
		f.Close()
		return fmt.Errorf("cut %s back to %d messages: %w", path, done, err)
	}
	if _, err := f.Seek(keep, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("seek %s: %w", path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := stageKey{run, ch}
	if old := s.runs[key]; old != nil {
		old.f.Close()
	}
	s.runs[key] = &stage{f: f, target: target, messages: done}
	return nil
}

// lineOffset returns the byte offset after the first n lines of f.
func lineOffset(f *os.File, n int64) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("seek %s: %w", f.Name(), err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var off, lines int64
	for lines < n {
		chunk, err := r.ReadSlice('\n')
		off += int64(len(chunk))
		if err == nil {
			lines++
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%s holds %d messages, but the run's checkpoint counts %d written: delete it and run the job again", f.Name(), lines, n)
		}
		return 0, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return off, nil
}

// Commit makes a staged run part of its channel's file: it records the run
// in the file's manifest, then renames the staging file to the file (when
// the file is new) or appends it, and removes it.
func (s *Sink) Commit(_ context.Context, run publish.RunID, ch job.Channel) error {
	key := stageKey{run, ch}
	s.mu.Lock()
	st := s.runs[key]
	delete(s.runs, key)
	s.mu.Unlock()
	if st == nil {
		return fmt.Errorf("file output: run %q was not begun", run.RequestID)
	}
	defer st.f.Close()
	if s.sync != "" {
		if err := st.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", st.f.Name(), err)
		}
	}
	size, err := st.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("seek %s: %w", st.f.Name(), err)
	}
	return withManifest(st.target, func(m *manifest) error {
		if err := m.refuse(run); err != nil {
			return err
		}
		offset := m.size
		// The manifest first: if the process dies while the file grows,
		// the next writer finds the file shorter than the manifest says
		// and cuts the partial run off (manifest.recover).
		if err := m.add(manifestEntry{RequestID: run.RequestID, Part: run.Part, Offset: offset, Bytes: size,
			Messages: st.messages, CommittedAt: time.Now().UTC()}, s.sync != ""); err != nil {
			return err
		}
		if offset == 0 {
			if err := os.Rename(st.f.Name(), st.target); err != nil {
				return fmt.Errorf("rename %s to %s: %w", st.f.Name(), st.target, err)
			}
			return syncDir(st.target, s.sync != "")
		}
		if err := appendFile(st.target, st.f, s.sync != ""); err != nil {
			return err
		}
		return os.Remove(st.f.Name())
	})
}

// appendFile appends src (from its start) to the file at path.
func appendFile(path string, src *os.File, fsync bool) error {
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer dst.Close()
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", src.Name(), err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		return fmt.Errorf("append %s to %s: %w", src.Name(), path, err)
	}
	if fsync {
		if err := dst.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", path, err)
		}
	}
	return dst.Close()
}

// syncDir fsyncs the directory of path, so a rename survives a crash.
func syncDir(path string, fsync bool) error {
	if !fsync {
		return nil
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("open directory of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	return nil
}

// partialPath is the staging file of a run's messages bound for target.
func partialPath(target string, run publish.RunID) string {
	name := url.PathEscape(run.RequestID)
	if run.Part != "" {
		name += "." + url.PathEscape(run.Part)
	}
	if len(name) > 120 {
		sum := sha256.Sum256([]byte(run.RequestID + "\x00" + run.Part))
		name = hex.EncodeToString(sum[:16])
	}
	return target + "." + name + partialSuffix
}

// manifest is a file's list of committed runs, read under its lock.
type manifest struct {
	path    string
	target  string
	entries []manifestEntry
	// size is the target file's size once recovered.
	size int64
}

// withManifest runs fn with target's manifest loaded and locked, after
// recovering from a commit that died part-way.
func withManifest(target string, fn func(*manifest) error) error {
	m := &manifest{path: target + manifestSuffix, target: target}
	l, err := flock.Acquire(m.path)
	if err != nil {
		return err
	}
	defer l.Release()
	if err := m.load(); err != nil {
		return err
	}
	if err := m.recover(); err != nil {
		return err
	}
	return fn(m)
}

func (m *manifest) load() error {
	data, err := os.ReadFile(m.path)
	if err != nil {
		return fmt.Errorf("read %s: %w", m.path, err)
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e manifestEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("%s line %d: %w", m.path, i+1, err)
		}
		m.entries = append(m.entries, e)
	}
	info, err := os.Stat(m.target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		m.size = 0
	case err != nil:
		return fmt.Errorf("stat %s: %w", m.target, err)
	default:
		m.size = info.Size()
	}
	return nil
}

// recover drops the runs the file does not wholly hold: a commit that died
// while the file grew (its staging file is still there for the rerun), or a
// file someone truncated or removed. A partly appended run is cut off.
func (m *manifest) recover() error {
	n := len(m.entries)
	for n > 0 && m.entries[n-1].Offset+m.entries[n-1].Bytes > m.size {
		n--
	}
	if n == len(m.entries) {
		return nil
	}
	if cut := m.entries[n].Offset; cut < m.size {
		if err := os.Truncate(m.target, cut); err != nil {
			return fmt.Errorf("cut the partly written run off %s: %w", m.target, err)
		}
		m.size = cut
	}
	m.entries = m.entries[:n]
	var b bytes.Buffer
	for _, e := range m.entries {
		line, _ := json.Marshal(e)
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(m.path, b.Bytes(), fileMode); err != nil {
		return fmt.Errorf("rewrite %s: %w", m.path, err)
	}
	return nil
}

// refuse returns a rejection when the file holds run already: the same
// request_id whole, or the same partition of it, or (for a whole run) any
// partition of it.
func (m *manifest) refuse(run publish.RunID) error {
	for _, e := range m.entries {
		if e.RequestID != run.RequestID {
			continue
		}
		if e.Part == "" || run.Part == "" || e.Part == run.Part {
			return job.Rejectf("request_id", "%s already holds the %d messages of request_id %q (committed %s, listed in %s): running it again would write them twice; use a new request_id or another output file",
				m.target, e.Messages, run.RequestID, e.CommittedAt.Format(time.RFC3339), filepath.Base(m.path))
		}
	}
	return nil
}

// add appends an entry to the manifest.
func (m *manifest) add(e manifestEntry, fsync bool) error {
	line, _ := json.Marshal(e)
	f, err := os.OpenFile(m.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("open %s: %w", m.path, err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", m.path, err)
	}
	if fsync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", m.path, err)
		}
	}
	m.entries = append(m.entries, e)
	return f.Close()
}

// Close closes every file, syncing it first unless the URL said otherwise.
// Staged runs that were not committed keep their staging files.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for ch, f := range s.files {
		if s.sync != "" {
			if err := f.Sync(); err != nil && first == nil {
				first = fmt.Errorf("sync %s: %w", f.Name(), err)
			}
		}
		if err := f.Close(); err != nil && first == nil {
			first = fmt.Errorf("close %s: %w", f.Name(), err)
		}
		delete(s.files, ch)
	}
	for key, st := range s.runs {
		if s.sync != "" {
			if err := st.f.Sync(); err != nil && first == nil {
				first = fmt.Errorf("sync %s: %w", st.f.Name(), err)
			}
		}
		if err := st.f.Close(); err != nil && first == nil {
			first = fmt.Errorf("close %s: %w", st.f.Name(), err)
		}
		delete(s.runs, key)
	}
	return first
}

// Capabilities: a file takes lines of any length, one batch at a time, and
// stages each run until it has completed.
func (s *Sink) Capabilities() publish.Capabilities { return publish.Capabilities{Staging: s} }

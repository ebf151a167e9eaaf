// Package filesink writes channel messages to local files, one JSON message
// per line: the file:// destination of CONTRACT.md section 8, for operators,
// tests and laptops.
package filesink

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// Sink appends messages to the file its URL names for the batch's channel.
type Sink struct {
	pattern string
	// sync is when files are fsynced: "batch" (before each batch is
	// acknowledged), "end" (when the sink is closed) or "" (never: the
	// page cache is enough for tests, demos and side-by-side diffs).
	sync string

	mu    sync.Mutex
	files map[job.Channel]*os.File
}

// New parses a file:// URL whose path may contain {channel}. The query
// parameter sync=batch fsyncs after every batch, for runs whose checkpoints
// must never run ahead of the disk; sync=end fsyncs once at the end.
func New(rawURL string) (*Sink, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse output URL %q: %w", rawURL, err)
	}
	if u.Scheme != "file" {
		return nil, fmt.Errorf("output URL %q: not a file:// URL", rawURL)
	}
	path := u.Path
	if u.Opaque != "" || path == "" {
		return nil, fmt.Errorf("output URL %q: want file:///absolute/path", rawURL)
	}
	mode := u.Query().Get("sync")
	switch mode {
	case "", "batch", "end":
	default:
		return nil, fmt.Errorf("output URL %q: sync=%q (want batch or end)", rawURL, mode)
	}
	return &Sink{pattern: path, sync: mode, files: map[job.Channel]*os.File{}}, nil
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
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create directory for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err // an *fs.PathError: it says "open <path>" itself
	}
	s.files[ch] = f
	return f, nil
}

// Publish appends a batch: one write of the batch's newline-separated
// messages.
func (s *Sink) Publish(_ context.Context, b *publish.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.file(b.Channel)
	if err != nil {
		return err
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

// Close closes every file, syncing it first unless the URL said otherwise.
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
	return first
}

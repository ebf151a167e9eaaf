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
	// syncEach makes every batch durable before it is acknowledged;
	// otherwise files are synced when the sink is closed.
	syncEach bool

	mu    sync.Mutex
	files map[job.Channel]*os.File
}

// New parses a file:// URL whose path may contain {channel}. The query
// parameter sync=batch fsyncs after every batch, for runs whose checkpoints
// must never run ahead of the disk.
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
	return &Sink{pattern: path, syncEach: u.Query().Get("sync") == "batch", files: map[job.Channel]*os.File{}}, nil
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
		return nil, fmt.Errorf("open %s: %w", path, err)
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
	if s.syncEach {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
	}
	return nil
}

// Close syncs and closes every file.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for ch, f := range s.files {
		if err := f.Sync(); err != nil && first == nil {
			first = fmt.Errorf("sync %s: %w", f.Name(), err)
		}
		if err := f.Close(); err != nil && first == nil {
			first = fmt.Errorf("close %s: %w", f.Name(), err)
		}
		delete(s.files, ch)
	}
	return first
}

package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/segpub/segpub/internal/fileurl"
	"github.com/segpub/segpub/internal/job"
)

// DefaultMaxCSVBytes is the largest CSV audience read (SEGPUB_CSV_MAX_BYTES):
// 10M rows of about 100 bytes. Files are streamed, so the cap bounds the
// time and I/O a job can demand, not memory.
const DefaultMaxCSVBytes int64 = 1 << 30

// MaxCSVRecordBytes bounds one CSV record (the header included). encoding/csv
// holds a whole record in memory however long it is, so without a bound one
// line of a sparse file fills the worker's memory. A record this large
// exceeds every channel's message size anyway.
const MaxCSVRecordBytes = 64 << 10

// FileOpener opens file:// CSV audiences: regular files only, never a FIFO
// (which would block the worker), a device or a directory.
type FileOpener struct {
	// Confined means the URLs come from jobs of another system (serve):
	// only files inside Root, after symlinks are resolved, are opened, and
	// none at all when Root is empty. Unconfined (the one-shot command
	// line) opens any local path the operator names.
	Confined bool
	// Root is the directory confined URLs must lie in
	// (SEGPUB_CSV_ROOT); check it with CheckCSVRoot first.
	Root string
	// MaxBytes rejects larger files before they are read. 0:
	// DefaultMaxCSVBytes.
	MaxBytes int64
}

// OpenFile opens any local file:// URL (the unconfined FileOpener with the
// default size cap).
func OpenFile(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	return FileOpener{}.Open(ctx, rawURL)
}

// CheckCSVRoot validates the SEGPUB_CSV_ROOT setting: an absolute path to an
// existing directory.
func CheckCSVRoot(root string) error {
	if root == "" {
		return nil
	}
	if !filepath.IsAbs(root) {
		return fmt.Errorf("%q is not an absolute path", root)
	}
	st, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("stat %s: %w", root, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", root)
	}
	return nil
}

// Open opens rawURL. Everything that is wrong with the URL or the file is a
// rejection: retrying cannot make a job's file acceptable.
func (o FileOpener) Open(_ context.Context, rawURL string) (io.ReadCloser, error) {
	if !strings.HasPrefix(rawURL, "file:") {
		return nil, job.Rejectf(csvPath, "cannot open %q here (file:// and s3:// URLs only)", rawURL)
	}
	// file://host/path would otherwise read /path on this machine.
	path, _, err := fileurl.Parse(rawURL)
	if err != nil {
		return nil, job.Rejectf(csvPath, "%s: %v", rawURL, err)
	}
	var f *os.File
	if o.Confined {
		f, err = o.openInRoot(rawURL, path)
	} else {
		f, err = os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
		err = openError(rawURL, err)
	}
	if err != nil {
		return nil, err
	}
	if err := o.check(f, rawURL); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openInRoot opens path through an os.Root, which refuses `..` and
// symlinks that lead out of the root whenever they are met, so a link
// swapped after a check cannot escape either.
func (o FileOpener) openInRoot(rawURL, path string) (*os.File, error) {
	if o.Root == "" {
		return nil, job.Rejectf(csvPath, "%s: file:// audiences are disabled in this service (an operator enables them under a directory with SEGPUB_CSV_ROOT)", rawURL)
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == ".." {
			return nil, job.Rejectf(csvPath, "%s: \"..\" is not allowed in a path", rawURL)
		}
	}
	rel, ok := within(o.Root, path)
	if !ok {
		// The root may be reached through a symlink (/data -> /mnt/data):
		// a URL naming the real path is inside too.
		if real, err := filepath.EvalSymlinks(o.Root); err == nil {
			rel, ok = within(real, path)
		}
	}
	if !ok {
		return nil, job.Rejectf(csvPath, "%s: outside the CSV directory (SEGPUB_CSV_ROOT)", rawURL)
	}
	root, err := os.OpenRoot(o.Root)
	if err != nil {
		return nil, fmt.Errorf("open CSV directory %s (SEGPUB_CSV_ROOT): %w", o.Root, err)
	}
	defer root.Close()
	f, err := root.OpenFile(rel, os.O_RDONLY|nonBlock, 0)
	if err != nil && isEscape(err) {
		return nil, job.Rejectf(csvPath, "%s: a symlink leads outside the CSV directory (SEGPUB_CSV_ROOT)", rawURL)
	}
	return f, openError(rawURL, err)
}

// within returns path relative to root when it lies strictly inside it.
func within(root, path string) (string, bool) {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(path))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", false
	}
	return rel, true
}

// isEscape reports os.Root's refusal of a path leaving the root. The os
// package does not export that error, only its text.
func isEscape(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}

// openError classifies an open failure: the machine running out of
// something is retried, anything else about the named file rejects the job.
func openError(rawURL string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return job.Rejectf(csvPath, "%s: no such file", rawURL)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.ENOMEM), errors.Is(err, syscall.EIO):
		return fmt.Errorf("open csv audience %s: %w", rawURL, err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is in the URL already
	}
	return job.Rejectf(csvPath, "%s: cannot open: %v", rawURL, err)
}

// check accepts an open file that is regular and within the size cap. It
// runs on the open descriptor (fstat), so the file checked is the file read.
func (o FileOpener) check(f *os.File, rawURL string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat csv audience %s: %w", rawURL, err)
	}
	if !st.Mode().IsRegular() {
		return job.Rejectf(csvPath, "%s: not a regular file (%s)", rawURL, fileKind(st.Mode()))
	}
	if max := o.maxBytes(); st.Size() > max {
		return job.Rejectf(csvPath, "%s: %d bytes, over the limit of %d (SEGPUB_CSV_MAX_BYTES)", rawURL, st.Size(), max)
	}
	return nil
}

func (o FileOpener) maxBytes() int64 {
	if o.MaxBytes > 0 {
		return o.MaxBytes
	}
	return DefaultMaxCSVBytes
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}

// Errors csvInput returns; the CSV reader passes them through and
// csvRows.read turns them into rejections.
var (
	errCSVTooLarge = errors.New("csv audience over its size limit")
	errCSVRecord   = errors.New("csv record over its size limit")
)

// csvInput bounds what any CSV source (file, S3) can make the engine read:
// max bytes in all, and about MaxCSVRecordBytes per record (the reader's
// 4 KiB buffer reads a little ahead, hence the slack; csvRows checks each
// record exactly).
type csvInput struct {
	r      io.Reader
	max    int64
	n      int64
	record int64
}

const csvReadAhead = 4096

func (in *csvInput) Read(p []byte) (int, error) {
	if in.n > in.max {
		return 0, errCSVTooLarge
	}
	recordLimit := int64(MaxCSVRecordBytes + csvReadAhead)
	if in.record > recordLimit {
		return 0, errCSVRecord
	}
	// Never read more than one byte past either limit.
	if room := min(in.max+1-in.n, recordLimit+1-in.record); int64(len(p)) > room {
		p = p[:room]
	}
	k, err := in.r.Read(p)
	in.n += int64(k)
	in.record += int64(k)
	if in.n > in.max {
		return k, errCSVTooLarge
	}
	return k, err
}

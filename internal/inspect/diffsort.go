package inspect

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// recordOverhead is what one buffered message costs beside its bytes: the
// record and its two slice headers.
const recordOverhead = 64

// spillBuffer is the read and write buffer of one spill file; a merge
// holds one per run.
const spillBuffer = 64 << 10

// spill owns the temporary directory of one comparison, made on first use.
type spill struct {
	parent string
	dir    string
	n      int
}

func (s *spill) create(kind string) (*spillWriter, error) {
	if s.dir == "" {
		dir, err := os.MkdirTemp(s.parent, "segpub-diff-")
		if err != nil {
			return nil, fmt.Errorf("diff: make spill directory: %w", err)
		}
		s.dir = dir
	}
	s.n++
	path := filepath.Join(s.dir, fmt.Sprintf("%s-%d", kind, s.n))
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("diff: create spill file: %w", err)
	}
	return &spillWriter{f: f, w: bufio.NewWriterSize(f, spillBuffer)}, nil
}

func (s *spill) close() error {
	if s.dir == "" {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("diff: remove spill directory: %w", err)
	}
	return nil
}

// spillWriter writes length-prefixed fields to a spill file.
type spillWriter struct {
	f   *os.File
	w   *bufio.Writer
	tmp [binary.MaxVarintLen64]byte
}

func (w *spillWriter) bytes(b []byte) error {
	n := binary.PutUvarint(w.tmp[:], uint64(len(b)))
	if _, err := w.w.Write(w.tmp[:n]); err != nil {
		return err
	}
	_, err := w.w.Write(b)
	return err
}

func (w *spillWriter) writeDiff(dest string, fields []string) error {
	if err := w.bytes([]byte(dest)); err != nil {
		return fmt.Errorf("diff: spill: %w", err)
	}
	if err := w.bytes([]byte(strings.Join(fields, "\x00"))); err != nil {
		return fmt.Errorf("diff: spill: %w", err)
	}
	return nil
}

// reopen flushes what was written and reads it back from the start.
func (w *spillWriter) reopen() (*spillReader, error) {
	if err := w.w.Flush(); err != nil {
		w.f.Close()
		return nil, fmt.Errorf("diff: spill: %w", err)
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		w.f.Close()
		return nil, fmt.Errorf("diff: spill: %w", err)
	}
	return &spillReader{f: w.f, r: bufio.NewReaderSize(w.f, spillBuffer)}, nil
}

type spillReader struct {
	f *os.File
	r *bufio.Reader
}

func (r *spillReader) close() { r.f.Close() }

// bytes reads one length-prefixed field; io.EOF only before a field.
func (r *spillReader) bytes() ([]byte, error) {
	n, err := binary.ReadUvarint(r.r)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, fmt.Errorf("diff: spill file cut short: %w", err)
	}
	return b, nil
}

func (r *spillReader) readDiff() (string, []string, error) {
	dest, err := r.bytes()
	if err != nil {
		return "", nil, err
	}
	fields, err := r.bytes()
	if err != nil {
		return "", nil, fmt.Errorf("diff: spill file cut short: %w", err)
	}
	return string(dest), strings.Split(string(fields), "\x00"), nil
}

// record is one message: its destination and its line as read.
type record struct {
	dest string
	raw  []byte
}

// sortByDestination reads a file of channel messages and returns its
// messages grouped by destination in sorted order; within a destination,
// in file order. Up to budget bytes are sorted in memory; a larger file is
// spilled as sorted runs and merged.
func sortByDestination(path string, budget int64, sp *spill) (*groups, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // an *fs.PathError: it says "open <path>" itself
	}
	defer f.Close()
	var (
		buf  []record
		size int64
		runs []*spillReader
	)
	closeRuns := func() {
		for _, r := range runs {
			r.close()
		}
	}
	flush := func() error {
		// Stable: a destination's messages keep their file order, so the
		// first one in the file is the first one merged.
		sort.SliceStable(buf, func(i, j int) bool { return buf[i].dest < buf[j].dest })
		w, err := sp.create("run")
		if err != nil {
			return err
		}
		for _, rec := range buf {
			if err := w.bytes([]byte(rec.dest)); err != nil {
				w.f.Close()
				return fmt.Errorf("diff: spill %s: %w", path, err)
			}
			if err := w.bytes(rec.raw); err != nil {
				w.f.Close()
				return fmt.Errorf("diff: spill %s: %w", path, err)
			}
		}
		rd, err := w.reopen()
		if err != nil {
			return err
		}
		runs = append(runs, rd)
		clear(buf)
		buf, size = buf[:0], 0
		return nil
	}
	r := bufio.NewReaderSize(f, 1<<20)
	for line := 1; ; line++ {
		raw, err := r.ReadBytes('\n')
		if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 {
			var m struct {
				Recipient map[string]any `json:"recipient"`
			}
			// A decoder, not Unmarshal: text after the first value on a
			// line is ignored, as it always was.
			if jerr := json.NewDecoder(bytes.NewReader(trimmed)).Decode(&m); jerr != nil {
				closeRuns()
				return nil, fmt.Errorf("%s:%d: not a JSON object: %v", path, line, jerr)
			}
			dest, derr := destination(m.Recipient)
			if derr != nil {
				closeRuns()
				return nil, fmt.Errorf("%s:%d: %v", path, line, derr)
			}
			buf = append(buf, record{dest: dest, raw: trimmed})
			size += int64(len(dest)+cap(raw)) + recordOverhead
			if size >= budget {
				if err := flush(); err != nil {
					closeRuns()
					return nil, err
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			closeRuns()
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if len(runs) == 0 {
		sort.SliceStable(buf, func(i, j int) bool { return buf[i].dest < buf[j].dest })
		return &groups{src: &memoryRun{recs: buf}}, nil
	}
	if len(buf) > 0 {
		if err := flush(); err != nil {
			closeRuns()
			return nil, err
		}
	}
	m := &merge{}
	for i, rd := range runs {
		fr := &fileRun{r: rd, order: i}
		ok, err := fr.advance()
		if err != nil {
			closeRuns()
			return nil, err
		}
		if ok {
			m.h = append(m.h, fr)
		} else {
			rd.close()
		}
	}
	heap.Init(&m.h)
	return &groups{src: m}, nil
}

// source yields records in destination order.
type source interface {
	next() (*record, error) // nil at the end
	close()
}

type memoryRun struct {
	recs []record
	i    int
}

func (m *memoryRun) next() (*record, error) {
	if m.i == len(m.recs) {
		return nil, nil
	}
	m.i++
	return &m.recs[m.i-1], nil
}

func (m *memoryRun) close() {}

// fileRun is one spilled run being merged; order breaks ties between runs
// so that a destination's messages keep their file order.
type fileRun struct {
	r     *spillReader
	order int
	cur   record
}

func (f *fileRun) advance() (bool, error) {
	dest, err := f.r.bytes()
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	raw, err := f.r.bytes()
	if err != nil {
		return false, fmt.Errorf("diff: spill file cut short: %w", err)
	}
	f.cur = record{dest: string(dest), raw: raw}
	return true, nil
}

type runHeap []*fileRun

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if h[i].cur.dest != h[j].cur.dest {
		return h[i].cur.dest < h[j].cur.dest
	}
	return h[i].order < h[j].order
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*fileRun)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge is a k-way merge of sorted runs.
type merge struct {
	h   runHeap
	out record
}

func (m *merge) next() (*record, error) {
	if len(m.h) == 0 {
		return nil, nil
	}
	top := m.h[0]
	m.out = top.cur
	ok, err := top.advance()
	if err != nil {
		return nil, err
	}
	if ok {
		heap.Fix(&m.h, 0)
	} else {
		heap.Pop(&m.h)
		top.r.close()
	}
	return &m.out, nil
}

func (m *merge) close() {
	for _, r := range m.h {
		r.r.close()
	}
	m.h = nil
}

// group is one destination of a sorted file: its first message in file
// order and how many it has.
type group struct {
	dest  string
	first []byte
	n     int
}

// groups turns a sorted source into one group per destination.
type groups struct {
	src  source
	peek *record
	done bool
}

func (g *groups) next() (*group, error) {
	if g.done {
		return nil, nil
	}
	if g.peek == nil {
		rec, err := g.src.next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			g.done = true
			return nil, nil
		}
		g.peek = rec
	}
	out := &group{dest: g.peek.dest, first: g.peek.raw, n: 1}
	for {
		rec, err := g.src.next()
		if err != nil {
			return nil, err
		}
		if rec == nil {
			g.peek, g.done = nil, true
			return out, nil
		}
		if rec.dest != out.dest {
			// A merge reuses its record; keep a copy.
			cp := *rec
			g.peek = &cp
			return out, nil
		}
		out.n++
	}
}

func (g *groups) close() { g.src.close() }

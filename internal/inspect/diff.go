package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/segpub/segpub/internal/contact"
)

// DiffReport compares two channel outputs by destination.
type DiffReport struct {
	A, B      string      `json:"-"`
	InA       int         `json:"messages_a"`
	InB       int         `json:"messages_b"`
	Same      int         `json:"same"`
	OnlyInA   []string    `json:"only_in_a"`
	OnlyInB   []string    `json:"only_in_b"`
	Different []FieldDiff `json:"different"`
	// RepeatedA and RepeatedB list destinations a file holds more than
	// once: a publisher that messages someone twice.
	RepeatedA []string `json:"repeated_in_a"`
	RepeatedB []string `json:"repeated_in_b"`
	// Shifted lists the time fields (send_at) that B holds moved by one
	// same amount in every message: two runs of one job without
	// scheduled_at each take their own "now". Such a field is reported
	// here once, not as a difference of every message.
	Shifted []Shift `json:"shifted"`
}

// Shift is a time field moved by the same amount in every message.
type Shift struct {
	Field    string `json:"field"`
	By       string `json:"by"`
	ByMS     int64  `json:"by_ms"`
	Messages int    `json:"messages"`
}

// Differ reports whether the outputs differ once uniform shifts are set
// aside.
func (r *DiffReport) Differ() bool {
	return len(r.OnlyInA)+len(r.OnlyInB)+len(r.Different)+len(r.RepeatedA)+len(r.RepeatedB) > 0
}

// FieldDiff is one destination whose messages differ.
type FieldDiff struct {
	Destination string   `json:"destination"`
	Fields      []string `json:"fields"`
}

// DiffConfig configures a comparison of two channel outputs.
type DiffConfig struct {
	// Ignore lists fields not compared (dotted paths, e.g. idempotency_key).
	Ignore []string
	// MemoryBytes bounds the messages of one file held in memory while it
	// is sorted by destination; beyond it, sorted runs are spilled to
	// TempDir and merged. Default DefaultDiffMemoryBytes.
	MemoryBytes int64
	// TempDir holds the spilled runs; default os.TempDir().
	TempDir string
}

// DefaultDiffMemoryBytes keeps two 1M-message outputs well under 256 MiB
// of peak RSS (docs/benchmarks.md, "segpub diff"): the Go heap grows to
// about twice what is live, and the merge holds little beside the budget.
const DefaultDiffMemoryBytes = 48 << 20

func (c *DiffConfig) validate() error {
	if c.MemoryBytes < 0 {
		return fmt.Errorf("diff: MemoryBytes must not be negative, got %d", c.MemoryBytes)
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = DefaultDiffMemoryBytes
	}
	return nil
}

// Diff reads two files of channel messages (one JSON object per line) and
// compares them by destination: the normalized email, phone number or
// device token of each message's recipient. Fields listed in ignore (dotted
// paths, e.g. idempotency_key) are not compared.
func Diff(pathA, pathB string, ignore []string) (*DiffReport, error) {
	return DiffFiles(DiffConfig{Ignore: ignore}, pathA, pathB)
}

// DiffFiles is Diff in bounded memory: each file is sorted by destination
// (an external merge sort when it outgrows cfg.MemoryBytes), then the two
// sorted streams are walked side by side, so only one destination's
// messages of each file are decoded at a time. The report is the one an
// in-memory comparison gives: the first message of a destination in file
// order is the one compared, and destinations are listed in sorted order.
func DiffFiles(cfg DiffConfig, pathA, pathB string) (*DiffReport, error) {
	r, _, err := diffFiles(cfg, pathA, pathB)
	return r, err
}

// diffFiles is DiffFiles, also saying how many spill files it wrote.
func diffFiles(cfg DiffConfig, pathA, pathB string) (_ *DiffReport, spilled int, err error) {
	if err := cfg.validate(); err != nil {
		return nil, 0, err
	}
	sp := &spill{parent: cfg.TempDir}
	defer func() {
		spilled = sp.n
		if cerr := sp.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	a, err := sortByDestination(pathA, cfg.MemoryBytes, sp)
	if err != nil {
		return nil, 0, err
	}
	defer a.close()
	b, err := sortByDestination(pathB, cfg.MemoryBytes, sp)
	if err != nil {
		return nil, 0, err
	}
	defer b.close()
	r, err := compareSorted(pathA, pathB, a, b, cfg.Ignore, sp)
	return r, 0, err
}

// compareSorted walks two destination-sorted streams side by side.
func compareSorted(pathA, pathB string, a, b *groups, ignore []string, sp *spill) (*DiffReport, error) {
	r := &DiffReport{A: pathA, B: pathB, OnlyInA: []string{}, OnlyInB: []string{}, Different: []FieldDiff{},
		Shifted: []Shift{}}
	skip := map[string]bool{}
	for _, f := range ignore {
		skip[f] = true
	}
	// A field is a uniform shift only when it differs by one same amount
	// in every message compared, the first one included: the candidates
	// come from the first destination in both and only shrink.
	var shifts map[string]time.Duration
	both := 0
	// Destinations whose messages differ wait in a spill file until the
	// shifts are known: in the common case (send_at moved everywhere)
	// every destination differs until the end says it does not.
	var differ *spillWriter
	ga, errA := a.next()
	gb, errB := b.next()
	for {
		if errA != nil {
			return nil, errA
		}
		if errB != nil {
			return nil, errB
		}
		if ga == nil && gb == nil {
			break
		}
		switch {
		case gb == nil || (ga != nil && ga.dest < gb.dest):
			r.InA += ga.n
			r.OnlyInA = append(r.OnlyInA, ga.dest)
			if ga.n > 1 {
				r.RepeatedA = append(r.RepeatedA, ga.dest)
			}
			ga, errA = a.next()
			continue
		case ga == nil || gb.dest < ga.dest:
			r.InB += gb.n
			r.OnlyInB = append(r.OnlyInB, gb.dest)
			if gb.n > 1 {
				r.RepeatedB = append(r.RepeatedB, gb.dest)
			}
			gb, errB = b.next()
			continue
		}
		r.InA += ga.n
		r.InB += gb.n
		if ga.n > 1 {
			r.RepeatedA = append(r.RepeatedA, ga.dest)
		}
		if gb.n > 1 {
			r.RepeatedB = append(r.RepeatedB, gb.dest)
		}
		ma, err := decodeMessage(ga.first)
		if err != nil {
			return nil, fmt.Errorf("%s: destination %s: %w", pathA, ga.dest, err)
		}
		mb, err := decodeMessage(gb.first)
		if err != nil {
			return nil, fmt.Errorf("%s: destination %s: %w", pathB, gb.dest, err)
		}
		fields := differing("", ma, mb, skip)
		if both == 0 {
			shifts = map[string]time.Duration{}
			for _, f := range fields {
				if d, ok := timeShift(ma, mb, f); ok && d != 0 {
					shifts[f] = d
				}
			}
		} else {
			for f, by := range shifts {
				if d, ok := timeShift(ma, mb, f); !ok || d != by {
					delete(shifts, f)
				}
			}
		}
		both++
		if len(fields) > 0 {
			if differ == nil {
				if differ, err = sp.create("different"); err != nil {
					return nil, err
				}
			}
			if err := differ.writeDiff(ga.dest, fields); err != nil {
				return nil, err
			}
		}
		ga, errA = a.next()
		gb, errB = b.next()
	}
	for f, by := range shifts {
		sign := "+"
		if by < 0 {
			sign = ""
		}
		r.Shifted = append(r.Shifted, Shift{Field: f, By: sign + by.String(), ByMS: by.Milliseconds(), Messages: both})
	}
	sort.Slice(r.Shifted, func(i, j int) bool { return r.Shifted[i].Field < r.Shifted[j].Field })
	if differ != nil {
		rd, err := differ.reopen()
		if err != nil {
			return nil, err
		}
		defer rd.close()
		for {
			dest, fields, err := rd.readDiff()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			kept := fields[:0]
			for _, f := range fields {
				if _, ok := shifts[f]; !ok {
					kept = append(kept, f)
				}
			}
			if len(kept) > 0 {
				r.Different = append(r.Different, FieldDiff{Destination: dest, Fields: kept})
			}
		}
	}
	r.Same = both - len(r.Different)
	return r, nil
}

// timeShift is how far the RFC 3339 time at path moved from a to b.
func timeShift(a, b any, path string) (time.Duration, bool) {
	ta, okA := timeAt(a, path)
	tb, okB := timeAt(b, path)
	if !okA || !okB {
		return 0, false
	}
	return tb.Sub(ta), true
}

func decodeMessage(raw []byte) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// timeAt reads an RFC 3339 time at a dotted path.
func timeAt(m any, path string) (time.Time, bool) {
	for _, k := range strings.Split(path, ".") {
		obj, ok := m.(map[string]any)
		if !ok {
			return time.Time{}, false
		}
		m = obj[k]
	}
	s, ok := m.(string)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// destination is a message's de-duplication key, from its recipient, normalized as segpub
// normalizes it, so a publisher that writes the raw form still matches.
func destination(rec map[string]any) (string, error) {
	if rec == nil {
		return "", fmt.Errorf("no recipient")
	}
	if e, ok := rec["email"].(string); ok {
		_, key, st := contact.Email([]byte(e), false)
		if st != contact.OK {
			return "email:" + e, nil
		}
		return "email:" + string(key), nil
	}
	if p, ok := rec["phone_number"].(string); ok {
		n, st := contact.Phone([]byte(p), false)
		if st != contact.OK {
			return "phone:" + p, nil
		}
		return "phone:" + string(n), nil
	}
	if d, ok := rec["device"].(map[string]any); ok {
		if tok, ok := d["device_token"].(string); ok {
			return "device:" + string(contact.Trim([]byte(tok))), nil
		}
	}
	return "", fmt.Errorf("recipient has no email, phone_number or device token")
}

// differing lists the dotted paths where a and b differ.
func differing(prefix string, a, b any, skip map[string]bool) []string {
	if skip[prefix] {
		return nil
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var out []string
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out = append(out, differing(p, am[k], bm[k], skip)...)
		}
		return out
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		return []string{prefix}
	}
	return nil
}

// Summary renders a report for people.
func (r *DiffReport) Summary(limit int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "A: %s (%d messages)\nB: %s (%d messages)\n", r.A, r.InA, r.B, r.InB)
	fmt.Fprintf(&sb, "same: %d  only in A: %d  only in B: %d  different: %d  repeated in A: %d  repeated in B: %d\n",
		r.Same, len(r.OnlyInA), len(r.OnlyInB), len(r.Different), len(r.RepeatedA), len(r.RepeatedB))
	for _, sh := range r.Shifted {
		fmt.Fprintf(&sb, "%s: B is A %s in all %d messages compared (a job without scheduled_at takes each run's own time; not counted as a difference)\n",
			sh.Field, sh.By, sh.Messages)
	}
	list := func(title string, items []string) {
		if len(items) == 0 {
			return
		}
		fmt.Fprintf(&sb, "\n%s:\n", title)
		for i, it := range items {
			if i == limit {
				fmt.Fprintf(&sb, "  … %d more\n", len(items)-limit)
				break
			}
			fmt.Fprintf(&sb, "  %s\n", it)
		}
	}
	list("only in A", r.OnlyInA)
	list("only in B", r.OnlyInB)
	var diffs []string
	for _, d := range r.Different {
		diffs = append(diffs, d.Destination+": "+strings.Join(d.Fields, ", "))
	}
	list("different", diffs)
	list("repeated in A", r.RepeatedA)
	list("repeated in B", r.RepeatedB)
	return sb.String()
}

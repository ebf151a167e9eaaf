package inspect

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
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

// Diff reads two files of channel messages (one JSON object per line) and
// compares them by destination: the normalized email, phone number or
// device token of each message's recipient. Fields listed in ignore (dotted
// paths, e.g. idempotency_key) are not compared.
func Diff(pathA, pathB string, ignore []string) (*DiffReport, error) {
	a, repA, err := load(pathA)
	if err != nil {
		return nil, err
	}
	b, repB, err := load(pathB)
	if err != nil {
		return nil, err
	}
	r := &DiffReport{A: pathA, B: pathB, InA: count(a), InB: count(b), RepeatedA: repA, RepeatedB: repB,
		OnlyInA: []string{}, OnlyInB: []string{}, Different: []FieldDiff{}, Shifted: []Shift{}}
	skip := map[string]bool{}
	for _, f := range ignore {
		skip[f] = true
	}
	var both []string
	diffs := map[string][]string{}
	for _, dest := range sortedKeys(a) {
		mb, ok := b[dest]
		if !ok {
			r.OnlyInA = append(r.OnlyInA, dest)
			continue
		}
		both = append(both, dest)
		diffs[dest] = differing("", a[dest][0], mb[0], skip)
	}
	shifted := uniformShifts(a, b, both, diffs)
	for _, sh := range shifted {
		r.Shifted = append(r.Shifted, sh)
	}
	sort.Slice(r.Shifted, func(i, j int) bool { return r.Shifted[i].Field < r.Shifted[j].Field })
	for _, dest := range both {
		var fields []string
		for _, f := range diffs[dest] {
			if _, ok := shifted[f]; !ok {
				fields = append(fields, f)
			}
		}
		if len(fields) == 0 {
			r.Same++
		} else {
			r.Different = append(r.Different, FieldDiff{Destination: dest, Fields: fields})
		}
	}
	for _, dest := range sortedKeys(b) {
		if _, ok := a[dest]; !ok {
			r.OnlyInB = append(r.OnlyInB, dest)
		}
	}
	return r, nil
}

// uniformShifts finds the differing fields that are times in both files
// and moved by one same non-zero amount in every message compared.
func uniformShifts(a, b map[string][]any, both []string, diffs map[string][]string) map[string]Shift {
	candidates := map[string]bool{}
	for _, fields := range diffs {
		for _, f := range fields {
			candidates[f] = true
		}
	}
	out := map[string]Shift{}
	for f := range candidates {
		var by time.Duration
		n := 0
		uniform := true
		for _, dest := range both {
			ta, okA := timeAt(a[dest][0], f)
			tb, okB := timeAt(b[dest][0], f)
			if !okA || !okB {
				uniform = false
				break
			}
			d := tb.Sub(ta)
			if n > 0 && d != by {
				uniform = false
				break
			}
			by = d
			n++
		}
		if uniform && n > 0 && by != 0 {
			sign := "+"
			if by < 0 {
				sign = ""
			}
			out[f] = Shift{Field: f, By: sign + by.String(), ByMS: by.Milliseconds(), Messages: n}
		}
	}
	return out
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

func count(m map[string][]any) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func sortedKeys(m map[string][]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// load reads messages keyed by destination.
func load(path string) (map[string][]any, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err // an *fs.PathError: it says "open <path>" itself
	}
	defer f.Close()
	out := map[string][]any{}
	var repeated []string
	r := bufio.NewReaderSize(f, 1<<20)
	for line := 1; ; line++ {
		raw, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(raw)) > 0 {
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if jerr := dec.Decode(&m); jerr != nil {
				return nil, nil, fmt.Errorf("%s:%d: not a JSON object: %v", path, line, jerr)
			}
			dest, derr := destination(m)
			if derr != nil {
				return nil, nil, fmt.Errorf("%s:%d: %v", path, line, derr)
			}
			if len(out[dest]) == 1 {
				repeated = append(repeated, dest)
			}
			out[dest] = append(out[dest], m)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	sort.Strings(repeated)
	return out, repeated, nil
}

// destination is a message's de-duplication key, normalized as segpub
// normalizes it, so a publisher that writes the raw form still matches.
func destination(m map[string]any) (string, error) {
	rec, _ := m["recipient"].(map[string]any)
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

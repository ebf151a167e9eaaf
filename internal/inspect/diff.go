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
		OnlyInA: []string{}, OnlyInB: []string{}, Different: []FieldDiff{}}
	skip := map[string]bool{}
	for _, f := range ignore {
		skip[f] = true
	}
	for _, dest := range sortedKeys(a) {
		mb, ok := b[dest]
		if !ok {
			r.OnlyInA = append(r.OnlyInA, dest)
			continue
		}
		fields := differing("", a[dest][0], mb[0], skip)
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
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
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

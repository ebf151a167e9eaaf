// Package reliability counts the messages of fault-injection tests the way
// Jepsen does: every expected message is ok (published once), lost, or
// duplicated, and every published message outside the expected set is
// unexpected. Tests classify with it, fail on anything but exact, and record
// their counts; `make reliability` gathers the records into the tables of
// docs/reliability.md, so the figures there are the ones the tests measured.
package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// OutEnv names the file tests append their results to (JSON lines). Unset,
// results are only logged.
const OutEnv = "SEGPUB_RELIABILITY_OUT"

// Counts classifies a run's messages.
type Counts struct {
	Expected   int `json:"expected"`   // distinct messages an uninterrupted run publishes
	OK         int `json:"ok"`         // expected and published exactly once
	Lost       int `json:"lost"`       // expected, never published
	Duplicated int `json:"duplicated"` // expected, published more than once
	Unexpected int `json:"unexpected"` // published, not expected
}

// Exact reports whether every expected message was published once and
// nothing else was.
func (c Counts) Exact() bool {
	return c.OK == c.Expected && c.Lost == 0 && c.Duplicated == 0 && c.Unexpected == 0
}

func (c Counts) String() string {
	return fmt.Sprintf("expected %d, ok %d, lost %d, duplicated %d, unexpected %d",
		c.Expected, c.OK, c.Lost, c.Duplicated, c.Unexpected)
}

// Classify counts published against expected. Messages are compared whole
// (a body, or an idempotency key); a repeat within expected counts once.
func Classify(expected, published [][]byte) Counts {
	sent := make(map[string]int, len(published))
	for _, m := range published {
		sent[string(m)]++
	}
	return ClassifyCounts(expected, sent)
}

// ClassifyCounts is Classify for a tally of how often each message was
// published.
func ClassifyCounts(expected [][]byte, sent map[string]int) Counts {
	var c Counts
	want := make(map[string]bool, len(expected))
	for _, m := range expected {
		if want[string(m)] {
			continue
		}
		want[string(m)] = true
		c.Expected++
		switch n := sent[string(m)]; {
		case n == 0:
			c.Lost++
		case n == 1:
			c.OK++
		default:
			c.Duplicated++
		}
	}
	for m := range sent {
		if !want[m] {
			c.Unexpected++
		}
	}
	return c
}

// Result is one test case's record.
type Result struct {
	Test string `json:"test"` // the Go test, e.g. TestDatabaseFaults
	Case string `json:"case"` // the subtest, or empty
	Counts
	Wall float64 `json:"wall_seconds"`
	// Detail holds the case's own figures (faults fired, reads, ...),
	// rendered as extra columns in the order given.
	Detail []Field `json:"detail,omitempty"`
}

// Field is a named figure of a Result.
type Field struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

var appendMu sync.Mutex

// Check fails t unless c is exact, and records it under t's name with the
// wall time and details: logged always, appended to $SEGPUB_RELIABILITY_OUT
// when set.
func Check(t testing.TB, c Counts, wall time.Duration, detail ...Field) {
	t.Helper()
	test, sub, _ := strings.Cut(t.Name(), "/")
	CheckAs(t, test, sub, c, wall, detail...)
}

// CheckAs is Check recording under a table and case of the caller's
// choosing, for tests whose cases are not subtests.
func CheckAs(t testing.TB, test, sub string, c Counts, wall time.Duration, detail ...Field) {
	t.Helper()
	r := Result{Test: test, Case: sub, Counts: c, Wall: wall.Seconds(), Detail: detail}
	t.Logf("%s; wall %.1fs %v", c, r.Wall, detail)
	if path := os.Getenv(OutEnv); path != "" {
		if err := appendResult(path, r); err != nil {
			t.Errorf("record result: %v", err)
		}
	}
	if !c.Exact() {
		t.Errorf("not exact: %s", c)
	}
}

// appendResult writes one line with O_APPEND: test binaries of several
// packages append to the same file at once, and a single short write is
// not interleaved.
func appendResult(path string, r Result) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	appendMu.Lock()
	defer appendMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Load reads the results a test run appended.
func Load(path string) ([]Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var out []Result
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if r.Test == "" {
			return nil, fmt.Errorf("%s line %d: no test name", path, n)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// Markdown renders one table per test, tests in the order of order (then
// any others by name), cases by name.
func Markdown(results []Result, order []string) string {
	by := map[string][]Result{}
	var tests []string
	for _, r := range results {
		if _, ok := by[r.Test]; !ok {
			tests = append(tests, r.Test)
		}
		by[r.Test] = append(by[r.Test], r)
	}
	rank := func(name string) int {
		if i := slices.Index(order, name); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortFunc(tests, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	var w strings.Builder
	for _, test := range tests {
		rs := by[test]
		slices.SortStableFunc(rs, func(a, b Result) int { return strings.Compare(a.Case, b.Case) })
		var extra []string
		for _, r := range rs {
			for _, f := range r.Detail {
				if !slices.Contains(extra, f.Name) {
					extra = append(extra, f.Name)
				}
			}
		}
		fmt.Fprintf(&w, "### %s\n\n| case | expected | ok | lost | duplicated | unexpected | wall s |", test)
		for _, e := range extra {
			fmt.Fprintf(&w, " %s |", e)
		}
		w.WriteString("\n|---|---:|---:|---:|---:|---:|---:|")
		w.WriteString(strings.Repeat("---:|", len(extra)))
		w.WriteString("\n")
		for _, r := range rs {
			name := r.Case
			if name == "" {
				name = "(whole test)"
			}
			fmt.Fprintf(&w, "| %s | %d | %d | %d | %d | %d | %.1f |", name, r.Expected, r.OK, r.Lost, r.Duplicated, r.Unexpected, r.Wall)
			for _, e := range extra {
				v := ""
				for _, f := range r.Detail {
					if f.Name == e {
						v = f.Value
					}
				}
				fmt.Fprintf(&w, " %s |", v)
			}
			w.WriteString("\n")
		}
		w.WriteString("\n")
	}
	return w.String()
}

// The markers around the generated section of a document.
const (
	Begin = "<!-- reliability:begin (generated by make reliability; edits here are lost) -->"
	End   = "<!-- reliability:end -->"
)

// ErrNoMarkers is returned by Splice for a document without both markers.
var ErrNoMarkers = errors.New("document has no " + Begin + " ... " + End + " section")

// Splice replaces the section between the markers of doc.
func Splice(doc, section string) (string, error) {
	i := strings.Index(doc, Begin)
	j := strings.Index(doc, End)
	if i < 0 || j < i {
		return "", ErrNoMarkers
	}
	return doc[:i+len(Begin)] + "\n\n" + strings.TrimSpace(section) + "\n\n" + doc[j:], nil
}

// Report renders the results file into doc's generated section, headed by
// when and where they were measured, and rewrites doc.
func Report(resultsPath, docPath string, order []string, measured time.Time, machine string) error {
	rs, err := Load(resultsPath)
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return fmt.Errorf("%s holds no results: did the tests run?", resultsPath)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		return fmt.Errorf("read %s: %w", docPath, err)
	}
	section := fmt.Sprintf("Measured by `make reliability` on %s, %s. %d cases.\n\n%s",
		measured.UTC().Format("2006-01-02 15:04 MST"), machine, len(rs), Markdown(rs, order))
	out, err := Splice(string(doc), section)
	if err != nil {
		return fmt.Errorf("%s: %w", docPath, err)
	}
	return os.WriteFile(docPath, []byte(out), 0o644)
}

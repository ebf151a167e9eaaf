package reliability

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func bs(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, v := range s {
		out[i] = []byte(v)
	}
	return out
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                string
		expected, published []string
		want                Counts
	}{
		{"exact", []string{"a", "b"}, []string{"b", "a"}, Counts{Expected: 2, OK: 2}},
		{"lost", []string{"a", "b", "c"}, []string{"a"}, Counts{Expected: 3, OK: 1, Lost: 2}},
		{"duplicated", []string{"a", "b"}, []string{"a", "a", "a", "b"}, Counts{Expected: 2, OK: 1, Duplicated: 1}},
		{"unexpected", []string{"a"}, []string{"a", "z", "z"}, Counts{Expected: 1, OK: 1, Unexpected: 1}},
		{"repeat in expected counts once", []string{"a", "a"}, []string{"a"}, Counts{Expected: 1, OK: 1}},
		{"nothing", nil, nil, Counts{}},
	} {
		got := Classify(bs(c.expected...), bs(c.published...))
		if got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
		if got.Exact() != (c.want.Lost == 0 && c.want.Duplicated == 0 && c.want.Unexpected == 0) {
			t.Errorf("%s: Exact() = %v", c.name, got.Exact())
		}
	}
}

// Results recorded by tests come back in tables, one per test, in the
// given order, with each case's own figures as columns.
func TestRecordAndRender(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	t.Setenv(OutEnv, path)
	for _, r := range []Result{
		{Test: "TestB", Case: "y", Counts: Counts{Expected: 5, OK: 5}, Wall: 1.25},
		{Test: "TestA", Counts: Counts{Expected: 3, OK: 3}, Wall: 2, Detail: []Field{{"faults", "7"}}},
		{Test: "TestB", Case: "x", Counts: Counts{Expected: 4, OK: 4}, Wall: 0.5, Detail: []Field{{"reads", "90"}}},
	} {
		if err := appendResult(path, r); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := Load(path)
	if err != nil || len(rs) != 3 {
		t.Fatalf("%d results, %v", len(rs), err)
	}
	md := Markdown(rs, []string{"TestB", "TestA"})
	ib, ia := strings.Index(md, "### TestB"), strings.Index(md, "### TestA")
	if ib < 0 || ia < ib {
		t.Fatalf("tables out of order:\n%s", md)
	}
	for _, line := range []string{
		"| case | expected | ok | lost | duplicated | unexpected | wall s | reads |",
		"| x | 4 | 4 | 0 | 0 | 0 | 0.5 | 90 |",
		"| y | 5 | 5 | 0 | 0 | 0 | 1.2 |  |",
		"| (whole test) | 3 | 3 | 0 | 0 | 0 | 2.0 | 7 |",
	} {
		if !strings.Contains(md, line+"\n") {
			t.Errorf("missing %q in\n%s", line, md)
		}
	}
	if strings.Index(md, "| x |") > strings.Index(md, "| y |") {
		t.Error("cases not sorted")
	}
}

func TestLoadNamesTheBadLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if err := os.WriteFile(path, []byte(`{"test":"TestA"}`+"\n{oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("got %v, want an error naming line 2", err)
	}
}

func TestSplice(t *testing.T) {
	t.Parallel()
	doc := "# Title\nprose\n" + Begin + "\nold table\n" + End + "\nmore prose\n"
	got, err := Splice(doc, "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "# Title\nprose\n" + Begin + "\n\nnew table\n\n" + End + "\nmore prose\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := Splice("# no markers\n", "x"); !errors.Is(err, ErrNoMarkers) {
		t.Fatalf("got %v, want ErrNoMarkers", err)
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	results, doc := filepath.Join(dir, "r.jsonl"), filepath.Join(dir, "doc.md")
	if err := os.WriteFile(doc, []byte("intro\n"+Begin+"\n"+End+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(results, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Report(results, doc, nil, time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC), "2 cores"); err == nil {
		t.Fatal("an empty results file rendered")
	}
	if err := appendResult(results, Result{Test: "TestA", Counts: Counts{Expected: 1, OK: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := Report(results, doc, nil, time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC), "2 cores"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(doc)
	for _, want := range []string{"intro\n", "on 2026-11-25 03:00 UTC, 2 cores. 1 cases.", "### TestA", "| (whole test) | 1 | 1 |"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

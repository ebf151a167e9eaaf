package cli

import (
	"strings"
	"testing"
)

// segpub cost says which measured figure it used, its date and machine;
// the superseded 22,150 messages/s is nowhere.
func TestCostFromRecordedBenchmark(t *testing.T) {
	t.Parallel()
	r := runEnv(nil, "", "cost")
	if r.code != ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	first, _, _ := strings.Cut(r.stdout, "\n")
	for _, want := range []string{"measured: ", "messages/s", "push-all-sqs on bench", "docs/benchmarks.json", "taken 2026-", " on AMD EPYC"} {
		if !strings.Contains(first, want) {
			t.Errorf("first line %q lacks %q", first, want)
		}
	}
	if strings.Contains(r.stdout, "22150") {
		t.Errorf("the constant is back:\n%s", r.stdout)
	}
	if r := runEnv(nil, "", "cost", "--messages-per-second", "1000"); !strings.Contains(r.stdout, "measured: 1000 messages/s, from --messages-per-second") {
		t.Errorf("by hand: %s", r.stdout)
	}
}

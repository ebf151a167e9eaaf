package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
)

// The demo runs every campaign to completion, and the channel stream holds
// exactly the messages the runs report (Run checks that and fails if not).
func TestDemo(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := Run(context.Background(), Config{Pool: dbtest.IsolatedPool(t), Users: 3000, DataDir: t.TempDir(), Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	if n := strings.Count(text, " completed "); n != len(campaigns("")) {
		t.Fatalf("%d completed runs in the summary, want %d:\n%s", n, len(campaigns("")), text)
	}
	for _, want := range []string{"email A/B test", "control", "variants:", "email from a CSV file", "kakao_friendtalk"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
}

// TestMakeDemo runs what the README's first command runs: `make demo` from
// the repository root, with its default data directory (segpub-data, a
// relative path), only with fewer users. It must exit 0 and end with a
// summary table in which every campaign completed.
func TestMakeDemo(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the demo (-short)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Makefile")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	cmd := exec.Command("make", "--no-print-directory", "demo", "DEMO_FLAGS=--users 3000")
	cmd.Dir = root
	cmd.Env = append(withoutEnv(os.Environ(), "SEGPUB_DATA_DIR", "MAKEFLAGS"), "SEGPUB_DATABASE_URL="+dbtest.IsolatedURL(t))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("make demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	text := stdout.String()
	rows := summaryRows(text)
	if len(rows) != len(campaigns("")) {
		t.Fatalf("summary has %d campaign rows, want %d:\n%s", len(rows), len(campaigns("")), text)
	}
	for _, c := range campaigns("") {
		row, ok := rows[c.name]
		if !ok {
			t.Errorf("summary lacks campaign %q", c.name)
			continue
		}
		if f := strings.Fields(strings.TrimPrefix(row, c.name)); len(f) < 2 || f[1] != "completed" {
			t.Errorf("campaign %q did not complete: %q", c.name, row)
		}
	}
	if strings.Contains(text, "map[") {
		t.Errorf("summary shows Go map syntax:\n%s", text)
	}
}

// summaryRows returns the rows of the demo's summary table by campaign name.
func summaryRows(text string) map[string]string {
	rows := map[string]string{}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "campaign ") || !strings.Contains(l, " status ") {
			continue
		}
		for _, r := range lines[i+1:] {
			if r == "" {
				break
			}
			for _, c := range campaigns("") {
				if strings.HasPrefix(r, c.name+" ") {
					rows[c.name] = r
				}
			}
		}
	}
	return rows
}

func withoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		keep := true
		for _, n := range names {
			keep = keep && !strings.HasPrefix(kv, n+"=")
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

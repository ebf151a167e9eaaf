package demo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
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

// A demo of another size does not replace a project seeded before it: it
// stops, saying how to go on, and the project keeps its users.
func TestDemoKeepsAnotherSizeOfProject(t *testing.T) {
	t.Parallel()
	pool := dbtest.IsolatedPool(t)
	ctx := context.Background()
	if _, err := seed.Run(ctx, pool, seed.Config{ProjectID: "demo", Users: 1500}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := Run(ctx, Config{Pool: pool, Users: 1000, DataDir: t.TempDir(), Out: &out})
	if !errors.Is(err, ErrProjectInUse) || !strings.Contains(err.Error(), `project "demo" already holds 1500 users, not 1000; --replace`) {
		t.Fatalf("err %v", err)
	}
	tables, _ := schema.For("demo")
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+tables.User).Scan(&n); err != nil || n != 1500 {
		t.Fatalf("project holds %d users (%v), want the 1500 seeded", n, err)
	}
	// The same size is reseeded (the seed makes the same rows), and
	// --replace reseeds any size: neither is refused.
	if err := checkProject(ctx, pool, "demo", 1500, false); err != nil {
		t.Fatalf("same size: %v", err)
	}
	if err := checkProject(ctx, pool, "demo", 1000, true); err != nil {
		t.Fatalf("replace: %v", err)
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

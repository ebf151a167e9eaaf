//go:build unix

package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
)

func mainWith(vars map[string]string, stdin string, args ...string) (code int, stdout, stderr string) {
	// A command that should stop at once but runs on (serve) ends with
	// the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := serviceEnv(vars)
	env.Stdin = strings.NewReader(stdin)
	code = Main(ctx, args, env)
	return code, env.Stdout.(*syncBuffer).String(), env.Stderr.(*syncBuffer).String()
}

// A job over SEGPUB_MAX_JOB_BYTES is rejected (exit 2) by every command that
// reads one, from a file or standard input, before it is parsed; a bad
// setting stops the command naming it.
func TestJobSizeCap(t *testing.T) {
	t.Parallel()
	jobText := `{"version":1,"action":"publish","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"email","audience":{"type":"all"},"message":{}}}` +
		strings.Repeat(" ", 300)
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, []byte(jobText), 0o644); err != nil {
		t.Fatal(err)
	}
	capped := map[string]string{"SEGPUB_MAX_JOB_BYTES": "200"}
	for _, args := range [][]string{
		{"size", "--job", "-"},
		{"publish", "--job", path, "--out", "file://" + t.TempDir() + "/{channel}.ndjson"},
		{"explain", "--job", path},
		{"why", "--job", "-", "--user", "u"},
		{"submit", "--job", path},
	} {
		code, stdout, stderr := mainWith(capped, jobText, args...)
		if code != ExitRejected || !strings.Contains(stderr, "rejected: the job is over the limit of 200 bytes (SEGPUB_MAX_JOB_BYTES)") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
		if args[0] == "size" && !strings.Contains(stdout, `"status":"rejected"`) {
			t.Errorf("%v: result %q", args, stdout)
		}
	}
	if code, _, stderr := mainWith(nil, jobText, "size", "--max-job-bytes", "200", "--job", "-"); code != ExitRejected || !strings.Contains(stderr, "SEGPUB_MAX_JOB_BYTES") {
		t.Errorf("--max-job-bytes: exit %d, %q", code, stderr)
	}
	for value, want := range map[string]string{
		"0":    "--max-job-bytes ($SEGPUB_MAX_JOB_BYTES): 0 is not positive",
		"16MB": `$SEGPUB_MAX_JOB_BYTES: "16MB" is not a whole number`,
	} {
		if code, _, stderr := mainWith(map[string]string{"SEGPUB_MAX_JOB_BYTES": value}, jobText, "size", "--job", "-"); code != ExitFailure || !strings.Contains(stderr, want) {
			t.Errorf("SEGPUB_MAX_JOB_BYTES=%s: exit %d, %q", value, code, stderr)
		}
	}
	if code, _, stderr := mainWith(map[string]string{"SEGPUB_CSV_MAX_BYTES": "-1"}, jobText, "size", "--job", "-"); code != ExitFailure || !strings.Contains(stderr, "--csv-max-bytes ($SEGPUB_CSV_MAX_BYTES): -1 is not positive") {
		t.Errorf("SEGPUB_CSV_MAX_BYTES=-1: exit %d, %q", code, stderr)
	}
	if code, _, stderr := mainWith(map[string]string{"SEGPUB_CSV_ROOT": "relative/dir", "SEGPUB_DATA_DIR": t.TempDir()}, "", "serve", "--listen", ""); code != ExitFailure || !strings.Contains(stderr, `--csv-root ($SEGPUB_CSV_ROOT): "relative/dir" is not an absolute path`) {
		t.Errorf("SEGPUB_CSV_ROOT relative: exit %d, %q", code, stderr)
	}
}

// The one-shot commands read the local CSV files an operator names, but
// refuse a FIFO, a device, a file:// host and a file over
// SEGPUB_CSV_MAX_BYTES, as rejections.
func TestCommandLineCSVFiles(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "list.csv")
	if err := os.WriteFile(list, []byte("email\na@x.com\nb@x.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.csv")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	jobFor := func(url string) string {
		return fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"c","channel":"email","audience":{"type":"csv","url":%q},"message":{}}}`, tables.Project, url)
	}
	if code, stdout, stderr := mainWith(nil, jobFor("file://"+list), "size", "--job", "-"); code != ExitOK || !strings.Contains(stdout, `"published":2`) {
		t.Fatalf("local file: exit %d, %s %s", code, stdout, stderr)
	}
	for _, c := range []struct {
		url  string
		vars map[string]string
		want string
	}{
		{"file://" + fifo, nil, "not a regular file (a FIFO)"},
		{"file:///dev/zero", nil, "not a regular file (a character device)"},
		{"file://otherhost" + list, nil, `got host "otherhost"`},
		{"file://" + list, map[string]string{"SEGPUB_CSV_MAX_BYTES": "10"}, "over the limit of 10 (SEGPUB_CSV_MAX_BYTES)"},
	} {
		code, _, stderr := mainWith(c.vars, jobFor(c.url), "size", "--job", "-")
		if code != ExitRejected || !strings.Contains(stderr, "rejected: campaign.audience.url: ") || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, %q", c.url, code, stderr)
		}
	}
}

// In serve, file:// audiences are read only under SEGPUB_CSV_ROOT: a job
// naming a file outside it, even through a symlink inside it, is rejected.
func TestServeCSVRoot(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	base := t.TempDir()
	root := filepath.Join(base, "csv")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(base, "secret.csv")
	for path, content := range map[string]string{filepath.Join(root, "ok.csv"): "email\na@x.com\n", secret: "email\nroot@x.com\n"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(secret, filepath.Join(root, "link.csv")); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	env := serviceEnv(map[string]string{
		"SEGPUB_JOB_QUEUE_URL":   "embedded:?stream=CSVJ&subject=csv.jobs",
		"SEGPUB_DEAD_LETTER_URL": "embedded:?stream=CSVD&subject=csv.dead",
		"SEGPUB_CHANNEL_URL":     "file://" + out + "/{channel}.ndjson",
		"SEGPUB_DATA_DIR":        t.TempDir(),
		"SEGPUB_CSV_ROOT":        root,
	})
	want := map[string]string{}
	for name, url := range map[string]string{"in": "file://" + root + "/ok.csv", "out": "file://" + secret, "link": "file://" + root + "/link.csv"} {
		id := "csvroot-" + name + "-" + tables.Project
		text := fmt.Sprintf(`{"version":1,"action":"publish","request_id":%q,"project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"c","channel":"email","audience":{"type":"csv","url":%q},"message":{}}}`, id, tables.Project, url)
		env.Stdin = strings.NewReader(text)
		if code := Main(context.Background(), []string{"submit", "--job", "-"}, env); code != ExitOK {
			t.Fatalf("submit: %s", env.Stderr)
		}
		want[id] = "rejected"
		if name == "in" {
			want[id] = "completed"
		}
	}
	serveUntilStatus(t, env, want)
	data, err := os.ReadFile(filepath.Join(out, "email.ndjson"))
	if err != nil || strings.Contains(string(data), "root@x.com") || !strings.Contains(string(data), "a@x.com") {
		t.Fatalf("published %q (%v)", data, err)
	}
	for id, status := range want {
		st := serviceEnv(nil)
		Main(context.Background(), []string{"status", id}, st)
		if status == "rejected" && !strings.Contains(st.Stdout.(*syncBuffer).String(), "SEGPUB_CSV_ROOT") {
			t.Errorf("%s: %s", id, st.Stdout)
		}
	}
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/natsjs"
)

type cliRun struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, stdin string, args ...string) cliRun {
	t.Helper()
	var out, errb bytes.Buffer
	// A command that opens the embedded JetStream (run resume) keeps it
	// in the test's own directory, never in the package's.
	dataDir := t.TempDir()
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		switch k {
		case "SEGPUB_DATABASE_URL":
			return dbtest.URL()
		case "SEGPUB_DATA_DIR":
			return dataDir
		}
		return ""
	}}
	code := Main(context.Background(), args, env)
	return cliRun{code, out.String(), errb.String()}
}

func TestSizeAndPublish(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	dbtest.Exec(t, `INSERT INTO `+tables.User+` (notifly_user_id, email, random_bucket_number) VALUES ('u1', 'a@x.com', 1), ('u2', 'A@X.com ', 2), ('u3', NULL, 3)`)
	jobText := fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"c","channel":"email","audience":{"type":"all"},"message":{"s":1}}}`, tables.Project)
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, []byte(jobText), 0o644); err != nil {
		t.Fatal(err)
	}

	r := run(t, "", "size", "--job", path)
	if r.code != ExitOK {
		t.Fatalf("size: exit %d: %s", r.code, r.stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("size output %q: %v", r.stdout, err)
	}
	if res["action"] != "calculate-size" || res["candidates"] != 3.0 || res["published"] != 1.0 {
		t.Fatalf("size result %v", res)
	}

	dir := t.TempDir()
	r = run(t, jobText, "publish", "--job", "-", "--out", "file://"+dir+"/{channel}.ndjson")
	if r.code != ExitOK || !strings.Contains(r.stdout, `"status":"completed"`) {
		t.Fatalf("publish: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, "email.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"email":"a@x.com"`) {
		t.Fatalf("published file: %s", data)
	}

	// --out takes the service's channel URLs too: an embedded JetStream
	// holds the message once the command has returned.
	jsDir := t.TempDir()
	r = run(t, jobText, "publish", "--job", "-", "--out", "embedded://"+jsDir+"?stream=OUT&subject=out.{channel}")
	if r.code != ExitOK {
		t.Fatalf("publish to embedded: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	nc := &natsjs.Connector{DefaultDir: jsDir}
	defer nc.Close()
	conn, err := nc.Connect(context.Background(), "embedded://"+jsDir)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := conn.JS.Stream(context.Background(), "OUT")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(context.Background(), "out.email")
	if err != nil || stream.CachedInfo().State.Msgs != 1 || !strings.Contains(string(msg.Data), `"email":"a@x.com"`) {
		t.Fatalf("embedded stream: %d messages, last %v (%v)", stream.CachedInfo().State.Msgs, msg, err)
	}

	// A bad --out fails before anything is read or published.
	r = run(t, jobText, "publish", "--job", "-", "--out", "ftp://host/{channel}")
	if r.code != ExitFailure || !strings.Contains(r.stderr, `--out: channel URL "ftp://host/{channel}"`) {
		t.Fatalf("bad --out: exit %d %q", r.code, r.stderr)
	}
}

// A rejected job exits 2 with the path on standard error and publishes
// nothing; other failures exit 1.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := "file://" + dir + "/{channel}.ndjson"
	bad := `{"version":1,"action":"publish","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"email","message":{},
"audience":{"type":"segment","groups":[{"conditions":[{"kind":"user","attribute":"a","operator":"~=","value":1}]}]}}}`
	r := run(t, bad, "publish", "--job", "-", "--out", out)
	if r.code != ExitRejected || !strings.Contains(r.stderr, `campaign.audience.groups[0].conditions[0].operator: unknown operator "~="`) {
		t.Fatalf("rejected: exit %d, stderr %q", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, `"status":"rejected"`) {
		t.Fatalf("rejected result: %s", r.stdout)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("rejected job wrote %d files", len(entries))
	}
	if r := run(t, "{", "size", "--job", "-"); r.code != ExitRejected || !strings.Contains(r.stderr, "malformed JSON") {
		t.Fatalf("malformed: exit %d, %q", r.code, r.stderr)
	}
	// A project whose tables do not exist is the job's error: a rejection
	// (retrying cannot create the tables).
	missing := strings.Replace(strings.Replace(bad, `"~="`, `"="`, 1), `"project_id":"p"`, `"project_id":"no_such_project_x"`, 1)
	if r := run(t, missing, "size", "--job", "-"); r.code != ExitRejected || !strings.Contains(r.stdout, `"status":"rejected"`) ||
		!strings.Contains(r.stderr, `project_id: no project "no_such_project_x" in the database`) {
		t.Fatalf("missing tables: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "", "size"); r.code != ExitFailure || !strings.Contains(r.stderr, "--job is required") {
		t.Fatalf("no --job: exit %d %q", r.code, r.stderr)
	}
	if r := run(t, "", "frobnicate"); r.code != ExitFailure || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: exit %d %q", r.code, r.stderr)
	}
	if r := run(t, "", "seed", "--project", "Bad-Id"); r.code != ExitFailure || !strings.Contains(r.stderr, "--project: invalid project id") {
		t.Fatalf("seed bad project: exit %d %q", r.code, r.stderr)
	}
}

func TestMigrateIndexesIdempotent(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	r := run(t, "", "migrate", "indexes", "--project", tables.Project)
	n := len(indexes.For(tables))
	if r.code != ExitOK || strings.Count(r.stdout, `"action":"created"`) != n {
		t.Fatalf("first: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "", "migrate", "indexes", "--project", tables.Project)
	if r.code != ExitOK || strings.Count(r.stdout, `"action":"exists"`) != n {
		t.Fatalf("second: exit %d %s", r.code, r.stdout)
	}
}

// A setting in the environment that does not parse stops the command with
// its name, rather than quietly running on the default.
func TestBadEnvironmentSetting(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, value, cmd, want string }{
		{"SEGPUB_DB_STALL_TIMEOUT", "ten minutes", "size", `$SEGPUB_DB_STALL_TIMEOUT: "ten minutes" is not a duration`},
		{"SEGPUB_LEASE", "60", "status", `$SEGPUB_LEASE: "60" is not a duration`},
		{"SEGPUB_CONCURRENCY", "two", "serve", `$SEGPUB_CONCURRENCY: "two" is not a whole number`},
	} {
		var out, errb bytes.Buffer
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
			if k == c.name {
				return c.value
			}
			return ""
		}}
		if code := Main(context.Background(), []string{c.cmd, "x"}, env); code != ExitFailure || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%s=%q: exit %d, stderr %q", c.name, c.value, code, errb.String())
		}
	}
	job := `{"version":1,"action":"publish","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"email","message":{},"audience":{"type":"all"}}}`
	if r := run(t, job, "size", "--job", "-", "--db-stall-timeout", "-1s"); r.code == ExitOK || !strings.Contains(r.stderr+r.stdout, "--db-stall-timeout ($SEGPUB_DB_STALL_TIMEOUT): -1s is negative") {
		t.Fatalf("negative stall timeout: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

// A file:// output with a host or a relative path is refused before
// anything is published: file://out/x.ndjson names host "out" and used to
// write /x.ndjson at the filesystem root.
func TestPublishRefusesRelativeFileURL(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	dbtest.Exec(t, `INSERT INTO `+tables.User+` (notifly_user_id, email, random_bucket_number) VALUES ('u1', 'a@x.com', 1)`)
	jobText := fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r","project_id":%q,
"campaign":{"id":"c","channel":"email","audience":{"type":"all"},"message":{"s":1}}}`, tables.Project)
	name := tables.Project + "-{channel}.ndjson"
	atRoot := "/" + strings.ReplaceAll(name, "{channel}", "email")
	t.Cleanup(func() { os.Remove(atRoot) })
	r := run(t, jobText, "publish", "--job", "-", "--out", "file://out/"+name)
	if _, err := os.Stat(atRoot); err == nil {
		t.Errorf("publish wrote %s", atRoot)
	}
	want, _ := filepath.Abs("out/" + name)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "want file://"+want) {
		t.Fatalf("exit %d, stderr %q; want exit %d naming file://%s", r.code, r.stderr, ExitFailure, want)
	}
	if strings.Contains(r.stdout, `"published"`) {
		t.Errorf("a result was printed: %s", r.stdout)
	}
}

// Publishing one request_id twice into the same file is refused (exit 2,
// the file unchanged); another request_id appends (docs/result.md).
func TestPublishRerunDoesNotDuplicate(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	dbtest.Exec(t, `INSERT INTO `+tables.User+` (notifly_user_id, email, random_bucket_number) VALUES ('u1', 'a@x.com', 1), ('u2', 'b@x.com', 2)`)
	jobFor := func(requestID string) string {
		return fmt.Sprintf(`{"version":1,"action":"publish","request_id":%q,"project_id":%q,
"campaign":{"id":"c","channel":"email","audience":{"type":"all"},"message":{"s":1}}}`, requestID, tables.Project)
	}
	dir := t.TempDir()
	out := "file://" + dir + "/{channel}.ndjson"
	count := func() int {
		data, err := os.ReadFile(filepath.Join(dir, "email.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(data), "\n")
	}
	if r := run(t, jobFor("r-1"), "publish", "--job", "-", "--out", out); r.code != ExitOK {
		t.Fatalf("first run: exit %d: %s", r.code, r.stderr)
	}
	r := run(t, jobFor("r-1"), "publish", "--job", "-", "--out", out)
	if r.code != ExitRejected || !strings.Contains(r.stderr, `already holds the 2 messages of request_id "r-1"`) {
		t.Fatalf("second run of r-1: exit %d, stderr %q; want exit %d", r.code, r.stderr, ExitRejected)
	}
	if n := count(); n != 2 {
		t.Fatalf("the file has %d messages after a rerun, want 2", n)
	}
	if r := run(t, jobFor("r-2"), "publish", "--job", "-", "--out", out); r.code != ExitOK {
		t.Fatalf("another request_id: exit %d: %s", r.code, r.stderr)
	}
	if n := count(); n != 4 {
		t.Fatalf("the file has %d messages after another request_id, want 4", n)
	}
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/segpub/segpub/internal/dbtest"
)

// runEnv runs a command line with exactly the given environment.
func runEnv(vars map[string]string, stdin string, args ...string) cliRun {
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }}
	code := Main(context.Background(), args, env)
	return cliRun{code, out.String(), errb.String()}
}

// commandPaths lists every command line that names a command, from the
// tree itself, so a command added later is checked too.
func commandPaths(t *testing.T) [][]string {
	t.Helper()
	root := New(&Env{Getenv: func(string) string { return "" }}).Command()
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, s := range c.Commands() {
			if s.Hidden || s.Name() == "help" {
				continue
			}
			walk(s, append(append([]string(nil), path...), s.Name()))
		}
	}
	walk(root, nil)
	if len(paths) < 20 {
		t.Fatalf("only %d commands found", len(paths))
	}
	return paths
}

var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`)

// serveOnly are settings no command but serve reads (publish reads
// --max-in-flight too).
var serveOnly = []string{"channel-url", "dead-letter-url", "events-url", "listen", "concurrency",
	"max-attempts", "lease", "partition-rows", "scheduler"}

// -h exits 0 on every command, without a database, and lists only the
// command's own flags, each default once.
func TestHelpEveryCommand(t *testing.T) {
	t.Parallel()
	own := map[string][]string{
		"status":          {"database-url", "state-url", "db-stall-timeout", "help"},
		"campaign list":   {"json", "database-url", "state-url", "db-stall-timeout", "help"},
		"campaign add":    {"file", "database-url", "state-url", "db-stall-timeout", "help"},
		"campaign pause":  {"database-url", "state-url", "db-stall-timeout", "help"},
		"campaign resume": {"database-url", "state-url", "db-stall-timeout", "help"},
		"campaign end":    {"database-url", "state-url", "db-stall-timeout", "help"},
		"size":            {"job", "database-url", "db-stall-timeout", "verbose", "cpuprofile", "help"},
		"version":         {"json", "help"},
	}
	for _, path := range commandPaths(t) {
		name := strings.Join(path, " ")
		for _, h := range []string{"-h", "--help"} {
			r := runEnv(nil, "", append(append([]string(nil), path...), h)...)
			if r.code != ExitOK || !strings.Contains(r.stdout, "Usage:") {
				t.Errorf("%q %s: exit %d, stdout %q, stderr %q", name, h, r.code, r.stdout, r.stderr)
				continue
			}
			var flags []string
			for _, m := range helpFlag.FindAllStringSubmatch(r.stdout, -1) {
				flags = append(flags, m[1])
			}
			sort.Strings(flags)
			if want, ok := own[name]; ok && strings.Join(flags, ",") != strings.Join(sorted(want), ",") {
				t.Errorf("%q help lists flags %v, want %v", name, flags, want)
			}
			if name != "serve" {
				for _, f := range flags {
					for _, s := range serveOnly {
						if f == s {
							t.Errorf("%q help lists serve's --%s", name, f)
						}
					}
				}
			}
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.Count(line, "default") > 1 || strings.Contains(line, "(default $") {
					t.Errorf("%q help: default printed twice: %q", name, line)
				}
			}
		}
	}
	// cost: --bench takes a file, its help is not taken for a type name.
	if r := runEnv(nil, "", "cost", "-h"); !regexp.MustCompile(`--bench string `).MatchString(r.stdout) {
		t.Errorf("cost -h: %s", r.stdout)
	}
	// size neither documents nor needs --out; publish does.
	if r := runEnv(nil, "", "size", "-h"); strings.Contains(r.stdout, "--out") {
		t.Errorf("size -h documents --out: %s", r.stdout)
	}
	if r := runEnv(nil, "", "publish", "-h"); !strings.Contains(r.stdout, "--out string") {
		t.Errorf("publish -h: %s", r.stdout)
	}
	// help COMMAND is -h too.
	if r := runEnv(nil, "", "help", "status"); r.code != ExitOK || !strings.Contains(r.stdout, "segpub status REQUEST_ID") {
		t.Errorf("help status: exit %d %q", r.code, r.stdout)
	}
}

// Flags may follow positional arguments, and a flag wins over its
// environment variable.
func TestFlagsAnywhere(t *testing.T) {
	t.Parallel()
	good := map[string]string{"SEGPUB_DATABASE_URL": dbtest.URL()}
	// The flag after the request id is read: the unreachable database it
	// names is the one the command fails to reach.
	r := runEnv(good, "", "status", "no-such-run", "--database-url", "postgres://nobody@127.0.0.1:1/x?connect_timeout=5")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "connect to database nobody@127.0.0.1:1/x") {
		t.Fatalf("status ID --database-url: exit %d %q", r.code, r.stderr)
	}
	// Without it, the variable's database answers: no such run.
	r = runEnv(good, "", "status", "no-such-run")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "no run with that request_id") {
		t.Fatalf("status ID: exit %d %q", r.code, r.stderr)
	}
	// A bad variable does not matter when its flag is given; it does when
	// it is not.
	bad := map[string]string{"SEGPUB_DATABASE_URL": dbtest.URL(), "SEGPUB_DB_STALL_TIMEOUT": "soon"}
	if r := runEnv(bad, "", "status", "no-such-run", "--db-stall-timeout", "1m"); strings.Contains(r.stderr, "SEGPUB_DB_STALL_TIMEOUT") {
		t.Fatalf("flag did not win over the variable: %q", r.stderr)
	}
	if r := runEnv(bad, "", "status", "no-such-run"); r.code != ExitFailure || !strings.Contains(r.stderr, `$SEGPUB_DB_STALL_TIMEOUT: "soon" is not a duration`) {
		t.Fatalf("bad variable: exit %d %q", r.code, r.stderr)
	}
	// diff A B --json, and the one-dash spelling of the Go flag package.
	dir := t.TempDir()
	a := filepath.Join(dir, "a.ndjson")
	if err := os.WriteFile(a, []byte(`{"recipient":{"email":"a@x.com"},"message":{}}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"diff", a, a, "--json"}, {"diff", "-json", a, a}, {"diff", a, "--json", a}} {
		r := runEnv(nil, "", args...)
		var rep map[string]any
		if r.code != ExitOK || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep["same"] != 1.0 {
			t.Errorf("%v: exit %d %q %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

// Exit codes: 0 ok and -h, 2 a rejected job, 1 everything else, usage
// errors included; each usage error says what is wrong and points at -h.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"size", "--nope"}, "segpub size: unknown flag: --nope"},
		{[]string{"status"}, "segpub status: want REQUEST_ID, got 0 argument(s)"},
		{[]string{"status", "a", "b"}, "segpub status: want REQUEST_ID, got 2 argument(s)"},
		{[]string{"diff", "only-one"}, "segpub diff: want A.ndjson B.ndjson"},
		{[]string{"serve", "extra"}, "segpub serve: unexpected arguments: extra"},
		{[]string{"campaign"}, "segpub campaign: a subcommand is required"},
		{[]string{"campaign", "frob"}, `unknown command "frob" for "segpub campaign"`},
		{[]string{"migrate"}, "segpub migrate: a subcommand is required: indexes"},
		{[]string{"seed", "--users", "many"}, `invalid argument "many" for "--users" flag`},
		{[]string{"completion", "tcsh"}, "tcsh"},
	} {
		r := runEnv(nil, "", c.args...)
		if r.code != ExitFailure || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want 1 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if r := runEnv(nil, "", "seed", "--users", "many"); !strings.Contains(r.stderr, "Run 'segpub seed -h' for usage.") {
		t.Errorf("no pointer to -h: %q", r.stderr)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runEnv(nil, "", "version")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "segpub ") || !strings.Contains(r.stdout, "go1.") {
		t.Fatalf("version: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runEnv(nil, "", "version", "--json")
	var info buildInfo
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.Version == "" || !strings.HasPrefix(info.GoVersion, "go1.") {
		t.Fatalf("version --json: %q (%v)", r.stdout, err)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for shell, marker := range map[string]string{"bash": "complete -o default -F __start_segpub segpub", "zsh": "#compdef segpub", "fish": "complete -c segpub"} {
		r := runEnv(nil, "", "completion", shell)
		if r.code != ExitOK || !strings.Contains(r.stdout, marker) {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, r.code, len(r.stdout), r.stderr)
		}
	}
	// The completion answers with commands and flags.
	r := runEnv(nil, "", "__complete", "sta")
	if r.code != ExitOK || !strings.Contains(r.stdout, "status") {
		t.Errorf("complete sta: %q", r.stdout)
	}
	r = runEnv(nil, "", "__complete", "status", "--")
	if !strings.Contains(r.stdout, "--state-url") || strings.Contains(r.stdout, "--channel-url") {
		t.Errorf("complete status --: %q", r.stdout)
	}
}

// Every setting with a variable names it in its help, and no two
// settings of a command share a variable.
func TestSettingsNameTheirVariable(t *testing.T) {
	t.Parallel()
	env := &Env{Getenv: func(string) string { return "" }}
	for _, path := range commandPaths(t) {
		cmd, _, err := New(env).Command().Find(path)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			for _, v := range regexp.MustCompile(`\$(SEGPUB_[A-Z_]+)`).FindAllStringSubmatch(f.Usage, -1) {
				if other, dup := seen[v[1]]; dup {
					t.Errorf("%v: --%s and --%s both read $%s", path, other, f.Name, v[1])
				}
				seen[v[1]] = f.Name
			}
		})
	}
}

// One job run twice without scheduled_at: diff reports the send_at shift
// once and exits 0; a real difference still exits 1.
func TestDiffOfTwoRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	msg := `{"idempotency_key":"%s","request_id":"%s","recipient":{"email":"%s"},"send_at":"%s","message":{"s":"hi"}}`
	a := write("a.ndjson", fmt.Sprintf(msg, "k1", "r1", "a@x.com", "2026-12-01T10:00:00Z"), fmt.Sprintf(msg, "k2", "r1", "b@x.com", "2026-12-01T10:05:00Z"))
	b := write("b.ndjson", fmt.Sprintf(msg, "k3", "r2", "a@x.com", "2026-12-01T10:00:07Z"), fmt.Sprintf(msg, "k4", "r2", "b@x.com", "2026-12-01T10:05:07Z"))
	r := runEnv(nil, "", "diff", a, b)
	if r.code != ExitOK || strings.Count(r.stdout, "send_at") != 1 || !strings.Contains(r.stdout, "send_at: B is A +7s in all 2 messages") ||
		!strings.Contains(r.stdout, "same: 2") {
		t.Fatalf("diff of two runs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	c := write("c.ndjson", fmt.Sprintf(msg, "k3", "r2", "a@x.com", "2026-12-01T10:00:07Z"), fmt.Sprintf(msg, "k4", "r2", "b@x.com", "2026-12-01T10:09:00Z"))
	if r := runEnv(nil, "", "diff", a, c); r.code != ExitFailure || !strings.Contains(r.stdout, "different: 2") {
		t.Fatalf("real difference: exit %d\n%s", r.code, r.stdout)
	}
	if r := runEnv(nil, "", "diff", a, c, "--ignore", "idempotency_key,request_id,send_at"); r.code != ExitOK {
		t.Fatalf("--ignore send_at: exit %d\n%s", r.code, r.stdout)
	}
}

// A rejected job's result names its request_id.
func TestRejectionNamesRequestID(t *testing.T) {
	t.Parallel()
	bad := `{"version":1,"action":"publish","request_id":"r-42","project_id":"p","campaign":{"id":"c","channel":"email","message":{},
"audience":{"type":"segment","groups":[{"conditions":[{"kind":"user","attribute":"a","operator":"~=","value":1}]}]}}}`
	r := runEnv(nil, bad, "size", "--job", "-")
	if r.code != ExitRejected || !strings.Contains(r.stdout, `"request_id":"r-42"`) || !strings.Contains(r.stdout, `"status":"rejected"`) {
		t.Fatalf("exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if got := formatCounts(map[string]int64{"var_b": 2, "var_a": 41799}); got != "var_a 41799, var_b 2" {
		t.Fatalf("formatCounts: %q", got)
	}
}

// A project without tables is a rejection naming it, not a raw relation
// error.
func TestUnknownProject(t *testing.T) {
	t.Parallel()
	job := `{"version":1,"action":"publish","request_id":"r","project_id":"no_such_project_y","campaign":{"id":"c","channel":"email","message":{},"audience":{"type":"all"}}}`
	for _, cmd := range []string{"size", "explain"} {
		r := run(t, job, cmd, "--job", "-")
		if r.code != ExitRejected || !strings.Contains(r.stderr, `project_id: no project "no_such_project_y" in the database`) {
			t.Errorf("%s: exit %d %q", cmd, r.code, r.stderr)
		}
	}
}

// A setting out of range stops the command with the flag and variable
// named, before anything is opened.
func TestSettingsValidated(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		vars map[string]string
		args []string
		want string
	}{
		{map[string]string{"SEGPUB_CONCURRENCY": "0"}, []string{"serve"}, "--concurrency ($SEGPUB_CONCURRENCY): 0; want at least 1"},
		{nil, []string{"serve", "--lease", "1s"}, "--lease ($SEGPUB_LEASE): 1s; want at least 3s"},
		{nil, []string{"serve", "--max-attempts", "0"}, "--max-attempts ($SEGPUB_MAX_ATTEMPTS): 0; want at least 1"},
		{nil, []string{"serve", "--partition-rows", "-1"}, "--partition-rows ($SEGPUB_PARTITION_ROWS): -1 is negative"},
		{nil, []string{"submit", "--job", "-", "--max-in-flight", "-1"}, "--max-in-flight ($SEGPUB_MAX_IN_FLIGHT): -1 is negative"},
		{map[string]string{"SEGPUB_SCHEDULER_INTERVAL": "0s"}, []string{"scheduler"}, "--scheduler-interval ($SEGPUB_SCHEDULER_INTERVAL): 0s; want more than 0"},
		{map[string]string{"SEGPUB_SCHEDULER": "maybe"}, []string{"serve"}, `$SEGPUB_SCHEDULER: "maybe" is not on or off`},
		{map[string]string{"SEGPUB_LOG_FORMAT": "xml"}, []string{"serve"}, `$SEGPUB_LOG_FORMAT: "xml" is not json or text`},
	} {
		job := `{"version":1,"action":"publish","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"email","message":{},"audience":{"type":"all"}}}`
		r := runEnv(c.vars, job, c.args...)
		if r.code != ExitFailure || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v %v: exit %d %q, want %q", c.vars, c.args, r.code, r.stderr, c.want)
		}
	}
}

// Every flag each command took before the move to a command-line framework
// is still accepted, shown or not, in both spellings.
func TestEveryOldFlagAccepted(t *testing.T) {
	t.Parallel()
	common := []string{"database-url", "v", "db-stall-timeout"}
	service := append([]string{"state-url", "job-queue-url", "channel-url", "message-store-url", "dead-letter-url", "events-url",
		"data-dir", "listen", "concurrency", "max-in-flight", "max-attempts", "lease", "shutdown-grace", "partition-rows", "json-logs"}, common...)
	sched := []string{"scheduler-interval", "scheduler-catch-up"}
	old := map[string][]string{
		"size":            append([]string{"job", "data-dir", "cpuprofile"}, common...),
		"publish":         append([]string{"job", "out", "data-dir", "cpuprofile"}, common...),
		"seed":            append([]string{"project", "users", "seed", "replace"}, common...),
		"migrate indexes": append([]string{"project"}, common...),
		"bench":           append([]string{"sizes", "project", "users", "runs", "baseline-max-users", "only", "out", "plots", "json"}, common...),
		"bench indexes":   append([]string{"project", "json"}, common...),
		"bench baseline":  append([]string{"job", "out"}, common...),
		"serve":           append(append([]string{"scheduler"}, sched...), service...),
		"submit":          append([]string{"job"}, service...),
		"status":          service,
		"scheduler":       append(sched, service...),
		"campaign add":    append([]string{"file"}, service...),
		"campaign list":   service,
		"campaign pause":  service,
		"campaign resume": service,
		"campaign end":    service,
		"healthcheck":     {"url"},
		"explain":         append([]string{"job", "sample", "json"}, common...),
		"why":             append([]string{"job", "user", "json"}, common...),
		"diff":            {"ignore", "limit", "memory-mib", "json"},
		"cost":            {"messages-per-day", "campaign-size", "bench", "messages-per-second", "fargate-vcpu-hour", "fargate-gb-hour", "spot-discount", "sqs-per-million", "json"},
		"demo":            append([]string{"users", "data-dir", "json"}, common...),
	}
	env := &Env{Getenv: func(string) string { return "" }}
	for path, flags := range old {
		root := New(env).Command()
		cmd, _, err := root.Find(strings.Fields(path))
		if err != nil || cmd.Name() != strings.Fields(path)[len(strings.Fields(path))-1] {
			t.Errorf("%s: no such command (%v)", path, err)
			continue
		}
		for _, f := range flags {
			if cmd.Flags().Lookup(f) == nil && cmd.Flags().ShorthandLookup(f) == nil {
				t.Errorf("%s: --%s is gone", path, f)
			}
		}
	}
	// The one-dash spelling of the Go flag package, as scripts wrote it.
	got := longFlagsWithOneDash(New(env).Command(), []string{"publish", "-job", "-", "-out=file:///x", "-v", "--v", "-db-stall-timeout", "-1s", "--", "-job"})
	if want := "publish --job - --out=file:///x -v -v --db-stall-timeout -1s -- -job"; strings.Join(got, " ") != want {
		t.Fatalf("rewritten %q, want %q", strings.Join(got, " "), want)
	}
}

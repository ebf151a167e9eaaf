package cli

import (
	"strings"
	"testing"
)

// A required flag left out is a usage error like the parser's: the
// message, then the pointer to the command's help.
func TestMissingFlagPointsAtHelp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"size"}, "segpub size: --job is required\nRun 'segpub size -h' for usage.\n"},
		{[]string{"publish"}, "segpub publish: --job is required\nRun 'segpub publish -h' for usage.\n"},
		{[]string{"explain"}, "segpub explain: --job is required\nRun 'segpub explain -h' for usage.\n"},
		{[]string{"why", "--job", "-"}, "segpub why: --user is required\nRun 'segpub why -h' for usage.\n"},
	} {
		r := runEnv(nil, "", c.args...)
		if r.code != ExitFailure || r.stderr != c.want {
			t.Errorf("%v: exit %d, stderr %q, want 1 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

// A mistyped flag gets the flags it may have meant, in either spelling; a
// flag like none gets none.
func TestFlagSuggestions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"size", "--jbo", "x"}, "unknown flag: --jbo\n\nDid you mean this?\n\t--job\n"},
		{[]string{"publish", "-jbo", "x"}, "Did you mean this?\n\t--job\n"},
		{[]string{"seed", "--user=3"}, "unknown flag: --user\n\nDid you mean this?\n\t--users\n"},
		{[]string{"diff", "--memory", "1", "a", "b"}, "Did you mean this?\n\t--memory-mib\n"},
	} {
		r := runEnv(nil, "", c.args...)
		if r.code != ExitFailure || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "Run 'segpub ") {
			t.Errorf("%v: exit %d, stderr %q, want 1 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if r := runEnv(nil, "", "size", "--zzzzzz"); strings.Contains(r.stderr, "Did you mean") {
		t.Errorf("a suggestion for nothing like a flag: %q", r.stderr)
	}
	if editDistance("kitten", "sitting") != 3 || editDistance("", "ab") != 2 || editDistance("job", "job") != 0 {
		t.Error("editDistance")
	}
}

// Commands that read no job do not offer the job and CSV size caps.
func TestCapsOnlyWhereJobsAreRead(t *testing.T) {
	t.Parallel()
	for _, cmd := range [][]string{{"seed"}, {"migrate", "indexes"}, {"bench"}, {"bench", "indexes"}, {"demo"}} {
		r := runEnv(nil, "", append(cmd, "-h")...)
		if r.code != ExitOK || strings.Contains(r.stdout, "--max-job-bytes") || strings.Contains(r.stdout, "--csv-max-bytes") {
			t.Errorf("%v -h lists a cap that does not apply:\n%s", cmd, r.stdout)
		}
	}
	for _, cmd := range [][]string{{"publish"}, {"explain"}} {
		if r := runEnv(nil, "", append(cmd, "-h")...); !strings.Contains(r.stdout, "--max-job-bytes") || !strings.Contains(r.stdout, "--csv-max-bytes") {
			t.Errorf("%v -h lacks the caps:\n%s", cmd, r.stdout)
		}
	}
}

// The service's /metrics, /healthz and /readyz listen on loopback unless
// told otherwise (the container image sets SEGPUB_LISTEN=:9090 itself).
func TestListenDefaultsToLoopback(t *testing.T) {
	t.Parallel()
	r := runEnv(nil, "", "serve", "-h")
	if !strings.Contains(r.stdout, `(default "127.0.0.1:9090")`) {
		t.Fatalf("serve -h:\n%s", r.stdout)
	}
	host, _, _ := strings.Cut(DefaultListen, ":")
	if host != "127.0.0.1" {
		t.Fatalf("DefaultListen %q", DefaultListen)
	}
}

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// segpub check needs no database: every valid fixture and example exits 0,
// every rejected fixture exits 2 naming its path on standard error and in
// the JSON, and a template a run would refuse is refused here too.
func TestCheck(t *testing.T) {
	t.Parallel()
	none := map[string]string{} // no SEGPUB_DATABASE_URL
	valid, _ := filepath.Glob("../job/testdata/jobs/valid/*.json")
	examples, _ := filepath.Glob("../../examples/*.json")
	for _, f := range append(valid, examples...) {
		if strings.Contains(f, "delivery") && !parserReadsDelivery() {
			continue
		}
		r := runEnv(none, "", "check", "--job", f)
		var out checkResult
		if r.code != ExitOK || json.Unmarshal([]byte(r.stdout), &out) != nil || !out.Valid {
			t.Errorf("check %s: exit %d %q %q", f, r.code, r.stdout, r.stderr)
		}
	}
	rejected, _ := filepath.Glob("../job/testdata/jobs/rejected/*.json")
	if len(rejected) < 40 {
		t.Fatalf("%d rejected fixtures", len(rejected))
	}
	for _, f := range rejected {
		r := runEnv(none, "", "check", "--job", f)
		var out checkResult
		if r.code != ExitRejected || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Valid || out.Path == nil {
			t.Errorf("check %s: exit %d %q %q; want 2 and a path", f, r.code, r.stdout, r.stderr)
			continue
		}
		if want := "segpub check: rejected: " + *out.Path; !strings.HasPrefix(r.stderr, want) {
			t.Errorf("check %s: stderr %q, want it to start %q", f, r.stderr, want)
		}
	}

	// Past the parser: a template is rendered as the run renders it.
	job := `{"version":1,"action":"calculate-size","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"email",
"audience":{"type":"segment","groups":[{"conditions":[{"kind":"user","attribute":"d","operator":"=","value":{"template":"{% include 'x' %}"}}]}]}}}`
	r := runEnv(none, job, "check", "--job", "-")
	if r.code != ExitRejected || !strings.Contains(r.stderr, "campaign.audience.groups[0].conditions[0].value") {
		t.Errorf("check of an include template: exit %d %q", r.code, r.stderr)
	}
	// A claim check is valid as an envelope.
	r = runEnv(none, `{"version":1,"message_id":"m-1"}`, "check", "--job", "-")
	if r.code != ExitOK || !strings.Contains(r.stdout, `"message_id":"m-1"`) {
		t.Errorf("check of a claim check: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	// Not a rejection: a file that cannot be read is a failure.
	r = runEnv(none, "", "check", "--job", filepath.Join(t.TempDir(), "absent.json"))
	if r.code != ExitFailure {
		t.Errorf("check of a missing file: exit %d %q", r.code, r.stderr)
	}
	// Over --max-job-bytes: a rejection, as the worker's.
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`{"version":1,"message_id":"`+strings.Repeat("m", 100)+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runEnv(none, "", "check", "--job", big, "--max-job-bytes", "50")
	if r.code != ExitRejected {
		t.Errorf("check over --max-job-bytes: exit %d %q", r.code, r.stderr)
	}
}

func parserReadsDelivery() bool {
	r := runEnv(nil, `{"version":1,"action":"calculate-size","request_id":"r","project_id":"p",
"campaign":{"id":"c","channel":"email","audience":{"type":"all"},"delivery":null}}`, "check", "--job", "-")
	return r.code == ExitOK
}

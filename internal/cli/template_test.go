package cli

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
)

// Issue 13: `segpub size` with a condition template that includes
// /proc/self/environ exits 2 (rejected) with the template's path, and
// neither its result nor its error echoes the environment.
func TestSizeTemplateFileRead(t *testing.T) {
	t.Parallel()
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		t.Skipf("no /proc/self/environ: %v", err)
	}
	tables := dbtest.Project(t)
	dbtest.Exec(t, `INSERT INTO `+tables.User+` (notifly_user_id, email, user_properties, random_bucket_number) VALUES ('u1', 'a@x.com', '{"signup":"x"}', 1)`)
	jobText := fmt.Sprintf(`{"version":1,"action":"calculate-size","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"c","channel":"email","audience":{"type":"segment","groups":[{"conditions":[
{"kind":"user","attribute":"signup","operator":"exists"},
{"kind":"user","attribute":"signup","operator":"=","value":{"template":"{%% capture f %%}{%% include \"../../../../../../../../proc/self/environ\" %%}{%% endcapture %%}{{ f | date_add: \"1 day\" }}"}}]}]}}}`, tables.Project)
	r := run(t, jobText, "size", "--job", "-")
	if r.code != ExitRejected || !strings.Contains(r.stderr, `campaign.audience.groups[0].conditions[1].value.template: tag "include" is not allowed`) {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, e := range strings.Split(string(environ), "\x00") {
		if len(e) >= 12 && (strings.Contains(r.stdout, e) || strings.Contains(r.stderr, e)) {
			t.Fatalf("the output echoes the environment:\n%s\n%s", r.stdout, r.stderr)
		}
	}
}

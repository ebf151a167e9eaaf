package cli

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/scheduler"
)

// isolatedStateURL is the test database with a schema of the test's own
// first on the search path, so the scheduler's tables are the test's.
func isolatedStateURL(t *testing.T) string {
	t.Helper()
	name := dbtest.NewProjectID()
	dbtest.Exec(t, `CREATE SCHEMA "`+name+`"`)
	t.Cleanup(func() { dbtest.Exec(t, `DROP SCHEMA "`+name+`" CASCADE`) })
	u, err := url.Parse(dbtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// Every example campaign file is accepted by campaign add, documented by
// the schema, and listed back; list --json is JSON.
func TestCampaignFiles(t *testing.T) {
	t.Parallel()
	state := isolatedStateURL(t)
	vars := map[string]string{"SEGPUB_DATABASE_URL": dbtest.URL(), "SEGPUB_STATE_URL": state}
	files, _ := filepath.Glob("../../examples/campaigns/*.json")
	if len(files) < 4 {
		t.Fatalf("%d example campaign files", len(files))
	}
	var schema struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	data, err := os.ReadFile("../../docs/campaign.schema.json")
	if err != nil || json.Unmarshal(data, &schema) != nil {
		t.Fatalf("schema: %v", err)
	}
	var ids []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(data, &top); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for k := range top {
			if _, ok := schema.Properties[k]; !ok {
				t.Errorf("%s: field %q is not in the schema", f, k)
			}
		}
		r := runEnv(vars, "", "campaign", "add", "--file", f)
		var out struct {
			Added bool   `json:"added"`
			ID    string `json:"id"`
		}
		if r.code != ExitOK || json.Unmarshal([]byte(r.stdout), &out) != nil || !out.Added || out.ID == "" {
			t.Fatalf("campaign add %s: exit %d %q %q", f, r.code, r.stdout, r.stderr)
		}
		ids = append(ids, out.ID)
	}
	r := runEnv(vars, "", "campaign", "list", "--json")
	var list []scheduler.Campaign
	if r.code != ExitOK || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != len(files) {
		t.Fatalf("campaign list --json: exit %d %q", r.code, r.stdout)
	}
	// A misspelt field is refused by name; nothing is added.
	bad := `{"project_id":"demo","campaign":{"id":"c2","channel":"email","audience":{"type":"all"},"message":{}},"schedul":{"kind":"immediate"}}`
	if r := runEnv(vars, bad, "campaign", "add", "--file", "-"); r.code != ExitRejected || !strings.Contains(r.stderr, "schedul: unknown field") {
		t.Fatalf("misspelt field: exit %d %q", r.code, r.stderr)
	}
	bad = `{"project_id":"demo","campaign":{"id":"c3","channel":"email","audience":{"type":"all"},"message":{}},"schedule":{"kind":"daily","time":"9am"}}`
	if r := runEnv(vars, bad, "campaign", "add", "--file", "-"); r.code != ExitRejected || !strings.Contains(r.stderr, `schedule.time: want HH:MM, got "9am"`) {
		t.Fatalf("bad time: exit %d %q", r.code, r.stderr)
	}
	if r := runEnv(vars, "", "campaign", "list", "--json"); !strings.Contains(r.stdout, ids[0]) || strings.Contains(r.stdout, `"c2"`) || strings.Contains(r.stdout, `"c3"`) {
		t.Fatalf("after refusals: %s", r.stdout)
	}
	// Flags after the id, as everywhere.
	if r := runEnv(map[string]string{"SEGPUB_DATABASE_URL": dbtest.URL()}, "", "campaign", "pause", ids[0], "--state-url", state); r.code != ExitOK || !strings.Contains(r.stdout, `"status":"paused"`) {
		t.Fatalf("pause: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestCampaignTable(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 1, 3, 4, 0, 0, time.UTC)
	table := campaignTable([]scheduler.Campaign{
		{ID: "cmp_a", ProjectID: "demo", Action: "publish", Campaign: json.RawMessage(`{"id":"cmp_a","channel":"email"}`),
			Schedule: json.RawMessage(`{"kind":"weekly","weekdays":["fri","sat"],"time":"18:30"}`), Status: "active", CreatedAt: created},
		{ID: "cmp_long_name", ProjectID: "demo", Action: "calculate-size", Campaign: json.RawMessage(`{"id":"cmp_long_name","channel":"push_notification"}`),
			Schedule: json.RawMessage(`{"kind":"immediate"}`), Status: "ended", CreatedAt: created},
	})
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID ") ||
		!strings.Contains(lines[1], "weekly fri,sat 18:30 (Asia/Seoul)") || !strings.Contains(lines[2], "immediate") ||
		strings.Index(lines[1], "demo") != strings.Index(lines[2], "demo") || strings.Contains(table, "{") {
		t.Fatalf("table:\n%s", table)
	}
	if got := campaignTable(nil); !strings.Contains(got, "no campaigns") {
		t.Fatalf("empty: %q", got)
	}
}

// The demo says which database it seeds before it writes anything.
func TestDemoNamesItsDatabase(t *testing.T) {
	t.Parallel()
	db := isolatedStateURL(t)
	r := runEnv(nil, "", "demo", "--users", "300", "--data-dir", t.TempDir(), "--database-url", db)
	if r.code != ExitOK {
		t.Fatalf("demo: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if first, _, _ := strings.Cut(r.stdout, "\n"); first != "== database "+redactDB(db) || !strings.Contains(first, "@") {
		t.Fatalf("first line %q", first)
	}
}

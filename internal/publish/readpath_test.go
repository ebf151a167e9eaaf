package publish

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
)

// The audience query's sort carries the select list and nothing more: its
// keys are output columns (not a second, collated copy of the ids), and
// user_properties is text already, converted wherever the rows are made
// (in parallel workers, below a Gather) rather than as they are sent.
func TestAudienceSortCarriesSelectListOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "ext-1", "a@x.com", nil, `{"a": 1}`, 0)
	b.device("d1", "u1", "tok-1", "ios")
	for _, tc := range []struct {
		channel string
		columns int
	}{{"push_notification", 21}, {"email", 12}} {
		j, err := job.Parse([]byte(b.jobJSON(`"channel":"` + tc.channel + `","audience":{"type":"all"}`)))
		if err != nil {
			t.Fatal(err)
		}
		q, _, err := b.runner.AudienceQuery(t.Context(), j)
		if err != nil {
			t.Fatal(err)
		}
		var raw []byte
		if err := b.pool.QueryRow(t.Context(), "EXPLAIN (VERBOSE, FORMAT JSON) "+q.SQL, q.Args...).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var plan []struct {
			Plan struct {
				Type   string   `json:"Node Type"`
				Output []string `json:"Output"`
			} `json:"Plan"`
		}
		if err := json.Unmarshal(raw, &plan); err != nil || len(plan) != 1 {
			t.Fatalf("%s: plan %s: %v", tc.channel, raw, err)
		}
		top := plan[0].Plan
		if len(top.Output) != tc.columns {
			t.Errorf("%s: %s outputs %d columns, want the %d of the select list: %q", tc.channel, top.Type, len(top.Output), tc.columns, top.Output)
		}
		if !strings.Contains(strings.Join(top.Output, ","), "user_properties)::text") {
			t.Errorf("%s: user_properties not read as text: %q", tc.channel, top.Output)
		}
	}
}

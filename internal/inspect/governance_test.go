package inspect

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// explain counts what each governance rule removes or defers; why names
// the rule that applied to a user and why: the property's value, the
// deliveries in the window.
func TestGovernanceExplainWhy(t *testing.T) {
	t.Parallel()
	tb := dbtest.Project(t)
	users := []struct{ id, ext, phone, props string }{
		{"u1", "ok", "01011110001", `{"mk": true}`},
		{"u2", "str", "01011110002", `{"mk": "true"}`},
		{"u3", "missing", "01011110003", `{}`},
		{"u4", "capped", "01011110004", `{"mk": true}`},
		{"u5", "both", "01011110005", `{}`}, // no consent and capped
		{"u6", "night", "01011110006", `{"mk": true, "nc": true}`},
	}
	for _, u := range users {
		dbtest.Exec(t, `INSERT INTO `+tb.User+` (notifly_user_id, external_user_id, phone_number, user_properties, random_bucket_number) VALUES ($1, $2, $3, $4::jsonb, 0)`,
			u.id, u.ext, u.phone, u.props)
	}
	for _, u := range []string{"u4", "u4", "u5", "u5", "u1"} {
		dbtest.Exec(t, `INSERT INTO `+tb.DeliveryResult+` (campaign_id, notifly_user_id, channel, status, created_at) VALUES ('c0', $1, 'text_message', 'sent', '2026-11-24T13:00:00Z')`, u)
	}
	j, err := job.Parse(fmt.Appendf(nil, `{"version":1,"action":"calculate-size","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T23:00:00+09:00",
"campaign":{"id":"c","channel":"text_message","audience":{"type":"all"},
"advertising":{"consent":"mk","night_consent":"nc"},"frequency_cap":{"max_messages":2,"within_days":1}}}`, tb.Project))
	if err != nil {
		t.Fatal(err)
	}
	pool := dbtest.Pool(t)
	ex, err := Explain(context.Background(), publish.Config{Pool: pool}, j, 5)
	if err != nil {
		t.Fatal(err)
	}
	g := ex.Governance
	if g == nil || *g.NoConsent != (RuleCount{Removed: 3, Applies: 3}) || *g.FrequencyCapped != (RuleCount{Removed: 1, Applies: 2}) || g.Deferred == nil || *g.Deferred != 1 {
		t.Fatalf("explain governance %+v", g)
	}
	cases := []struct{ ext, reason, detail string }{
		{"ok", "published", `user property "nc" is missing, not the JSON value true: deferred to 08:00`},
		{"str", "no_consent", `user property "mk" is "true", not the JSON value true`},
		{"missing", "no_consent", `user property "mk" is missing`},
		{"capped", "frequency_capped", `2 text_message deliveries between 2026-11-23T14:00:00Z and 2026-11-24T14:00:00Z, at or over max_messages 2`},
		{"both", "no_consent", `user property "mk" is missing`},
		{"night", "published", ""},
	}
	for _, c := range cases {
		ans, err := Why(context.Background(), publish.Config{Pool: pool}, j, c.ext)
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.Outcomes) != 1 || ans.Outcomes[0].Reason != c.reason || !strings.Contains(ans.Outcomes[0].Detail, c.detail) ||
			(c.detail == "") != (ans.Outcomes[0].Detail == "") {
			t.Errorf("%s: outcomes %+v, want %s (%s)", c.ext, ans.Outcomes, c.reason, c.detail)
		}
		if ans.Governance == nil || ans.Governance.Frequency == nil || ans.Governance.Consent == nil {
			t.Fatalf("%s: governance %+v", c.ext, ans.Governance)
		}
	}
	ans, _ := Why(context.Background(), publish.Config{Pool: pool}, j, "both")
	f := ans.Governance.Frequency
	if f.Deliveries != 2 || !f.Capped || ans.Governance.Consent.Value != nil || ans.Governance.Consent.Holds {
		t.Fatalf("both: %+v %+v", f, ans.Governance.Consent)
	}
	ans, _ = Why(context.Background(), publish.Config{Pool: pool}, j, "night")
	if ans.Governance.NightConsent == nil || !ans.Governance.NightConsent.Holds || *ans.Governance.NightConsent.Value != "true" || ans.Outcomes[0].Deferred {
		t.Fatalf("night: %+v %+v", ans.Governance.NightConsent, ans.Outcomes)
	}
}

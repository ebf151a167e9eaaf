package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// fixture has a user for every skip reason, one published, one outside the
// audience, and one listed id with no user.
func fixture(t *testing.T) (schema.Tables, *job.Job) {
	t.Helper()
	tb := dbtest.Project(t)
	dbtest.Exec(t, `INSERT INTO `+tb.Variants+` VALUES ('va', 'x', 'c', 'A', 1), ('vc', 'x', 'c', 'control', 1)`)
	users := []struct {
		id, ext string
		email   any
		bucket  int
		tier    string
	}{
		{"u1", "pub", "a@x.com", 0, "gold"},
		{"u2", "dup", " A@x.com", 1, "gold"},
		{"u3", "ctl", "c@x.com", 6000, "gold"},
		{"u4", "none", nil, 2, "gold"},
		{"u5", "bad", "bad", 3, "gold"},
		{"u6", "prev", "p@x.com", 4, "gold"},
		{"u7", "out", "o@x.com", 5, "silver"},
	}
	for _, u := range users {
		dbtest.Exec(t, `INSERT INTO `+tb.User+` (notifly_user_id, external_user_id, email, user_properties, random_bucket_number) VALUES ($1, $2, $3, $4::jsonb, $5)`,
			u.id, u.ext, u.email, fmt.Sprintf(`{"tier":%q}`, u.tier), u.bucket)
	}
	dbtest.Exec(t, `INSERT INTO `+tb.DeliveryResult+` (campaign_id, notifly_user_id, channel, status) VALUES ('c', 'u6', 'email', 'sent')`)
	j, err := job.Parse(fmt.Appendf(nil, `{"version":1,"action":"calculate-size","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"c","channel":"email","experiment_id":"x","exclude_previous_recipients":true,"message":{"s":"hi"},
"audience":{"type":"user_ids","user_ids":["pub","dup","ctl","none","bad","prev","out","ghost"],
"groups":[{"conditions":[{"kind":"user","attribute":"tier","operator":"=","value":"gold"}]}]}}}`, tb.Project))
	if err != nil {
		t.Fatal(err)
	}
	return tb, j
}

func TestWhyEveryReason(t *testing.T) {
	t.Parallel()
	_, j := fixture(t)
	pool := dbtest.Pool(t)
	want := map[string]string{
		"pub": "published", "dup": "duplicate_destination", "ctl": "control_group", "none": "no_contact",
		"bad": "invalid_contact", "prev": "previously_received", "ghost": "unknown_user", "out": "not in the audience (no group holds)",
	}
	for ext, reason := range want {
		ans, err := Why(context.Background(), publish.Config{Pool: pool}, j, ext)
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.Outcomes) != 1 || ans.Outcomes[0].Reason != reason {
			t.Errorf("%s: outcomes %+v, want %s", ext, ans.Outcomes, reason)
			continue
		}
		if ext == "pub" {
			var m map[string]any
			if err := json.Unmarshal(ans.Outcomes[0].Message, &m); err != nil || m["variant_id"] != "va" {
				t.Errorf("pub: message %s", ans.Outcomes[0].Message)
			}
		}
		if ext == "out" {
			c := ans.Conditions[0]
			if c.Holds || c.Value == nil || *c.Value != `"silver"` || c.Path != "campaign.audience.groups[0].conditions[0]" {
				t.Errorf("out: condition %+v", c)
			}
		}
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	tb, j := fixture(t)
	ex, err := Explain(context.Background(), publish.Config{Pool: dbtest.Pool(t)}, j, 5)
	if err != nil {
		t.Fatal(err)
	}
	r := ex.Result
	if r.Candidates != 7 || r.Published != 1 || r.Skipped.UnknownUser != 1 || r.Skipped.ControlGroup != 1 || r.Action != job.ActionCalculateSize {
		t.Fatalf("result %+v", r)
	}
	if len(ex.Sample) != 1 || !strings.Contains(string(ex.Sample[0]), `"email":"a@x.com"`) {
		t.Fatalf("sample %s", ex.Sample)
	}
	if strings.Contains(ex.SQL, "gold") || !strings.Contains(fmt.Sprint(ex.Params), "gold") || len(ex.Plan) == 0 {
		t.Fatalf("SQL should carry values only as parameters:\n%s\n%v", ex.SQL, ex.Params)
	}
	// An email id list that excludes previous recipients reads deliveries;
	// it reads neither devices nor the event index.
	if len(ex.Warnings) != 1 || !strings.Contains(ex.Warnings[0], "sp_drcu_"+tb.Project) {
		t.Fatalf("warnings %v", ex.Warnings)
	}
}

// explain warns only about the missing indexes the job's queries would use.
func TestExplainWarnsOnlyAboutUsedIndexes(t *testing.T) {
	t.Parallel()
	tb := dbtest.Project(t)
	for _, c := range []struct {
		campaign string
		want     []string
	}{
		{`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[{"kind":"user","attribute":"tier","operator":"=","value":"gold"}]}]}`, nil},
		{`"channel":"push_notification","audience":{"type":"user_ids","user_ids":["a"]}`, []string{"sp_dut_"}},
		{`"channel":"email","audience":{"type":"user_ids","user_ids":["a"]}`, nil},
		{`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[{"kind":"event","event":"buy","operator":">=","value":1}]}]}`, []string{"sp_evc_"}},
		{`"channel":"text_message","exclude_previous_recipients":true,"audience":{"type":"segment","groups":[{"conditions":[{"kind":"delivery","campaign_id":"c0","received":true}]}]}`, []string{"sp_drcu_"}},
		{`"channel":"email","frequency_cap":{"max_messages":3,"within_days":7},"audience":{"type":"all"}`, []string{"sp_drch_"}},
	} {
		j, err := job.Parse(fmt.Appendf(nil, `{"version":1,"action":"calculate-size","request_id":"r","project_id":%q,"campaign":{"id":"c","message":{},%s}}`, tb.Project, c.campaign))
		if err != nil {
			t.Fatal(err)
		}
		got, err := missingIndexes(context.Background(), dbtest.Pool(t), tb, j)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: warnings %v, want %v", c.campaign, got, c.want)
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i], w+tb.Project) {
				t.Errorf("%s: warnings %v, want %v", c.campaign, got, c.want)
			}
		}
	}
}

// why shows the value a template rendered, not the template.
func TestWhyRendersTemplates(t *testing.T) {
	t.Parallel()
	tb, _ := fixture(t)
	j, err := job.Parse(fmt.Appendf(nil, `{"version":1,"action":"calculate-size","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"c","channel":"email","message":{},"audience":{"type":"segment","groups":[{"conditions":[
{"kind":"user","attribute":"tier","operator":"=","value":{"template":"{{ \"go\" | append: \"ld\" }}"}}]}]}}}`, tb.Project))
	if err != nil {
		t.Fatal(err)
	}
	ans, err := Why(context.Background(), publish.Config{Pool: dbtest.Pool(t)}, j, "pub")
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Conditions) != 1 || ans.Conditions[0].Meaning != `user tier = "gold"` || !ans.Conditions[0].Holds {
		t.Fatalf("conditions %+v", ans.Conditions)
	}
}

func writeLines(t *testing.T, lines ...string) string {
	path := filepath.Join(t.TempDir(), fmt.Sprintf("f%d.ndjson", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDiff(t *testing.T) {
	t.Parallel()
	msg := func(key, email, title string) string {
		return fmt.Sprintf(`{"idempotency_key":%q,"recipient":{"email":%q},"message":{"title":%q}}`, key, email, title)
	}
	a := writeLines(t, msg("k1", "a@x.com", "hi"), msg("k2", "b@x.com", "hi"), msg("k3", "c@x.com", "hi"), msg("k4", "d@x.com", "hi"))
	// The old publisher: raw case and spaces, another key scheme, one
	// message different, one missing, one extra, one person twice.
	b := writeLines(t, msg("o1", " A@X.com", "hi"), msg("o2", "b@x.com", "hello"), msg("o4", "d@x.com", "hi"),
		msg("o5", "e@x.com", "hi"), msg("o6", "d@x.com", "hi"))
	r, err := Diff(a, b, []string{"idempotency_key"})
	if err != nil {
		t.Fatal(err)
	}
	// a@x.com matches by destination but is published raw by B.
	if r.Same != 1 || strings.Join(r.OnlyInA, ",") != "email:c@x.com" || strings.Join(r.OnlyInB, ",") != "email:e@x.com" ||
		len(r.Different) != 2 || r.Different[0].Fields[0] != "recipient.email" || r.Different[1].Fields[0] != "message.title" ||
		strings.Join(r.RepeatedB, ",") != "email:d@x.com" {
		t.Fatalf("report %+v", r)
	}
	if _, err := Diff(a, writeLines(t, `{"recipient":{}}`), nil); err == nil || !strings.Contains(err.Error(), ":1: recipient has no email") {
		t.Fatalf("bad file: %v", err)
	}
}

// On seeded data, explain counts what publish publishes, and why reports,
// for a published user, exactly the message publish writes for them.
func TestOnSeededData(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	tables, _ := schema.For(dbtest.NewProjectID())
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: tables.Project, Users: 3000}); err != nil {
		t.Fatal(err)
	}
	j, err := job.Parse(fmt.Appendf(nil, `{"version":1,"action":"publish","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"cmp_ab","channel":"email","experiment_id":"exp_ab","message":{"s":"hi"},"audience":{"type":"all"}}}`, tables.Project))
	if err != nil {
		t.Fatal(err)
	}
	runner, _ := publish.New(publish.Config{Pool: pool})
	all := &sampler{n: 1 << 30}
	res, err := runner.Run(context.Background(), j, all)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := Explain(context.Background(), publish.Config{Pool: pool}, j, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Result.Published != res.Published || ex.Result.Skipped != res.Skipped || len(ex.Sample) != 2 {
		t.Fatalf("explain %+v, publish %+v", ex.Result, res)
	}
	var m struct {
		Recipient struct {
			ExternalUserID string `json:"external_user_id"`
		} `json:"recipient"`
	}
	for _, msg := range all.out[:20] {
		if json.Unmarshal(msg, &m) != nil || m.Recipient.ExternalUserID == "" {
			continue
		}
		ans, err := Why(context.Background(), publish.Config{Pool: pool}, j, m.Recipient.ExternalUserID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.Outcomes) != 1 || ans.Outcomes[0].Reason != "published" || string(ans.Outcomes[0].Message) != string(msg) {
			t.Fatalf("why %s: %+v\nwant message %s", m.Recipient.ExternalUserID, ans.Outcomes, msg)
		}
		return
	}
	t.Fatal("no published message with an external id in the first 20")
}

// One job run twice without scheduled_at: every send_at moves by the same
// amount. That is one shift, reported once, and the messages are the same;
// a shift that is not the same everywhere stays a difference.
func TestDiffUniformShift(t *testing.T) {
	t.Parallel()
	msg := func(email, sendAt, title string) string {
		return fmt.Sprintf(`{"request_id":"r","recipient":{"email":%q},"send_at":%q,"message":{"title":%q}}`, email, sendAt, title)
	}
	a := writeLines(t, msg("a@x.com", "2026-11-24T09:00:00Z", "hi"), msg("b@x.com", "2026-11-24T09:05:00Z", "hi"), msg("c@x.com", "2026-11-24T09:10:00Z", "hi"))
	b := writeLines(t, msg("a@x.com", "2026-11-24T09:00:03.5Z", "hi"), msg("b@x.com", "2026-11-24T09:05:03.5Z", "hi"), msg("c@x.com", "2026-11-24T09:10:03.5Z", "yo"))
	r, err := Diff(a, b, []string{"request_id"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Shifted) != 1 || r.Shifted[0].Field != "send_at" || r.Shifted[0].By != "+3.5s" || r.Shifted[0].ByMS != 3500 || r.Shifted[0].Messages != 3 {
		t.Fatalf("shifted %+v", r.Shifted)
	}
	if r.Same != 2 || len(r.Different) != 1 || strings.Join(r.Different[0].Fields, ",") != "message.title" {
		t.Fatalf("report %+v", r)
	}
	if s := r.Summary(20); strings.Count(s, "send_at") != 1 || !strings.Contains(s, "send_at: B is A +3.5s in all 3 messages") {
		t.Fatalf("summary:\n%s", s)
	}
	// One message moved by another amount: no uniform shift.
	c := writeLines(t, msg("a@x.com", "2026-11-24T09:00:03.5Z", "hi"), msg("b@x.com", "2026-11-24T09:05:09Z", "hi"), msg("c@x.com", "2026-11-24T09:10:03.5Z", "hi"))
	r, err = Diff(a, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Shifted) != 0 || len(r.Different) != 3 || !r.Differ() {
		t.Fatalf("non-uniform: %+v", r)
	}
	// --ignore send_at leaves it out altogether.
	if r, err = Diff(a, c, []string{"send_at", "request_id"}); err != nil || r.Same != 3 || len(r.Shifted) != 0 || r.Differ() {
		t.Fatalf("ignored: %+v %v", r, err)
	}
}

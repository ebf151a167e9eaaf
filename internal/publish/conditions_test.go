package publish

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

func testRef() time.Time {
	return time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC) // 18:00 in Seoul
}

// audienceUsers runs an email job for a segment of one condition and
// returns the published user ids, sorted.
func (b *testBundle) segmentUsers(cond string) []string {
	b.t.Helper()
	_, sink := b.run(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[` + cond + `]}]}`))
	ids := userIDs(sink)
	sort.Strings(ids)
	return ids
}

// Section 3: user properties with typed comparison. A missing, null or
// mismatched property is false, except for !=, not_in and not_exists.
func TestUserPropertyConditions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	props := map[string]string{
		"num30":  `{"age": 30, "tier": "gold", "vip": true, "name": "Bob"}`,
		"num7":   `{"age": 7.5, "tier": "silver", "vip": false, "name": "bob"}`,
		"str30":  `{"age": "30", "tier": "Gold", "name": "'; DROP TABLE x; --"}`,
		"null":   `{"age": null, "tier": null, "vip": null}`,
		"none":   `{}`,
		"arr":    `{"age": [30], "tier": {"a": 1}}`,
		"quote'": `{"we\"ird key": "x'y", "$custom": "c"}`,
	}
	for id, p := range props {
		b.user(id, "ext-"+id, id+"@x.com", nil, p, 0)
	}
	cases := []struct {
		cond string
		want string
	}{
		{`{"kind":"user","attribute":"age","operator":"=","value":30}`, "num30"},
		{`{"kind":"user","attribute":"age","operator":"=","value":30.0}`, "num30"},
		{`{"kind":"user","attribute":"age","operator":"=","value":"30"}`, "str30"},
		{`{"kind":"user","attribute":"age","operator":"!=","value":30}`, "arr none null num7 quote' str30"},
		{`{"kind":"user","attribute":"age","operator":">","value":7.4}`, "num30 num7"},
		{`{"kind":"user","attribute":"age","operator":"<","value":8}`, "num7"},
		{`{"kind":"user","attribute":"age","operator":"<=","value":30}`, "num30 num7"},
		{`{"kind":"user","attribute":"age","operator":">=","value":"3"}`, "str30"},
		{`{"kind":"user","attribute":"age","operator":"exists"}`, "arr num30 num7 str30"},
		{`{"kind":"user","attribute":"age","operator":"not_exists"}`, "none null quote'"},
		{`{"kind":"user","attribute":"age","operator":"in","value":[30,"7.5"]}`, "num30"},
		{`{"kind":"user","attribute":"age","operator":"in","value":["30", 7.5]}`, "num7 str30"},
		{`{"kind":"user","attribute":"age","operator":"not_in","value":[30,"30"]}`, "arr none null num7 quote'"},
		{`{"kind":"user","attribute":"age","operator":"in","value":[]}`, ""},
		{`{"kind":"user","attribute":"age","operator":"not_in","value":[]}`, "arr none null num30 num7 quote' str30"},
		// strings compare byte by byte: "Gold" < "gold", "Bob" < "bob"
		{`{"kind":"user","attribute":"tier","operator":"<","value":"gold"}`, "str30"},
		{`{"kind":"user","attribute":"tier","operator":">","value":"gold"}`, "num7"},
		{`{"kind":"user","attribute":"name","operator":">=","value":"a"}`, "num7"},
		{`{"kind":"user","attribute":"name","operator":"<","value":"a"}`, "num30 str30"},
		{`{"kind":"user","attribute":"tier","operator":"contains","value":"ol"}`, "num30 str30"},
		{`{"kind":"user","attribute":"tier","operator":"contains","value":"%"}`, ""},
		{`{"kind":"user","attribute":"name","operator":"contains","value":"DROP TABLE"}`, "str30"},
		{`{"kind":"user","attribute":"vip","operator":"=","value":true}`, "num30"},
		{`{"kind":"user","attribute":"vip","operator":"!=","value":true}`, "arr none null num7 quote' str30"},
		{`{"kind":"user","attribute":"vip","operator":"in","value":[false]}`, "num7"},
		{`{"kind":"user","attribute":"tier","operator":"=","value":true}`, ""},
		{`{"kind":"user","attribute":"we\"ird key","operator":"=","value":"x'y"}`, "quote'"},
		{`{"kind":"user","attribute":"$custom","operator":"=","value":"c"}`, ""}, // rejected below: $ names are columns
		{`{"kind":"user","attribute":"$email","operator":"=","value":"num7@x.com"}`, "num7"},
		{`{"kind":"user","attribute":"$email","operator":"=","value":7}`, ""},
		{`{"kind":"user","attribute":"$external_user_id","operator":"in","value":["ext-null","ext-none",1]}`, "none null"},
		{`{"kind":"user","attribute":"$phone_number","operator":"exists"}`, ""},
		{`{"kind":"user","attribute":"$phone_number","operator":"!=","value":"x"}`, "arr none null num30 num7 quote' str30"},
		{`{"kind":"user","attribute":"$random_bucket_number","operator":"<","value":1}`, "arr none null num30 num7 quote' str30"},
		{`{"kind":"user","attribute":"$random_bucket_number","operator":"=","value":"0"}`, ""},
	}
	for _, c := range cases {
		if strings.Contains(c.cond, `"$custom"`) {
			_, _, err := b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[` + c.cond + `]}]}`))
			if err == nil || !strings.Contains(err.Error(), "conditions[0].attribute") {
				t.Fatalf("$custom: want rejection naming the attribute, got %v", err)
			}
			continue
		}
		got := strings.Join(b.segmentUsers(c.cond), " ")
		if got != sortedWords(c.want) {
			t.Errorf("%s\n got  %q\n want %q", c.cond, got, c.want)
		}
	}
}

// Section 3: versions compare part by part, numerically.
func TestVersionConditions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	versions := map[string]any{"v392": "3.9.2", "v3100": "3.10.0", "v310": "3.10", "v4": "4", "beta": "beta", "vnull": nil, "v3x": "3.x", "v31001": "3.10.0.1"}
	for id, v := range versions {
		b.user(id, nil, id+"@x.com", nil, "", 0)
		b.device("d-"+id, id, "t-"+id, "ios", "1", v)
	}
	cases := []struct{ op, value, want string }{
		{">", `"3.9.2"`, "v3100 v31001 v310 v4"},
		{">=", `"3.10"`, "v3100 v31001 v310 v4"},
		{"=", `"3.10.0"`, "v3100 v310"},
		{"=", `"3.10.0.0"`, "v3100 v310"},
		{"<", `"3.10"`, "v392"},
		{"<=", `"3.10"`, "v3100 v310 v392"},
		{"!=", `"3.10"`, "beta v31001 v392 v3x v4 vnull"},
		{"=", `"abc"`, ""},
		{"!=", `"abc"`, "beta v3100 v31001 v310 v392 v3x v4 vnull"},
		{"in", `["3.9.2", "4.0", "x"]`, "v392 v4"},
		{"not_in", `["3.9.2", "4.0"]`, "beta v3100 v31001 v310 v3x vnull"},
		{"contains", `"3.1"`, "v3100 v31001 v310"},
		{"exists", ``, "beta v3100 v31001 v310 v392 v3x v4"},
		{"=", `3.1`, ""},
	}
	for _, c := range cases {
		value := ""
		if c.value != "" {
			value = `,"value":` + c.value
		}
		cond := fmt.Sprintf(`{"kind":"device","attribute":"app_version","operator":%q%s}`, c.op, value)
		got := strings.Join(b.segmentUsers(cond), " ")
		if got != sortedWords(c.want) {
			t.Errorf("app_version %s %s\n got  %q\n want %q", c.op, c.value, got, c.want)
		}
	}
}

// Section 3: event windows are Asia/Seoul calendar days up to and including
// the reference date; no rows sum to 0.
func TestEventConditions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range []string{"edge_in", "edge_out", "future", "many", "none", "other"} {
		b.user(id, nil, id+"@x.com", nil, "", 0)
	}
	// Reference 2026-11-24 18:00 Seoul; within_days 7 = 11-18 .. 11-24.
	b.event("edge_in", "purchase", "2026-11-18", 1)
	b.event("edge_out", "purchase", "2026-11-17", 1)
	b.event("future", "purchase", "2026-11-25", 1)
	b.event("many", "purchase", "2026-11-24", 2)
	b.event("many", "purchase", "2026-11-20", 3)
	b.event("other", "view'; --", "2026-11-24", 4)
	cases := []struct{ cond, want string }{
		{`{"kind":"event","event":"purchase","within_days":7,"operator":">=","value":1}`, "edge_in many"},
		{`{"kind":"event","event":"purchase","within_days":8,"operator":">=","value":1}`, "edge_in edge_out many"},
		{`{"kind":"event","event":"purchase","within_days":1,"operator":"=","value":2}`, "many"},
		{`{"kind":"event","event":"purchase","within_days":7,"operator":"=","value":5}`, "many"},
		{`{"kind":"event","event":"purchase","within_days":7,"operator":"=","value":0}`, "edge_out future none other"},
		{`{"kind":"event","event":"purchase","within_days":7,"operator":"<","value":1}`, "edge_out future none other"},
		{`{"kind":"event","event":"purchase","operator":">","value":0}`, "edge_in edge_out future many"},
		{`{"kind":"event","event":"view'; --","within_days":1,"operator":"in","value":[4, 5]}`, "other"},
		{`{"kind":"event","event":"purchase","within_days":7,"operator":"=","value":"5"}`, ""},
		{`{"kind":"event","event":"purchase","within_days":7,"operator":"!=","value":"5"}`, "edge_in edge_out future many none other"},
		// Several conditions on one event and window share one sum; one
		// that folds to a constant leaves the others intact.
		{`{"kind":"event","event":"purchase","within_days":7,"operator":">=","value":1},
{"kind":"event","event":"purchase","within_days":7,"operator":"<","value":3}`, "edge_in"},
		{`{"kind":"event","event":"purchase","within_days":7,"operator":"=","value":"5"},
{"kind":"event","event":"purchase","within_days":7,"operator":">=","value":1}`, ""},
		{`{"kind":"event","event":"purchase","within_days":7,"operator":"!=","value":"5"},
{"kind":"event","event":"purchase","within_days":7,"operator":">=","value":1},
{"kind":"event","event":"purchase","within_days":8,"operator":"<","value":5}`, "edge_in"},
	}
	for _, c := range cases {
		got := strings.Join(b.segmentUsers(c.cond), " ")
		if got != sortedWords(c.want) {
			t.Errorf("%s\n got  %q\n want %q", c.cond, got, c.want)
		}
	}
	// 2026-11-24T15:30Z is already 11-25 in Seoul: the window moves.
	_, sink := b.run(strings.Replace(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[
{"kind":"event","event":"purchase","within_days":1,"operator":">=","value":1}]}]}`), "2026-11-24T18:00:00+09:00", "2026-11-24T15:30:00Z", 1))
	equalStrings(t, "seoul date", userIDs(sink), []string{"future"})
}

// Section 3: delivery conditions, with and without a window.
func TestDeliveryConditions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref := testRef()
	for _, id := range []string{"edge", "old", "recent", "after", "never"} {
		b.user(id, nil, id+"@x.com", nil, "", 0)
	}
	b.delivery("c9", "edge", ref.Add(-7*24*time.Hour))
	b.delivery("c9", "old", ref.Add(-7*24*time.Hour-time.Second))
	b.delivery("c9", "recent", ref.Add(-time.Hour))
	b.delivery("c9", "after", ref.Add(time.Hour))
	b.delivery("c8", "never", ref)
	cases := []struct{ cond, want string }{
		{`{"kind":"delivery","campaign_id":"c9","within_days":7,"received":true}`, "edge recent"},
		{`{"kind":"delivery","campaign_id":"c9","within_days":7,"received":false}`, "after never old"},
		{`{"kind":"delivery","campaign_id":"c9","received":true}`, "after edge old recent"},
		{`{"kind":"delivery","campaign_id":"c9","received":false}`, "never"},
	}
	for _, c := range cases {
		got := strings.Join(b.segmentUsers(c.cond), " ")
		if got != sortedWords(c.want) {
			t.Errorf("%s\n got  %q\n want %q", c.cond, got, c.want)
		}
	}
}

// Section 3: {"template": ...} values are rendered at the reference time.
func TestTemplateValue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("yesterday", nil, "y@x.com", nil, `{"signup":"2026-11-23"}`, 0)
	b.user("today", nil, "t@x.com", nil, `{"signup":"2026-11-24"}`, 0)
	got := b.segmentUsers(`{"kind":"user","attribute":"signup","operator":"=","value":{"template":"{{ \"now\" | date_add: \"-1 day\" | date: \"%Y-%m-%d\", \"Asia/Seoul\" }}"}}`)
	equalStrings(t, "d-day", got, []string{"yesterday"})
	_, _, err := b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[
{"kind":"user","attribute":"signup","operator":"=","value":{"template":"{{ \"now\" | date_add: \"-1 fortnight\" }}"}}]}]}`))
	if err == nil || !strings.Contains(err.Error(), "campaign.audience.groups[0].conditions[0].value") {
		t.Fatalf("bad template: %v", err)
	}
}

// Section 3: user_ids audiences count unknown and repeated ids once, and
// optional groups filter further.
func TestUserIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "a", "a@x.com", nil, `{"tier":"gold"}`, 0)
	b.user("u2", "b", "b@x.com", nil, `{"tier":"silver"}`, 0)
	b.user("u3", "c'); DROP TABLE x; --", "c@x.com", nil, `{"tier":"gold"}`, 0)
	b.user("u4", nil, "d@x.com", nil, "", 0)
	ids := `["b","a","zz","a","c'); DROP TABLE x; --","zz",""]`
	res, sink := b.run(b.jobJSON(`"channel":"email","audience":{"type":"user_ids","user_ids":` + ids + `}`))
	equalStrings(t, "ids", userIDs(sink), []string{"u1", "u2", "u3"})
	if res.Candidates != 5 || res.Skipped != (Skipped{UnknownUser: 2}) {
		t.Fatalf("counts %+v", res)
	}
	res, sink = b.run(b.jobJSON(`"channel":"push_notification","audience":{"type":"user_ids","user_ids":` + ids + `,
"groups":[{"conditions":[{"kind":"user","attribute":"tier","operator":"=","value":"gold"}]}]}`))
	// u1 and u3 qualify and have no devices: one no_contact each.
	if res.Candidates != 4 || res.Skipped != (Skipped{UnknownUser: 2, NoContact: 2}) || len(sink.msgs) != 0 {
		t.Fatalf("push counts %+v", res)
	}
	// Without groups the stream counts the users found; a user's several
	// device rows count once.
	b.device("d1", "u2", "tok1", "ios")
	b.device("d2", "u2", "tok2", "android")
	res, sink = b.run(b.jobJSON(`"channel":"push_notification","audience":{"type":"user_ids","user_ids":` + ids + `}`))
	if res.Candidates != 6 || res.Skipped != (Skipped{UnknownUser: 2, NoContact: 2}) || len(sink.msgs) != 2 {
		t.Fatalf("push without groups: %+v, %d messages", res, len(sink.msgs))
	}
	_, _, err := b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"user_ids","user_ids":["a",null]}`))
	if err == nil || err.Error() != "campaign.audience.user_ids[1]: want a string, got null" {
		t.Fatalf("null id: %v", err)
	}
}

func sortedWords(s string) string {
	w := strings.Fields(s)
	sort.Strings(w)
	return strings.Join(w, " ")
}

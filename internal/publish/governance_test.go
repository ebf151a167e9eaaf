package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/job"
)

// govJob is a job at a given scheduled_at (RFC 3339) around campaign fields.
func (b *testBundle) govJob(action, scheduledAt, campaignFields string) string {
	return fmt.Sprintf(`{"version":1,"action":%q,"request_id":"r-gov","project_id":%q,"scheduled_at":%q,
"campaign":{"id":"cmp1","message":{"title":"hi"},%s}}`, action, b.tables.Project, scheduledAt, campaignFields)
}

func (b *testBundle) deliveryOn(campaignID, userID, channel, status string, at time.Time) {
	b.t.Helper()
	b.exec(`INSERT INTO `+b.tables.DeliveryResult+` (campaign_id, notifly_user_id, channel, status, created_at) VALUES ($1, $2, $3, $4, $5)`,
		campaignID, userID, channel, status, at)
}

func sendAts(s *captureSink) []string {
	out := make([]string, len(s.msgs))
	for i, m := range s.msgs {
		out[i], _ = m["send_at"].(string)
	}
	return out
}

// Section 10: consent is the JSON value true and nothing else.
func TestConsentIsJSONTrue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, u := range []struct{ id, props string }{
		{"u1", `{"mk": true}`},
		{"u2", `{"mk": "true"}`},
		{"u3", `{"mk": 1}`},
		{"u4", `{}`},
		{"u5", `{"mk": false}`},
		{"u6", `{"mk": null}`},
		{"u7", `{"mk": [true]}`},
		{"u8", `{"MK": true}`}, // keys match exactly
		{"u9", `{"mk": true, "other": false}`},
	} {
		b.user(u.id, "e"+u.id, u.id+"@x.com", "010-0000-000"+u.id[1:], u.props, 0)
	}
	for _, ch := range []string{"email", "text_message"} {
		for _, action := range []string{"publish", "calculate-size"} {
			res, sink := b.run(b.govJob(action, "2026-11-24T18:00:00+09:00", `"channel":"`+ch+`","audience":{"type":"all"},"advertising":{"consent":"mk"}`))
			if res.Published != 2 || res.Skipped.NoConsent != 7 || res.Candidates != 9 || res.Deferred != 0 {
				t.Fatalf("%s %s: %+v", ch, action, res)
			}
			if action == "publish" {
				equalStrings(t, ch+" users", userIDs(sink), []string{"u1", "u9"})
			}
		}
	}
	// A user_ids audience with groups, and push: every device of a user
	// without consent is a no_consent candidate.
	b.device("d1", "u1", "tok1", "ios")
	b.device("d2", "u2", "tok2", "ios")
	b.device("d3", "u2", "tok3", "android")
	res, sink := b.run(b.govJob("publish", "2026-11-24T18:00:00+09:00", `"channel":"push_notification","audience":{"type":"user_ids","user_ids":["eu1","eu2","nobody"],
"groups":[{"conditions":[{"kind":"user","attribute":"$email","operator":"exists"}]}]},"advertising":{"consent":"mk"}`))
	equalStrings(t, "push", destinations(sink), []string{"tok1"})
	if res.Candidates != 4 || res.Skipped.NoConsent != 2 || res.Skipped.UnknownUser != 1 {
		t.Fatalf("push counts %+v", res)
	}
}

// Section 10: the night window's edges in Asia/Seoul, e-mail exempt,
// night-time consent, and calculate-size counting what would be deferred.
func TestNightDeferralEdges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "e1", "a@x.com", "01011112222", `{"mk": true}`, 0)
	b.user("u2", "e2", "b@x.com", "01033334444", `{"mk": true, "night": true}`, 0)
	b.user("u3", "e3", "c@x.com", "01055556666", `{"mk": true, "night": "true"}`, 0)
	cases := []struct {
		at string
		// want is u1's and u3's send_at when deferred, "" when not.
		want string
	}{
		{"2026-11-24T20:59:59+09:00", ""},
		{"2026-11-24T21:00:00+09:00", "2026-11-24T23:00:00Z"}, // 08:00 KST next day
		{"2026-11-24T23:59:59.5+09:00", "2026-11-24T23:00:00Z"},
		{"2026-11-25T00:00:00+09:00", "2026-11-24T23:00:00Z"},
		{"2026-11-25T07:59:59+09:00", "2026-11-24T23:00:00Z"}, // same morning
		{"2026-11-25T08:00:00+09:00", ""},
		{"2026-11-24T12:00:00Z", "2026-11-24T23:00:00Z"},      // 21:00 KST given in UTC
		{"2026-12-31T22:00:00+09:00", "2026-12-31T23:00:00Z"}, // across a year
	}
	for _, c := range cases {
		ref, err := time.Parse(time.RFC3339Nano, c.at)
		if err != nil {
			t.Fatal(err)
		}
		refUTC := ref.UTC().Format(time.RFC3339Nano)
		for _, ch := range []string{"text_message", "kakao_alimtalk", "email"} {
			res, sink := b.run(b.govJob("publish", c.at, `"channel":"`+ch+`","audience":{"type":"all"},"advertising":{"consent":"mk","night_consent":"night"}`))
			want := []string{refUTC, refUTC, refUTC}
			wantDeferred := int64(0)
			if c.want != "" && ch != "email" {
				want = []string{c.want, refUTC, c.want}
				wantDeferred = 2
			}
			equalStrings(t, c.at+" "+ch, sendAts(sink), want)
			if res.Deferred != wantDeferred || res.Published != 3 {
				t.Fatalf("%s %s: %+v", c.at, ch, res)
			}
			size, _ := b.run(b.govJob("calculate-size", c.at, `"channel":"`+ch+`","audience":{"type":"all"},"advertising":{"consent":"mk","night_consent":"night"}`))
			if size.Deferred != wantDeferred {
				t.Fatalf("%s %s: calculate-size deferred %d, want %d", c.at, ch, size.Deferred, wantDeferred)
			}
		}
	}
	// Without night_consent the night-time rule is off.
	res, sink := b.run(b.govJob("publish", "2026-11-24T23:00:00+09:00", `"channel":"text_message","audience":{"type":"all"},"advertising":{"consent":"mk"}`))
	if res.Deferred != 0 || sendAts(sink)[0] != "2026-11-24T14:00:00Z" {
		t.Fatalf("no night_consent: %+v %v", res, sendAts(sink))
	}
}

// Section 10 with section 6: waves are numbered first, then deferred; every
// deferred message carries 08:00, whichever wave it was in.
func TestNightDeferralThrottledWaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := 0; i < 7; i++ {
		props := `{"mk": true}`
		if i == 4 {
			props = `{"mk": true, "night": true}`
		}
		b.user(fmt.Sprintf("u%d", i), nil, nil, fmt.Sprintf("0101234000%d", i), props, 0)
	}
	// u2 has no consent: it takes no place in the waves.
	b.exec(`UPDATE ` + b.tables.User + ` SET user_properties = '{}' WHERE notifly_user_id = 'u2'`)
	res, sink := b.run(b.govJob("publish", "2026-11-24T20:50:00+09:00", `"channel":"text_message","audience":{"type":"all"},
"throttle":{"max_per_interval":2,"interval_minutes":5},"advertising":{"consent":"mk","night_consent":"night"}`))
	// Published u0 u1 | u3 u4 | u5 u6: waves at 20:50, 20:55, 21:00 KST.
	equalStrings(t, "users", userIDs(sink), []string{"u0", "u1", "u3", "u4", "u5", "u6"})
	equalStrings(t, "send_at", sendAts(sink), []string{
		"2026-11-24T11:50:00Z", "2026-11-24T11:50:00Z",
		"2026-11-24T11:55:00Z", "2026-11-24T11:55:00Z",
		"2026-11-24T23:00:00Z", "2026-11-24T23:00:00Z",
	})
	if res.Deferred != 2 || res.Skipped.NoConsent != 1 {
		t.Fatalf("counts %+v", res)
	}
	// A wave starting before 21:00 is not deferred; u4 (night consent) in
	// a night wave keeps its wave's time.
	res, sink = b.run(b.govJob("publish", "2026-11-24T20:55:00+09:00", `"channel":"text_message","audience":{"type":"all"},
"throttle":{"max_per_interval":3,"interval_minutes":5},"advertising":{"consent":"mk","night_consent":"night"}`))
	equalStrings(t, "send_at 2", sendAts(sink), []string{
		"2026-11-24T11:55:00Z", "2026-11-24T11:55:00Z", "2026-11-24T11:55:00Z",
		"2026-11-24T12:00:00Z", "2026-11-24T23:00:00Z", "2026-11-24T23:00:00Z",
	})
	if res.Deferred != 2 {
		t.Fatalf("counts 2 %+v", res)
	}
}

// Section 10: the frequency cap counts the job's channel's delivery_result
// rows of any campaign and status within within_days×24 hours before the
// reference time, both ends included.
func TestFrequencyCap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC) // 18:00 KST
	from := ref.Add(-7 * 24 * time.Hour)
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		b.user(id, "e"+id, id+"@x.com", nil, "", 0)
	}
	inside := ref.Add(-time.Hour)
	// a: exactly max_messages inside the window: capped.
	b.deliveryOn("c1", "a", "email", "sent", inside)
	b.deliveryOn("c2", "a", "email", "failed", inside)
	// b: one fewer: not capped.
	b.deliveryOn("c1", "b", "email", "sent", inside)
	// c: rows exactly on both ends: capped.
	b.deliveryOn("c1", "c", "email", "sent", from)
	b.deliveryOn("c1", "c", "email", "sent", ref)
	// d: just outside both ends, one inside: not capped.
	b.deliveryOn("c1", "d", "email", "sent", from.Add(-time.Microsecond))
	b.deliveryOn("c1", "d", "email", "sent", ref.Add(time.Microsecond))
	b.deliveryOn("c1", "d", "email", "sent", inside)
	// e: other channels' rows do not count.
	b.deliveryOn("c1", "e", "text_message", "sent", inside)
	b.deliveryOn("c1", "e", "push_notification", "sent", inside)
	b.deliveryOn("c1", "e", "email", "sent", inside)
	// f: more than the cap, of this very campaign and others.
	for i := 0; i < 3; i++ {
		b.deliveryOn(fmt.Sprintf("cmp%d", i), "f", "email", "opened", inside)
	}
	// g shares h's address and is capped: h gets it.
	b.exec(`UPDATE ` + b.tables.User + ` SET email = 'h@x.com' WHERE notifly_user_id = 'g'`)
	b.deliveryOn("c1", "g", "email", "sent", inside)
	b.deliveryOn("c1", "g", "email", "sent", inside)
	for _, action := range []string{"publish", "calculate-size"} {
		res, sink := b.run(b.govJob(action, "2026-11-24T18:00:00+09:00", `"channel":"email","audience":{"type":"all"},"frequency_cap":{"max_messages":2,"within_days":7}`))
		if res.Published != 4 || res.Skipped.FrequencyCapped != 4 || res.Skipped.DuplicateDestination != 0 {
			t.Fatalf("%s counts %+v", action, res)
		}
		if action == "publish" {
			equalStrings(t, "users", userIDs(sink), []string{"b", "d", "e", "h"})
		}
	}
	// max_messages 3: a and c (2 rows) pass, f (3 rows) stays capped.
	res, sink := b.run(b.govJob("publish", "2026-11-24T18:00:00+09:00", `"channel":"email","audience":{"type":"all"},"frequency_cap":{"max_messages":3,"within_days":7}`))
	equalStrings(t, "max 3", userIDs(sink), []string{"a", "b", "c", "d", "e", "g"})
	if res.Skipped.FrequencyCapped != 1 || res.Skipped.DuplicateDestination != 1 {
		t.Fatalf("max 3 counts %+v", res)
	}
	// Text messages: only e's text row counts.
	b.exec(`UPDATE ` + b.tables.User + ` SET phone_number = '01011110001'`)
	res, _ = b.run(b.govJob("publish", "2026-11-24T18:00:00+09:00", `"channel":"text_message","audience":{"type":"all"},"frequency_cap":{"max_messages":1,"within_days":7}`))
	if res.Skipped.FrequencyCapped != 1 || res.Published != 1 || res.Skipped.DuplicateDestination != 6 {
		t.Fatalf("text counts %+v", res)
	}
}

// Section 10: a capped user's every candidate is skipped, on push too, and
// with an id list (whose users are probed, not scanned).
func TestFrequencyCapPush(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	b.user("u1", "e1", nil, nil, "", 0)
	b.device("d1", "u1", "tok1", "ios")
	b.device("d2", "u1", "tok2", "android")
	b.user("u2", "e2", nil, nil, "", 0)
	b.device("d3", "u2", "tok1", "ios") // shares u1's token: gets it
	b.user("u3", "e3", nil, nil, "", 0) // no device
	b.deliveryOn("x", "u1", "push_notification", "sent", ref.Add(-24*time.Hour))
	b.deliveryOn("x", "u3", "push_notification", "sent", ref.Add(-24*time.Hour))
	for _, aud := range []string{`{"type":"all"}`, `{"type":"user_ids","user_ids":["e1","e2","e3"]}`} {
		res, sink := b.run(b.govJob("publish", "2026-11-24T18:00:00+09:00", `"channel":"push_notification","audience":`+aud+`,"frequency_cap":{"max_messages":1,"within_days":1}`))
		equalStrings(t, aud, destinations(sink), []string{"tok1"})
		equalStrings(t, aud+" users", userIDs(sink), []string{"u2"})
		if res.Skipped.FrequencyCapped != 3 || res.Candidates != 4 {
			t.Fatalf("%s counts %+v", aud, res)
		}
	}
}

// Section 10: the skip order unknown_user, previously_received, no_consent,
// frequency_capped, control_group, no_contact, invalid_contact,
// duplicate_destination; eligibility is decided before the control group,
// and a skipped candidate's destination goes to the next.
func TestGovernanceSkipOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	// va owns buckets [0, 5000), control [5000, 10000).
	b.exec(`INSERT INTO ` + b.tables.Variants + ` (id, experiment_id, campaign_id, name, weight) VALUES ('va', 'x', 'cmp1', 'A', 1), ('vc', 'x', 'cmp1', 'control', 1)`)
	ok := `{"mk": true}`
	users := []struct {
		id, email, props string
		bucket           int
		previous, capped bool
		want             string
	}{
		{"u01", "p@x.com", "{}", 9000, true, true, "previously_received"},
		{"u02", "q@x.com", "{}", 9000, false, true, "no_consent"},     // control bucket, capped, no consent
		{"u03", "r@x.com", ok, 9000, false, true, "frequency_capped"}, // control bucket, capped
		{"u04", "s@x.com", ok, 9000, false, false, "control_group"},   // control bucket
		{"u05", "", "{}", 0, false, false, "no_consent"},              // no contact, no consent
		{"u06", "", ok, 0, false, true, "frequency_capped"},           // no contact, capped
		{"u07", "", ok, 0, false, false, "no_contact"},
		{"u08", "bad", ok, 0, false, false, "invalid_contact"},
		{"u09", "t@x.com", "{}", 0, false, false, "no_consent"},     // shares with u10
		{"u10", "t@x.com", ok, 0, false, true, "frequency_capped"},  // shares with u11
		{"u11", "t@x.com", ok, 9999, false, false, "control_group"}, // shares with u12
		{"u12", "t@x.com", ok, 0, false, false, "published"},        // first eligible: gets t@x.com
		{"u13", "T@x.com", ok, 0, false, false, "duplicate_destination"},
	}
	for _, u := range users {
		var email any = u.email
		if u.email == "" {
			email = nil
		}
		b.user(u.id, "e"+u.id, email, nil, u.props, u.bucket)
		if u.previous {
			b.deliveryOn("cmp1", u.id, "text_message", "sent", ref.Add(-1000*time.Hour))
		}
		if u.capped {
			b.deliveryOn("other", u.id, "email", "sent", ref.Add(-time.Hour))
		}
	}
	got := map[string]string{}
	runner, err := New(Config{Pool: b.pool, BatchSize: 2, Trace: func(o Outcome) { got[o.UserID] = o.Reason }})
	if err != nil {
		t.Fatal(err)
	}
	text := b.govJob("publish", "2026-11-24T18:00:00+09:00", `"channel":"email","audience":{"type":"all"},"experiment_id":"x","exclude_previous_recipients":true,
"advertising":{"consent":"mk"},"frequency_cap":{"max_messages":1,"within_days":1}`)
	j, err := job.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	sink := &captureSink{}
	res, err := runner.Run(context.Background(), j, sink)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariant(t, res)
	for _, u := range users {
		if got[u.id] != u.want {
			t.Errorf("%s: %s, want %s", u.id, got[u.id], u.want)
		}
	}
	want := Skipped{PreviouslyReceived: 1, NoConsent: 3, FrequencyCapped: 3, ControlGroup: 2, NoContact: 1, InvalidContact: 1, DuplicateDestination: 1}
	if res.Skipped != want || res.Published != 1 || res.Variants["va"] != 1 {
		t.Fatalf("counts %+v", res)
	}
	equalStrings(t, "published", destinations(sink), []string{"t@x.com"})
}

// Section 10: every result's skipped object carries all eight keys, and the
// result carries deferred, also for a job without the new fields.
func TestResultCarriesGovernanceKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "e1", "a@x.com", nil, "", 0)
	res, _ := b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"}`))
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Skipped  map[string]json.RawMessage `json:"skipped"`
		Deferred *int64                     `json:"deferred"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"unknown_user", "previously_received", "no_consent", "frequency_capped", "local_time_passed", "control_group", "no_contact", "invalid_contact", "older_device", "duplicate_destination"} {
		if string(m.Skipped[k]) != "0" {
			t.Errorf("skipped.%s = %s, want 0", k, m.Skipped[k])
		}
	}
	if len(m.Skipped) != 10 || m.Deferred == nil || *m.Deferred != 0 {
		t.Fatalf("result %s", raw)
	}
}

// Section 10: CSV audiences take consent from the columns that consent and
// night_consent name, and are capped through their user_id column.
func TestCSVGovernance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref := time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC) // 23:00 KST
	b.user("u1", "capped", nil, nil, `{"mk": true}`, 0)
	b.user("u2", "fine", nil, nil, `{"mk": false}`, 0) // the database's consent is not read
	b.deliveryOn("x", "u1", "text_message", "sent", ref.Add(-time.Hour))
	b.deliveryOn("x", "u2", "email", "sent", ref.Add(-time.Hour))
	url := writeCSV(t, "phone_number,mk,nc,user_id\n"+
		"01000000001,true,true,\n"+ // consent, night consent
		"01000000002, TRUE ,,\n"+ // consent, deferred
		"01000000003,True,yes,fine\n"+ // consent, deferred, not capped
		"01000000004,yes,true,\n"+ // no consent
		"01000000005,,true,\n"+ // no consent
		"01000000006,1,true,\n"+ // no consent
		"01000000007,false,true,\n"+ // no consent
		"01000000008,true,TRUE,capped\n"+ // capped
		"01000000009,true,true,unknown\n"+ // unknown user: not capped
		"01000000001,true,false,\n") // duplicate
	fields := `"channel":"text_message","audience":{"type":"csv","url":"` + url + `"},"advertising":{"consent":"mk","night_consent":"nc"},"frequency_cap":{"max_messages":1,"within_days":1}`
	for _, action := range []string{"publish", "calculate-size"} {
		res, sink := b.run(b.govJob(action, "2026-11-24T23:00:00+09:00", fields))
		want := Skipped{NoConsent: 4, FrequencyCapped: 1, DuplicateDestination: 1}
		if res.Skipped != want || res.Published != 4 || res.Deferred != 2 {
			t.Fatalf("%s counts %+v", action, res)
		}
		if action == "publish" {
			equalStrings(t, "published", destinations(sink), []string{"01000000001", "01000000002", "01000000003", "01000000009"})
			equalStrings(t, "send_at", sendAts(sink), []string{"2026-11-24T14:00:00Z", "2026-11-24T23:00:00Z", "2026-11-24T23:00:00Z", "2026-11-24T14:00:00Z"})
			if r := sink.msgs[2]["recipient"].(map[string]any); r["notifly_user_id"] != nil {
				t.Fatalf("csv recipient carries a user id: %v", r)
			}
		}
	}
	// No night_consent column: nobody consented to the night.
	url = writeCSV(t, "email,mk,consent\na@x.com,true,false\nb@x.com,false,true\n") // a column named consent is data
	res, _ := b.run(b.govJob("publish", "2026-11-24T23:00:00+09:00", `"channel":"email","audience":{"type":"csv","url":"`+url+`"},"advertising":{"consent":"mk","night_consent":"nc"}`))
	if res.Published != 1 || res.Skipped.NoConsent != 1 || res.Deferred != 0 { // e-mail is exempt
		t.Fatalf("email csv %+v", res)
	}
	url = writeCSV(t, "phone_number,mk,night_consent\n01000000001,true,true\n") // nc is missing; night_consent is data
	res, sink := b.run(b.govJob("publish", "2026-11-24T23:00:00+09:00", `"channel":"kakao_alimtalk","audience":{"type":"csv","url":"`+url+`"},"advertising":{"consent":"mk","night_consent":"nc"}`))
	if res.Deferred != 1 || sendAts(sink)[0] != "2026-11-24T23:00:00Z" {
		t.Fatalf("no night_consent column %+v", res)
	}
	// Push: the file's consent, the devices of the file's users.
	b.device("d1", "u1", "tok1", "ios")
	b.device("d2", "u2", "tok2", "ios")
	b.device("d3", "u2", "tok3", "android")
	b.deliveryOn("x", "u1", "push_notification", "sent", ref.Add(-6*time.Hour)) // before 18:00 KST
	url = writeCSV(t, "user_id,mk\ncapped,true\nfine,true\nfine,false\nnone,true\n")
	res, sink = b.run(b.govJob("publish", "2026-11-24T18:00:00+09:00", `"channel":"push_notification","audience":{"type":"csv","url":"`+url+`"},"advertising":{"consent":"mk"},"frequency_cap":{"max_messages":1,"within_days":1}`))
	equalStrings(t, "push", destinations(sink), []string{"tok2", "tok3"})
	if want := (Skipped{UnknownUser: 1, FrequencyCapped: 1, NoConsent: 2}); res.Skipped != want {
		t.Fatalf("push csv %+v", res)
	}
	// Rejections: no consent column; a cap without a user_id column.
	for _, c := range []struct{ file, fields, want string }{
		{"email\na@x.com\n", `"advertising":{"consent":"mk"}`, "consent column"},
		{"email,consent\na@x.com,true\n", `"advertising":{"consent":"mk"}`, "consent column \"mk\""},
		{"email,mk\na@x.com,true\n", `"frequency_cap":{"max_messages":1,"within_days":1}`, "user_id column"},
	} {
		url := writeCSV(t, c.file)
		_, _, err := b.tryRun(b.govJob("publish", "2026-11-24T18:00:00+09:00", `"channel":"email","audience":{"type":"csv","url":"`+url+`"},`+c.fields))
		if !job.IsRejection(err) || !strings.HasPrefix(err.Error(), "campaign.audience.url: ") || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%q: %v", c.file, err)
		}
	}
}

// A resumed run counts deferrals as an uninterrupted one does.
func TestResumeCountsDeferred(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := 0; i < 12; i++ {
		b.user(fmt.Sprintf("u%02d", i), nil, nil, fmt.Sprintf("010123400%02d", i), `{"mk": true}`, 0)
	}
	text := b.govJob("publish", "2026-11-24T20:58:00+09:00", `"channel":"text_message","audience":{"type":"all"},
"throttle":{"max_per_interval":2,"interval_minutes":1},"advertising":{"consent":"mk","night_consent":"nc"}`)
	full, fullSink := b.run(text)
	if full.Deferred != 8 {
		t.Fatalf("full run deferred %d", full.Deferred)
	}
	j, err := job.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	first := &failingSink{ok: 2}
	var cp Checkpoint
	if _, err := b.runner.Resume(context.Background(), j, first, Checkpoint{}, func(c Checkpoint) error { cp = c; return nil }); err == nil {
		t.Fatal("first attempt did not fail")
	}
	second := &captureSink{}
	res, err := b.runner.Resume(context.Background(), j, second, cp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deferred != full.Deferred {
		t.Fatalf("resumed deferred %d, want %d", res.Deferred, full.Deferred)
	}
	equalStrings(t, "send_at", append(sendAts(&first.captureSink), sendAts(second)...), sendAts(fullSink))
}

// A partitioned run with the governance rules publishes exactly what one
// run does: consent and caps are checked in the scan phase as in the
// publish phase, and deferrals add up.
func TestPartitionsGovernance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ref := time.Date(2026, 11, 24, 11, 50, 0, 0, time.UTC) // 20:50 KST
	b.exec(`INSERT INTO ` + b.tables.Variants + ` VALUES ('va', 'x', 'c', 'A', 1), ('vc', 'x', 'c', 'control', 1)`)
	for i := 0; i < 120; i++ {
		id := fmt.Sprintf("%c%03d", "0Aa~"[i%4], i)
		props := map[int]string{0: `{"mk": true}`, 1: `{"mk": true, "nc": true}`, 2: `{"mk": "true"}`}[i%3]
		b.user(id, fmt.Sprintf("e%d", i), nil, fmt.Sprintf("0101234%04d", i%50), props, (i*97)%10000)
		if i%7 == 0 {
			b.deliveryOn("old", id, "text_message", "sent", ref.Add(-time.Hour))
		}
	}
	text := b.govJob("publish", "2026-11-24T20:50:00+09:00", `"channel":"text_message","experiment_id":"x","audience":{"type":"all"},
"throttle":{"max_per_interval":5,"interval_minutes":5},"advertising":{"consent":"mk","night_consent":"nc"},"frequency_cap":{"max_messages":1,"within_days":1}`)
	j, err := job.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	full, fullSink := b.run(text)
	if full.Deferred == 0 || full.Skipped.NoConsent == 0 || full.Skipped.FrequencyCapped == 0 || full.Skipped.DuplicateDestination == 0 {
		t.Fatalf("the data does not exercise the rules: %+v", full)
	}
	bounds := []string{"", "0100", "A050", "a", "~060", ""}
	var scanned [][]uint64
	for i := 0; i+1 < len(bounds); i++ {
		res, err := b.runner.RunWith(context.Background(), j, &Range{From: bounds[i], Before: bounds[i+1], Collect: true}, nil, Checkpoint{}, Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		scanned = append(scanned, res.Destinations)
	}
	var got []string
	var sum Skipped
	var published, deferred int64
	earlier := map[uint64]bool{}
	for i := 0; i+1 < len(bounds); i++ {
		var taken []uint64
		for _, fp := range scanned[i] {
			if earlier[fp] {
				taken = append(taken, fp)
			}
		}
		sink := &captureSink{}
		res, err := b.runner.RunWith(context.Background(), j, &Range{From: bounds[i], Before: bounds[i+1], Taken: taken, Offset: int64(len(earlier))}, sink, Checkpoint{}, Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		for _, fp := range scanned[i] {
			earlier[fp] = true
		}
		got = append(got, sink.raw...)
		published += res.Published
		deferred += res.Deferred
		sum.Add(res.Skipped)
	}
	sort.Strings(got)
	want := append([]string(nil), fullSink.raw...)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("partitions published %d messages, one run %d, or they differ", len(got), len(want))
	}
	if published != full.Published || sum != full.Skipped || deferred != full.Deferred {
		t.Fatalf("partition counts %d %+v deferred %d, single run %+v", published, sum, deferred, full)
	}
}

package publish

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
)

// deviceAt inserts a device with a given updated_at.
func (b *testBundle) deviceAt(id, userID string, token any, platform, updatedAt string) {
	b.t.Helper()
	b.exec(`INSERT INTO `+b.tables.Device+` (notifly_device_id, notifly_user_id, device_token, platform, updated_at) VALUES ($1, $2, $3, $4, $5::timestamptz)`,
		id, userID, token, platform, updatedAt)
}

// delivery is a job with a delivery object at scheduled_at.
func (b *testBundle) deliveryJob(action, scheduledAt, campaignFields string) string {
	return fmt.Sprintf(`{"version":1,"action":%q,"request_id":"r-del","project_id":%q,"scheduled_at":%q,
"campaign":{"id":"cmp1","message":{"title":"default"},%s}}`, action, b.tables.Project, scheduledAt, campaignFields)
}

// Section 11, local_time: base times in zones with 30- and 45-minute
// offsets and +14:00, wall times in daylight-saving gaps and overlaps in both
// hemispheres, values that are not zones, and if_passed.
func TestLocalTimeZones(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct {
		zone           string // the tz property as JSON; "" leaves it out
		ref, at, extra string
		want           string // send_at, or a skip reason
	}{
		{`"Asia/Kolkata"`, "2026-11-24T00:00:00Z", "09:00", "", "2026-11-24T03:30:00Z"},
		{`"Asia/Kathmandu"`, "2026-11-24T00:00:00Z", "09:00", "", "2026-11-24T03:15:00Z"},
		{`"Australia/Eucla"`, "2026-11-24T00:00:00Z", "09:00", "", "2026-11-24T00:15:00Z"},
		{`"Australia/Adelaide"`, "2026-11-24T00:00:00Z", "09:00", "", "2026-11-24T22:30:00Z"}, // passed (10:30 there): the next day
		{`"Australia/Adelaide"`, "2026-11-24T00:00:00Z", "09:00", `,"if_passed":"skip"`, "local_time_passed"},
		{`"Australia/Adelaide"`, "2026-11-24T00:00:00Z", "10:30", `,"if_passed":"skip"`, "2026-11-24T00:00:00Z"}, // equal: not passed
		{`"Pacific/Kiritimati"`, "2026-11-24T00:00:00Z", "09:00", "", "2026-11-24T19:00:00Z"},                    // 14:00 on the 24th there
		{`"Pacific/Kiritimati"`, "2026-11-24T00:00:00Z", "15:00", "", "2026-11-24T01:00:00Z"},
		{`"America/New_York"`, "2026-03-08T05:00:00Z", "02:30", "", "2026-03-08T07:30:00Z"}, // gap: 03:30 EDT
		{`"America/New_York"`, "2026-11-01T04:00:00Z", "01:30", "", "2026-11-01T05:30:00Z"}, // twice: the earlier
		{`"Europe/Berlin"`, "2026-03-28T23:00:00Z", "02:30", "", "2026-03-29T01:30:00Z"},    // gap
		{`"Europe/Berlin"`, "2026-10-24T22:00:00Z", "02:30", "", "2026-10-25T00:30:00Z"},    // twice
		{`"Australia/Sydney"`, "2026-10-03T14:00:00Z", "02:30", "", "2026-10-03T16:30:00Z"}, // gap (southern spring)
		{`"Australia/Sydney"`, "2026-04-04T13:00:00Z", "02:30", "", "2026-04-04T15:30:00Z"}, // twice (southern autumn)
		{`"America/Santiago"`, "2026-09-05T23:00:00Z", "00:30", "", "2026-09-06T04:30:00Z"}, // passed, then the next day's gap at midnight
		{`"America/Santiago"`, "2026-04-04T12:00:00Z", "23:30", "", "2026-04-05T02:30:00Z"}, // twice
		{`"UTC"`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T10:00:00Z"},
		{`"Europe/London"`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T10:00:00Z"},
		// Not zones: the fallback (Asia/Seoul, 10:00 KST = 01:00Z).
		{`"Local"`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`""`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`"america/new_york"`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`"AMERICA/NEW_YORK"`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`"America/New_York "`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`"/usr/share/zoneinfo/America/New_York"`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`"../zoneinfo/America/New_York"`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`"posixrules"`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`-5`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`{"name":"UTC"}`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{`null`, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{``, "2026-11-24T00:00:00Z", "10:00", "", "2026-11-24T01:00:00Z"},
		{``, "2026-11-24T00:00:00Z", "10:00", `,"fallback_time_zone":"America/New_York"`, "2026-11-24T15:00:00Z"},
		{`"Local"`, "2026-11-24T00:00:00Z", "00:00", `,"fallback_time_zone":"UTC","if_passed":"next_day"`, "2026-11-24T00:00:00Z"},
	}
	for i, tc := range cases {
		props := `{}`
		if tc.zone != "" {
			props = `{"tz":` + tc.zone + `}`
		}
		ext := fmt.Sprintf("e%02d", i)
		b.user(fmt.Sprintf("u%02d", i), ext, ext+"@x.com", nil, props, 0)
		res, sink := b.run(b.deliveryJob("publish", tc.ref, `"channel":"email","audience":{"type":"user_ids","user_ids":["`+ext+`"]},
"delivery":{"local_time":{"time":"`+tc.at+`","time_zone":"tz"`+tc.extra+`}}`))
		if !strings.Contains(tc.want, "T") {
			if res.Skipped.LocalTimePassed != 1 || res.Published != 0 {
				t.Errorf("%s at %s: %+v, want %s", tc.zone, tc.ref, res, tc.want)
			}
			continue
		}
		if got := sendAts(sink); len(got) != 1 || got[0] != tc.want {
			t.Errorf("case %d: zone %s, %s at ref %s: send_at %q, want %s", i, tc.zone, tc.at, tc.ref, got, tc.want)
		}
		if _, has := sink.msgs[0]["locale"]; has {
			t.Errorf("case %d: a locale member without localized_messages", i)
		}
	}
}

// Section 11: waves are counted per base time, in the run's order, and the
// night-time rule applies to each wave's send_at afterwards.
func TestLocalTimeWaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	users := []struct{ id, zone, night, want string }{
		{"u1", "Asia/Seoul", "false", "2026-11-24T11:50:00Z"},   // 20:50 KST, wave 0
		{"u2", "Asia/Kolkata", "false", "2026-11-24T23:00:00Z"}, // 20:50 IST = 00:20 KST: deferred to 08:00 KST
		{"u3", "Asia/Seoul", "false", "2026-11-24T11:50:00Z"},   // wave 0
		{"u4", "Asia/Kolkata", "false", "2026-11-24T23:00:00Z"},
		{"u5", "Asia/Seoul", "false", "2026-11-24T23:00:00Z"},  // wave 1: 21:00 KST, deferred
		{"u6", "Asia/Kolkata", "true", "2026-11-24T15:30:00Z"}, // Kolkata's wave 1, night consent
		{"u7", "Asia/Seoul", "true", "2026-11-24T12:00:00Z"},   // wave 1, night consent
		{"u8", "Asia/Seoul", "false", "2026-11-24T23:00:00Z"},  // wave 2: 21:10 KST, deferred
	}
	var want []string
	for i, u := range users {
		b.user(u.id, "e"+u.id, nil, fmt.Sprintf("0100000000%d", i), `{"tz":"`+u.zone+`","mk":true,"nc":`+u.night+`}`, 0)
		want = append(want, u.want)
	}
	fields := `"channel":"text_message","audience":{"type":"all"},"throttle":{"max_per_interval":2,"interval_minutes":10},
"advertising":{"consent":"mk","night_consent":"nc"},"delivery":{"local_time":{"time":"20:50","time_zone":"tz"}}`
	for _, action := range []string{"publish", "calculate-size"} {
		res, sink := b.run(b.deliveryJob(action, "2026-11-24T18:00:00+09:00", fields))
		if res.Published != 8 || res.Deferred != 4 {
			t.Fatalf("%s: %+v", action, res)
		}
		if got := fmt.Sprint(res.BaseTimes); got != "[{2026-11-24 11:50:00 +0000 UTC 5} {2026-11-24 15:20:00 +0000 UTC 3}]" {
			t.Fatalf("%s: base times %s", action, got)
		}
		if action == "publish" {
			equalStrings(t, "send_at", sendAts(sink), want)
		}
	}
}

// Section 11, most_recent_device_only: one device per user by updated_at
// (ties: the smallest device id in byte order), counted after every earlier
// check, and before de-duplication.
func TestMostRecentDevice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, u := range []string{"a", "b", "c", "d", "f"} {
		b.user(u, "e"+u, nil, nil, "{}", 0)
	}
	b.deviceAt("a1", "a", "tok-a1", "ios", "2026-01-01T00:00:00Z")
	b.deviceAt("a2", "a", "tok-shared", "android", "2025-12-01T00:00:00Z")
	b.deviceAt("a3", "a", "  ", "ios", "2026-06-01T00:00:00Z")         // newest, but no token: does not count
	b.deviceAt("a4", "a", "tok-a4", "web", "2026-07-01T00:00:00Z")     // not a push device
	b.deviceAt("b1", "b", "tok-shared", "ios", "2026-02-01T00:00:00Z") // a's old device's token: b's newest gets it
	b.deviceAt("b2", "b", "tok-b2", "ios", "2026-01-15T00:00:00Z")
	b.deviceAt("c1", "c", "tok-a1", "ios", "2026-03-01T00:00:00.000001Z") // tie with c2: c1 wins, then is a duplicate
	b.deviceAt("c2", "c", "tok-c2", "ios", "2026-03-01T00:00:00.000001Z")
	b.deviceAt("d-9", "d", "tok-d9", "ios", "2026-03-01T00:00:00Z") // tie: "d-10" < "d-9" in byte order
	b.deviceAt("d-10", "d", "tok-d10", "android", "2026-03-01T00:00:00Z")
	reasons := map[string]string{}
	runner, err := New(Config{Pool: b.pool, BatchSize: 1, Trace: func(o Outcome) { reasons[o.DeviceID+o.UserID] = o.Reason }})
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"publish", "calculate-size"} {
		clear(reasons)
		j, err := job.Parse([]byte(b.deliveryJob(action, "2026-11-24T18:00:00+09:00", `"channel":"push_notification","audience":{"type":"all"},"delivery":{"most_recent_device_only":true}`)))
		if err != nil {
			t.Fatal(err)
		}
		sink := &captureSink{}
		res, err := runner.Run(t.Context(), j, sink)
		if err != nil {
			t.Fatal(err)
		}
		checkInvariant(t, res)
		if want := (Skipped{OlderDevice: 4, NoContact: 2, DuplicateDestination: 1}); res.Skipped != want || res.Published != 3 || res.Candidates != 10 {
			t.Fatalf("%s: %+v", action, res)
		}
		wantReasons := map[string]string{"a1a": "published", "a2a": "older_device", "a3a": "no_contact", "b1b": "published", "b2b": "older_device",
			"c1c": "duplicate_destination", "c2c": "older_device", "d-10d": "published", "d-9d": "older_device", "f": "no_contact"}
		if fmt.Sprint(reasons) != fmt.Sprint(wantReasons) {
			t.Fatalf("%s: reasons %v\nwant %v", action, reasons, wantReasons)
		}
		if action == "publish" {
			equalStrings(t, "tokens", destinations(sink), []string{"tok-a1", "tok-shared", "tok-d10"})
		}
	}
	// Without the rule, a's old device takes the shared token from b.
	res, sink := b.run(b.deliveryJob("publish", "2026-11-24T18:00:00+09:00", `"channel":"push_notification","audience":{"type":"all"}`))
	if res.Skipped.OlderDevice != 0 || res.Skipped.DuplicateDestination != 2 {
		t.Fatalf("without the rule: %+v", res)
	}
	equalStrings(t, "tokens", destinations(sink), []string{"tok-a1", "tok-shared", "tok-b2", "tok-c2", "tok-d10", "tok-d9"})
}

// Section 11, localized_messages: RFC 4647 lookup on the trimmed,
// lower-cased value with _ read as -; the key as written in locale, or null.
func TestLocalizedMessages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	users := []struct{ lang, want string }{
		{`"en-US"`, "en"},
		{`"zh-Hant-TW"`, "zh-Hant"},
		{`"ZH_hant_tw"`, "zh-Hant"},
		{`" pt-br "`, "pt-BR"},
		{`"pt"`, ""}, // lookup never goes to a longer tag
		{`"ko"`, "ko"},
		{`"fr"`, ""},
		{`"en-"`, "en"},
		{`""`, ""},
		{`5`, ""},
		{`["en"]`, ""},
		{``, ""},
		{`"zh-Hans-CN"`, ""}, // zh-Hans, then zh: neither is a key
	}
	for i, u := range users {
		props := "{}"
		if u.lang != "" {
			props = `{"lang":` + u.lang + `}`
		}
		b.user(fmt.Sprintf("u%02d", i), nil, fmt.Sprintf("u%02d@x.com", i), nil, props, 0)
	}
	msgs := `{"en":{"title":"Hi"},"zh-Hant":{"title":"你好"},"pt-BR":{"title":"Olá"},"ko":{"title":"안녕"}}`
	res, sink := b.run(b.deliveryJob("publish", "2026-11-24T18:00:00+09:00", `"channel":"email","audience":{"type":"all"},
"delivery":{"localized_messages":{"property":"lang","messages":`+msgs+`}}`))
	if res.Published != int64(len(users)) {
		t.Fatalf("%+v", res)
	}
	var byKey map[string]json.RawMessage
	_ = json.Unmarshal([]byte(msgs), &byKey)
	for i, u := range users {
		m := sink.msgs[i]
		loc, has := m["locale"]
		if !has {
			t.Fatalf("%s: no locale member: %s", u.lang, sink.raw[i])
		}
		wantMsg := `{"title":"default"}`
		if u.want == "" {
			if loc != nil {
				t.Errorf("%s: locale %v, want null", u.lang, loc)
			}
		} else {
			if loc != u.want {
				t.Errorf("%s: locale %v, want %s", u.lang, loc, u.want)
			}
			wantMsg = string(byKey[u.want])
		}
		got, _ := json.Marshal(m["message"])
		var w any
		_ = json.Unmarshal([]byte(wantMsg), &w)
		want, _ := json.Marshal(w)
		if string(got) != string(want) {
			t.Errorf("%s: message %s, want %s", u.lang, got, want)
		}
	}
}

// Section 11 with a CSV audience: the zone and language come from the
// columns the job names; most_recent_device_only picks among a row's
// devices.
func TestDeliveryCSV(t *testing.T) {
	t.Parallel()
	b := setup(t)
	url := writeCSV(t, "email,zone,language,timezone\n"+
		"a@x.com,America/New_York,en-GB,Asia/Tokyo\n"+ // 10:00 EST = 15:00Z
		"b@x.com,Local,ja,\n"+ // fallback Asia/Seoul: 10:00 KST = 01:00Z
		"c@x.com,,,\n"+
		"d@x.com, Asia/Kathmandu ,EN,\n") // trimmed as CSV values are: 10:00 +05:45 = 04:15Z
	res, sink := b.run(b.deliveryJob("publish", "2026-11-24T00:00:00Z", `"channel":"email","audience":{"type":"csv","url":"`+url+`"},
"delivery":{"local_time":{"time":"10:00","time_zone":"zone"},"localized_messages":{"property":"language","messages":{"en":{"t":"en"},"JA":{"t":"ja"}}}}`))
	if res.Published != 4 {
		t.Fatalf("%+v", res)
	}
	equalStrings(t, "send_at", sendAts(sink), []string{"2026-11-24T15:00:00Z", "2026-11-24T01:00:00Z", "2026-11-24T01:00:00Z", "2026-11-24T04:15:00Z"})
	var locales []string
	for _, m := range sink.msgs {
		locales = append(locales, fmt.Sprint(m["locale"]))
	}
	equalStrings(t, "locales", locales, []string{"en", "JA", "<nil>", "en"})
	// A file without the columns: every row falls back.
	url = writeCSV(t, "email\na@x.com\n")
	_, sink = b.run(b.deliveryJob("publish", "2026-11-24T00:00:00Z", `"channel":"email","audience":{"type":"csv","url":"`+url+`"},
"delivery":{"local_time":{"time":"10:00","time_zone":"zone","fallback_time_zone":"UTC"},"localized_messages":{"property":"language","messages":{"en":{}}}}`))
	if got := sendAts(sink); got[0] != "2026-11-24T10:00:00Z" || sink.msgs[0]["locale"] != nil {
		t.Fatalf("no columns: %v %v", got, sink.raw)
	}
	// Push: the devices of the row's user, the newest only; the zone from
	// the file, not from user_properties.
	b.user("u1", "ext1", nil, nil, `{"zone":"UTC"}`, 0)
	b.deviceAt("d1", "u1", "tok1", "ios", "2026-01-01T00:00:00Z")
	b.deviceAt("d2", "u1", "tok2", "android", "2026-02-01T00:00:00Z")
	url = writeCSV(t, "user_id,zone\next1,Asia/Kolkata\nnobody,UTC\n")
	res, sink = b.run(b.deliveryJob("publish", "2026-11-24T00:00:00Z", `"channel":"push_notification","audience":{"type":"csv","url":"`+url+`"},
"delivery":{"local_time":{"time":"10:00","time_zone":"zone"},"most_recent_device_only":true}`))
	if res.Published != 1 || res.Skipped.OlderDevice != 1 || res.Skipped.UnknownUser != 1 {
		t.Fatalf("push csv %+v", res)
	}
	equalStrings(t, "push", destinations(sink), []string{"tok2"})
	equalStrings(t, "push send_at", sendAts(sink), []string{"2026-11-24T04:30:00Z"})
}

// Section 11 with A/B, control group and a throttle: local_time_passed is
// decided before the control group is drawn, older devices after it, and
// waves count the published messages of each base time.
func TestDeliveryWithExperimentAndThrottle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// va owns buckets [0, 5000), control [5000, 10000).
	b.exec(`INSERT INTO ` + b.tables.Variants + ` (id, experiment_id, campaign_id, name, weight) VALUES ('va', 'x', 'cmp1', 'A', 1), ('vc', 'x', 'cmp1', 'control', 1)`)
	users := []struct {
		id, zone string
		bucket   int
	}{
		{"u1", "Asia/Seoul", 0}, {"u2", "Asia/Seoul", 9000}, {"u3", "Asia/Seoul", 1}, {"u4", "America/New_York", 2},
		{"u5", "Asia/Seoul", 3}, {"u6", "Asia/Seoul", 4}, {"u7", "America/New_York", 9999}, {"u8", "Europe/Berlin", 5},
	}
	for _, u := range users {
		b.user(u.id, "e"+u.id, nil, nil, `{"tz":"`+u.zone+`"}`, u.bucket)
		b.deviceAt(u.id+"-old", u.id, "old-"+u.id, "ios", "2026-01-01T00:00:00Z")
		b.deviceAt(u.id+"-new", u.id, "new-"+u.id, "android", "2026-02-01T00:00:00Z")
	}
	fields := `"channel":"push_notification","audience":{"type":"all"},"experiment_id":"x",
"throttle":{"max_per_interval":2,"interval_minutes":15},
"delivery":{"local_time":{"time":"09:30","time_zone":"tz","if_passed":"skip"},"most_recent_device_only":true}`
	// Reference 2026-11-24T00:00Z: 09:00 in Seoul (09:30 KST = 00:30Z, to
	// come), 19:00 the 23rd in New York (09:30 EST the 23rd has passed:
	// skip), 01:00 in Berlin (09:30 CET = 08:30Z, to come).
	ref := "2026-11-24T00:00:00Z"
	res, sink := b.run(b.deliveryJob("publish", ref, fields))
	// Seoul: u1, u3, u5, u6 published, u2 control; New York: u4 and u7
	// passed (u7 before its control bucket is looked at); Berlin: u8.
	if want := (Skipped{ControlGroup: 2, LocalTimePassed: 4, OlderDevice: 5}); res.Skipped != want || res.Published != 5 || res.Variants["va"] != 5 {
		t.Fatalf("%+v", res)
	}
	equalStrings(t, "tokens", destinations(sink), []string{"new-u1", "new-u3", "new-u5", "new-u6", "new-u8"})
	equalStrings(t, "send_at", sendAts(sink), []string{
		"2026-11-24T00:30:00Z", "2026-11-24T00:30:00Z", // Seoul wave 0
		"2026-11-24T00:45:00Z", "2026-11-24T00:45:00Z", // Seoul wave 1
		"2026-11-24T08:30:00Z", // Berlin wave 0
	})
	// At 10:00Z, 19:00 KST and 11:00 in Berlin have passed; New York's
	// 09:30 (14:30Z) is to come: u4 is published, u7 is control.
	res, _ = b.run(b.deliveryJob("calculate-size", "2026-11-24T10:00:00Z", fields))
	if want := (Skipped{ControlGroup: 2, LocalTimePassed: 12, OlderDevice: 1}); res.Skipped != want || res.Published != 1 {
		t.Fatalf("later: %+v", res)
	}
}

// SkipReasons names each Skipped field by its JSON key, in the checks'
// order, and Total and Add cover all ten.
func TestSkipReasonsMatchFields(t *testing.T) {
	t.Parallel()
	s := Skipped{UnknownUser: 1, PreviouslyReceived: 2, NoConsent: 3, FrequencyCapped: 4, LocalTimePassed: 5,
		ControlGroup: 6, NoContact: 7, InvalidContact: 8, OlderDevice: 9, DuplicateDestination: 10}
	raw, _ := json.Marshal(s)
	var m map[string]int64
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != len(SkipReasons) {
		t.Fatalf("%s: %v", raw, err)
	}
	for i, rc := range s.ByReason() {
		if rc.Reason != SkipReasons[i] || m[rc.Reason] != rc.N || rc.N != int64(i+1) {
			t.Fatalf("reason %d: %+v, JSON %d", i, rc, m[rc.Reason])
		}
	}
	s.Add(s)
	if s.Total() != 110 || s.DuplicateDestination != 20 {
		t.Fatalf("add: %+v", s)
	}
}

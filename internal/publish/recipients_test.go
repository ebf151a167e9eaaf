package publish

import (
	"testing"
)

// Section 4: email reachability, trimming, case-insensitive de-duplication,
// and the smallest notifly_user_id winning.
func TestEmailReachability(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "e1", "  Alice@Example.com\t", nil, "", 0)
	b.user("u0", "e0", "alice@example.COM", nil, "", 0) // smaller id: wins the address
	b.user("u2", "e2", nil, nil, "", 0)
	b.user("u3", "e3", "   ", nil, "", 0)
	b.user("u4", "e4", "bob@nodot", nil, "", 0)
	b.user("u5", "e5", "b ob@x.com", nil, "", 0)
	b.user("u6", "e6", "a@@x.com", nil, "", 0)
	b.user("u7", "e7", "carol@x.co", nil, "", 0)
	b.user("u8", "e8", "@x.com", nil, "", 0)
	b.user("u9", "e9", "dave@.com", nil, "", 0)
	res, sink := b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"}`))
	equalStrings(t, "published", destinations(sink), []string{"alice@example.COM", "carol@x.co"})
	equalStrings(t, "users", userIDs(sink), []string{"u0", "u7"})
	want := Skipped{NoContact: 2, InvalidContact: 5, DuplicateDestination: 1}
	if res.Skipped != want || res.Candidates != 10 || res.Published != 2 {
		t.Fatalf("counts: %+v", res)
	}
	if got := sink.msgs[0]["idempotency_key"]; got != wantKey(b.tables.Project, "cmp1", "r-1", "email", "alice@example.com") {
		t.Fatalf("key of lower-cased address: got %v", got)
	}
}

// Section 4: phone normalization, +82, 10- and 11-digit numbers.
func TestPhoneReachability(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", nil, nil, "+82 10-1234-5678", "", 0)
	b.user("u2", nil, nil, "010.1234.5678", "", 0) // same number
	b.user("u3", nil, nil, "(011) 123-4567", "", 0)
	b.user("u4", nil, nil, "02-123-4567", "", 0)
	b.user("u5", nil, nil, "12345", "", 0)
	b.user("u6", nil, nil, " ", "", 0)
	b.user("u7", nil, nil, nil, "", 0)
	b.user("u8", nil, nil, "+821099998888", "", 0)
	b.user("u9", nil, nil, "010-1234-56789", "", 0) // 12 digits
	b.user("v1", nil, nil, "01512345678", "", 0)    // 015 is not a mobile prefix
	for _, ch := range []string{"text_message", "kakao_alimtalk", "kakao_friendtalk"} {
		res, sink := b.run(b.jobJSON(`"channel":"` + ch + `","audience":{"type":"all"}`))
		equalStrings(t, ch, destinations(sink), []string{"01012345678", "0111234567", "01099998888"})
		want := Skipped{NoContact: 2, InvalidContact: 4, DuplicateDestination: 1}
		if res.Skipped != want || res.Published != 3 {
			t.Fatalf("%s counts: %+v", ch, res)
		}
		if sink.msgs[0]["idempotency_key"] != wantKey(b.tables.Project, "cmp1", "r-1", ch, "01012345678") {
			t.Fatalf("%s: key not over the normalized number", ch)
		}
	}
}

// Sections 3 and 4: push candidates are qualifying devices of the channel's
// platforms; a qualifying user without one is one no_contact candidate;
// orphan devices are nobody's; shared tokens go to the smallest
// (notifly_user_id, notifly_device_id).
func TestPushCandidates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "e1", nil, nil, "", 0)
	b.device("d3", "u1", " tok-a ", "ios")
	b.device("d1", "u1", "tok-b", "android")
	b.device("d2", "u1", "tok-web", "web")
	b.device("d4", "u1", "tok-win", "windows")
	b.user("u2", "e2", nil, nil, "", 0)
	b.device("d0", "u2", "tok-a", "android") // same token as u1/d3; u1 is smaller
	b.device("d5", "u2", "   ", "ios")
	b.device("d6", "u2", nil, "ios")
	b.user("u3", "e3", nil, nil, "", 0) // no devices
	b.user("u4", "e4", nil, nil, "", 0)
	b.device("d7", "u4", "tok-web2", "web") // web only
	b.device("d8", "nobody", "tok-orphan", "ios")

	res, sink := b.run(b.jobJSON(`"channel":"push_notification","audience":{"type":"all"}`))
	// u1's devices in device id order: d1 (tok-b), d3 (tok-a).
	equalStrings(t, "push", destinations(sink), []string{"tok-b", "tok-a"})
	// candidates: u1 d1,d3; u2 d0,d5,d6; u3 none; u4 none (web only)
	want := Skipped{NoContact: 4, DuplicateDestination: 1}
	if res.Candidates != 7 || res.Skipped != want {
		t.Fatalf("push counts: %+v", res)
	}
	dev := sink.msgs[1]["recipient"].(map[string]any)["device"].(map[string]any)
	if dev["notifly_device_id"] != "d3" || dev["device_token"] != "tok-a" || dev["platform"] != "ios" {
		t.Fatalf("recipient.device: %v", dev)
	}
	if sink.msgs[1]["idempotency_key"] != wantKey(b.tables.Project, "cmp1", "r-1", "push_notification", "tok-a") {
		t.Fatal("push key not over the trimmed token")
	}
	pers := sink.msgs[1]["personalization"].(map[string]any)["device"].(map[string]any)
	if pers["device_token"] != " tok-a " || pers["external_device_id"] != "ext-d3" || pers["updated_at"] != "2026-01-02T03:04:05.123456Z" {
		t.Fatalf("personalization.device: %v", pers)
	}

	res, sink = b.run(b.jobJSON(`"channel":"web_push_notification","audience":{"type":"all"}`))
	equalStrings(t, "web push", destinations(sink), []string{"tok-web", "tok-web2"})
	if res.Candidates != 4 || res.Skipped != (Skipped{NoContact: 2}) {
		t.Fatalf("web push counts: %+v", res)
	}
}

// Section 3: device conditions are evaluated per (user, device) pair; for
// push only qualifying devices are candidates.
func TestDevicePairs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", nil, "u1@x.com", nil, `{"tier":"gold"}`, 0)
	b.device("d1", "u1", "t1", "ios", "17.0", "3.9.2")
	b.device("d2", "u1", "t2", "android", "14", "3.10.0")
	b.user("u2", nil, "u2@x.com", nil, `{"tier":"gold"}`, 0)
	b.device("d3", "u2", "t3", "web", "1", "3.10")
	b.user("u3", nil, "u3@x.com", nil, `{"tier":"silver"}`, 0) // no devices

	appGE := `{"kind":"device","attribute":"app_version","operator":">=","value":"3.10.0"}`
	res, sink := b.run(b.jobJSON(`"channel":"push_notification","audience":{"type":"segment","groups":[{"conditions":[` + appGE + `]}]}`))
	equalStrings(t, "push app>=3.10", destinations(sink), []string{"t2"})
	// u1 qualifies via d2 only; u2 qualifies via its web device but has no
	// push device: one no_contact candidate.
	if res.Candidates != 2 || res.Skipped.NoContact != 1 {
		t.Fatalf("push pair counts: %+v", res)
	}

	res, sink = b.run(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[` + appGE + `]}]}`))
	equalStrings(t, "email app>=3.10", destinations(sink), []string{"u1@x.com", "u2@x.com"})
	if sink.msgs[0]["personalization"].(map[string]any)["device"] != nil {
		t.Fatal("email messages carry no device")
	}

	// A group without device conditions qualifies users with no device;
	// a device condition is false on the null device, even !=.
	ne := `{"kind":"device","attribute":"platform","operator":"!=","value":"web"}`
	res, sink = b.run(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[` + ne + `]}]}`))
	equalStrings(t, "email platform!=web", destinations(sink), []string{"u1@x.com"})

	// OR of groups: gold users' every push device, or silver users.
	gold := `{"kind":"user","attribute":"tier","operator":"=","value":"gold"}`
	ios := `{"kind":"device","attribute":"platform","operator":"=","value":"ios"}`
	res, sink = b.run(b.jobJSON(`"channel":"push_notification","audience":{"type":"segment","groups":[{"conditions":[` + ios + `]},{"conditions":[` + gold + `]}]}`))
	equalStrings(t, "push ios or gold", destinations(sink), []string{"t1", "t2"})
	if res.Candidates != 3 || res.Skipped.NoContact != 1 {
		t.Fatalf("or counts: %+v", res)
	}
}

// Section 5: A/B variants by bucket, the control group, variant messages.
func TestVariants(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(`INSERT INTO ` + b.tables.Variants + ` (id, experiment_id, campaign_id, name, weight) VALUES
('vb', 'x1', 'cmp1', 'B', 1), ('va', 'x1', 'cmp1', 'A', 1), ('vc', 'x1', 'cmp1', 'control', 2), ('other', 'x2', 'cmp1', 'Z', 5)`)
	// W=4: va [0,2500), vb [2500,5000), vc [5000,10000)
	for i, bucket := range []int{0, 2499, 2500, 4999, 5000, 9999} {
		b.user("u"+string(rune('a'+i)), nil, "u"+string(rune('a'+i))+"@x.com", nil, "", bucket)
	}
	res, sink := b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"},"experiment_id":"x1",
"variant_messages":{"vb":{"title":"B!"}}`))
	if res.Published != 4 || res.Skipped.ControlGroup != 2 || res.Variants["va"] != 2 || res.Variants["vb"] != 2 {
		t.Fatalf("variant counts: %+v", res)
	}
	if _, ok := res.Variants["vc"]; ok {
		t.Fatal("control variant listed in variants")
	}
	for i, want := range []string{"va", "va", "vb", "vb"} {
		if sink.msgs[i]["variant_id"] != want {
			t.Fatalf("message %d variant %v, want %s", i, sink.msgs[i]["variant_id"], want)
		}
	}
	if sink.msgs[0]["message"].(map[string]any)["title"] != "hi" || sink.msgs[2]["message"].(map[string]any)["title"] != "B!" {
		t.Fatal("variant message not applied")
	}
	_, _, err := b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"all"},"experiment_id":"nope"`))
	if err == nil || err.Error() != `campaign.experiment_id: experiment "nope" has no variants` {
		t.Fatalf("missing experiment: %v", err)
	}
	_, sink, err = b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"all"},"experiment_id":"x1","variant_messages":{"zz":{}}`))
	if err == nil || len(sink.msgs) != 0 {
		t.Fatalf("unknown variant message: %v", err)
	}
}

// Section 6: throttle waves in publishing order; no throttle = one time.
func TestThrottle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range []string{"u5", "u1", "u3", "u2", "u4"} {
		b.user(id, nil, id+"@x.com", nil, "", 0)
	}
	b.user("u0", nil, nil, nil, "", 0) // skipped: does not use up a slot
	_, sink := b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"},"throttle":{"max_per_interval":2,"interval_minutes":5}`))
	var got []string
	for _, m := range sink.msgs {
		got = append(got, m["send_at"].(string))
	}
	equalStrings(t, "send_at", got, []string{"2026-11-24T09:00:00Z", "2026-11-24T09:00:00Z", "2026-11-24T09:05:00Z", "2026-11-24T09:05:00Z", "2026-11-24T09:10:00Z"})
	equalStrings(t, "order", userIDs(sink), []string{"u1", "u2", "u3", "u4", "u5"})
	_, sink = b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"}`))
	for _, m := range sink.msgs {
		if m["send_at"] != "2026-11-24T09:00:00Z" {
			t.Fatalf("unthrottled send_at %v", m["send_at"])
		}
	}
}

// Section 4: previously_received comes before the contact checks.
func TestExcludePrevious(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", nil, "a@x.com", nil, "", 0)
	b.user("u2", nil, nil, nil, "", 0)
	b.user("u3", nil, "c@x.com", nil, "", 0)
	b.delivery("cmp1", "u1", testRef().AddDate(-1, 0, 0))
	b.delivery("cmp1", "u2", testRef())
	b.delivery("other", "u3", testRef())
	res, sink := b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"},"exclude_previous_recipients":true`))
	equalStrings(t, "published", destinations(sink), []string{"c@x.com"})
	if res.Skipped != (Skipped{PreviouslyReceived: 2}) {
		t.Fatalf("counts %+v", res.Skipped)
	}
	res, _ = b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"}`))
	if res.Published != 2 || res.Skipped.NoContact != 1 {
		t.Fatalf("without exclusion: %+v", res)
	}
}

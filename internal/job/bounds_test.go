package job

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// withThrottle is validJob with a throttle.
func withThrottle(n, m string) string {
	return strings.Replace(validJob, `"message":{"title":"x"}`,
		`"message":{"title":"x"},"throttle":{"max_per_interval":`+n+`,"interval_minutes":`+m+`}`, 1)
}

func conditions(n int, cond func(i int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = cond(i)
	}
	return strings.Join(parts, ",")
}

// Numbers a job carries are bounded, and every time it names stays inside
// RFC 3339 (years 0001 to 9999): each case was accepted before.
func TestParseBounds(t *testing.T) {
	t.Parallel()
	sched := func(s string) string {
		return strings.Replace(validJob, `"scheduled_at":"2026-11-24T18:00:00+09:00"`, `"scheduled_at":"`+s+`"`, 1)
	}
	segment := func(groups string) string {
		return `{"version":1,"action":"calculate-size","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"email","audience":{"type":"segment","groups":[` + groups + `]}}}`
	}
	user := func(i int) string { return fmt.Sprintf(`{"kind":"user","attribute":"a%d","operator":"exists"}`, i) }
	event := func(i int) string {
		return fmt.Sprintf(`{"kind":"event","event":"e%d","within_days":7,"operator":">=","value":1}`, i)
	}
	userIDs := func(ids int, sched, n, m string) string {
		list := conditions(ids, func(i int) string { return fmt.Sprintf(`"u%d"`, i) })
		return `{"version":1,"action":"publish","request_id":"r","project_id":"p","scheduled_at":"` + sched + `","campaign":{"id":"c","channel":"email",` +
			`"message":{},"throttle":{"max_per_interval":` + n + `,"interval_minutes":` + m + `},"audience":{"type":"user_ids","user_ids":[` + list + `]}}}`
	}
	cases := []struct{ name, text, want string }{
		{"interval max int64", withThrottle("1", "9223372036854775807"), "campaign.throttle.interval_minutes: must be between 1 and 527040"},
		{"interval 1e7", withThrottle("1", "10000000"), "campaign.throttle.interval_minutes: must be between 1 and 527040"},
		{"per interval", withThrottle("1000000001", "5"), "campaign.throttle.max_per_interval: must be between 1 and 1000000000"},
		{"year 1 zero instant", sched("0001-01-01T00:00:00Z"), `scheduled_at: "0001-01-01T00:00:00Z" is out of range`},
		{"year 0", sched("0000-01-01T00:00:00Z"), `scheduled_at: "0000-01-01T00:00:00Z" is out of range`},
		{"offset +24:00", sched("2026-11-24T18:00:00+24:00"), "scheduled_at: not an RFC 3339 time"},
		{"offset -23:60", sched("2026-11-24T18:00:00-23:60"), "scheduled_at: not an RFC 3339 time"},
		{"year 10000 in UTC", sched("9999-12-31T23:00:00-01:00"), `scheduled_at: "9999-12-31T23:00:00-01:00" is out of range`},
		{"underflow", strings.Replace(validJob, `"value":1}`, `"value":1e-400}`, 1), "campaign.audience.groups[0].conditions[2].value: number 1e-400 is out of range"},
		{"long number", strings.Replace(validJob, `"value":1}`, `"value":1`+strings.Repeat("0", 100)+`}`, 1), "campaign.audience.groups[0].conditions[2].value: number 1000"},
		{"groups", segment(conditions(MaxGroups+1, func(i int) string { return `{"conditions":[` + user(i) + `]}` })), "campaign.audience.groups: 101 groups, more than the 100 allowed"},
		{"conditions", segment(`{"conditions":[` + conditions(MaxConditions+1, user) + `]}`), "campaign.audience.groups: more than the 1000 conditions allowed"},
		{"joined", segment(`{"conditions":[` + conditions(MaxJoinedConditions+1, event) + `]}`), "campaign.audience.groups[0].conditions[32]: more than 32 distinct event and delivery tests"},
		{"last wave past 9999", userIDs(3, "9999-06-01T00:00:00Z", "1", "527040"), "campaign.throttle: 3 messages at 1 every 527040 minutes from 9999-06-01T00:00:00Z would be sent after 9999-12-31T23:59:59Z (at most 1 fit)"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.text))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !IsRejection(err) {
			t.Errorf("%s: got %v, want a rejection starting %q", c.name, err, c.want)
		}
	}
	ok := []struct{ name, text string }{
		{"last instant", sched("9999-12-31T23:59:59.999999999Z")},
		{"first instant", sched("1970-01-01T00:00:00Z")},
		{"offset 23:59", sched("2026-11-24T18:00:00-23:59")},
		{"largest throttle", withThrottle("1000000000", "527040")},
		{"tiny number", strings.Replace(validJob, `"value":1}`, `"value":1e-300}`, 1)},
		{"zero number", strings.Replace(validJob, `"value":1}`, `"value":0.0e-999}`, 1)},
		{"same joined test repeated", segment(`{"conditions":[` + conditions(MaxJoinedConditions+5, func(int) string { return event(0) }) + `]}`)},
		{"joined at the limit", segment(`{"conditions":[` + conditions(MaxJoinedConditions, event) + `]}`)},
		{"last wave fits", userIDs(2, "9998-06-01T00:00:00Z", "1", "527040")},
	}
	for _, c := range ok {
		if _, err := Parse([]byte(c.text)); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// PostgreSQL stores no NUL character: a job holding one anywhere is a
// rejection naming where, not a database error retried.
func TestParseNUL(t *testing.T) {
	t.Parallel()
	cases := []struct{ from, to, want string }{
		{`"attribute":"tier"`, `"attribute":"ti\u0000er"`, "campaign.audience.groups[0].conditions[0].attribute: contains a NUL character"},
		{`"value":"gold"`, `"value":"\u0000"`, "campaign.audience.groups[0].conditions[0].value: contains a NUL character"},
		{`"request_id":"r1"`, `"request_id":"r\u0000"`, "request_id: contains a NUL character"},
		{`"message":{"title":"x"}`, `"message":{"a":["x","\u0000"]}`, "campaign.message.a[1]: contains a NUL character"},
		{`"message":{"title":"x"}`, `"message":{"a\u0000":1}`, `campaign.message["a\u0000"]: contains a NUL character`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(strings.Replace(validJob, c.from, c.to, 1)))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !IsRejection(err) {
			t.Errorf("%s: got %v, want %q", c.to, err, c.want)
		}
	}
	// PostgreSQL's jsonb refuses unpaired surrogate escapes.
	for _, c := range []struct{ from, to, want string }{
		{`"message":{"title":"x"}`, `"message":{"title":"a\ud800b"}`, "campaign.message.title: contains an unpaired UTF-16 surrogate escape"},
		{`"message":{"title":"x"}`, `"message":{"title":"\uDC00"}`, "campaign.message.title: contains an unpaired UTF-16 surrogate escape"},
		{`"message":{"title":"x"}`, `"message":{"\ud83d":1}`, "campaign.message[\"\ufffd\"]: contains an unpaired UTF-16 surrogate escape"},
		{`"value":"gold"`, `"value":"\ud83d\u0041"`, "campaign.audience.groups[0].conditions[0].value: contains an unpaired UTF-16 surrogate escape"},
	} {
		_, err := Parse([]byte(strings.Replace(validJob, c.from, c.to, 1)))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !IsRejection(err) {
			t.Errorf("%s: got %v, want %q", c.to, err, c.want)
		}
	}
	for _, ok := range []string{`"\ud83d\ude00"`, `"\\ud800"`, `"\u00e9"`} {
		if _, err := Parse([]byte(strings.Replace(validJob, `"value":"gold"`, `"value":`+ok, 1))); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if _, err := ParseEnvelope([]byte(`{"version":1,"message_id":"` + strings.Repeat("m", MaxMessageIDBytes+1) + `"}`)); err == nil || err.Error() != "message_id: longer than 1024 bytes" {
		t.Fatalf("long message id: %v", err)
	}
	// An escaped backslash followed by u0000 is not a NUL.
	if _, err := Parse([]byte(strings.Replace(validJob, `"value":"gold"`, `"value":"\\u0000"`, 1))); err != nil {
		t.Fatalf("escaped backslash: %v", err)
	}
	if _, err := ParseEnvelope([]byte(`{"version":1,"message_id":"m\u0000"}`)); err == nil || !strings.HasPrefix(err.Error(), "message_id: contains a NUL") {
		t.Fatalf("claim check: %v", err)
	}
	// A raw NUL byte (not JSON at all) inside a string is named by its
	// path too; outside a string it is malformed JSON.
	for _, c := range []struct{ from, to, want string }{
		{`"title":"x"`, "\"title\":\"a\x00b\"", "campaign.message.title: contains a NUL character"},
		{`"request_id":"r1"`, "\"request_id\":\"\x00\"", "request_id: contains a NUL character"},
		{`"version":1`, "\"version\":1\x00", "malformed JSON"},
	} {
		_, err := Parse([]byte(strings.Replace(validJob, c.from, c.to, 1)))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !IsRejection(err) {
			t.Errorf("%q: got %v, want %q", c.to, err, c.want)
		}
	}
}

// send_at is exact over the whole range, never wraps (10^7 minutes used to
// give 1947) and never passes year 9999.
func TestSendAt(t *testing.T) {
	t.Parallel()
	ref := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	th := &Throttle{MaxPerInterval: 1, IntervalMinutes: MaxIntervalMinutes}
	at, ok := SendAt(ref, th, 1000)
	if want := ref.AddDate(0, 0, 366*1000); !ok || !at.Equal(want) {
		t.Fatalf("wave 1000 of 366 days: %s %v, want %s", at, ok, want)
	}
	for _, ref := range []time.Time{MinTime, ref, time.Date(9999, 12, 31, 23, 58, 30, 5, time.FixedZone("", 9*3600))} {
		for _, th := range []*Throttle{{1, 1}, {MaxPerInterval, 1}, {1, MaxIntervalMinutes}, {7, 13}} {
			capacity := ThrottleCapacity(ref, th)
			if capacity <= 0 || capacity == math.MaxInt64 {
				t.Fatalf("%s %+v: capacity %d", ref, th, capacity)
			}
			last, ok := SendAt(ref, th, capacity-1)
			if !ok || last.After(MaxTime) || last.Before(ref) {
				t.Fatalf("%s %+v: last message %d at %s %v", ref, th, capacity-1, last, ok)
			}
			if s := last.UTC().Format(time.RFC3339Nano); !strings.HasPrefix(s, "9999-") && ref.Year() > 9000 {
				t.Fatalf("%s %+v: last send_at %s", ref, th, s)
			}
			// The next wave would leave the range.
			next := last.Add(time.Duration(th.IntervalMinutes) * time.Minute)
			if !next.After(MaxTime) {
				t.Fatalf("%s %+v: capacity %d leaves room for %s", ref, th, capacity, next)
			}
			if _, ok := SendAt(ref, th, capacity); ok {
				t.Fatalf("%s %+v: message %d fits", ref, th, capacity)
			}
		}
	}
	if c := ThrottleCapacity(ref, nil); c != math.MaxInt64 {
		t.Fatalf("no throttle: capacity %d", c)
	}
}

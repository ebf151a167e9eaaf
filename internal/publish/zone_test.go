package publish

import (
	"testing"
	"time"
)

// The contract's zone is Config.Zone, read by the night-time rule and by
// event windows alike: another zone moves both, the default is Asia/Seoul.
func TestZoneIsConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "e1", "a@x.com", "01011112222", `{"mk": true}`, 0)
	// 2026-11-24T13:00Z is 22:00 in Seoul (night, and already the 24th)
	// and 13:00 in UTC (day).
	const at = "2026-11-24T13:00:00Z"
	night := `"channel":"text_message","audience":{"type":"all"},"advertising":{"consent":"mk","night_consent":"night"}`
	res, sink := b.run(b.govJob("publish", at, night))
	equalStrings(t, "Asia/Seoul by default", sendAts(sink), []string{"2026-11-24T23:00:00Z"})
	if res.Deferred != 1 {
		t.Fatalf("default zone: deferred %d, want 1", res.Deferred)
	}
	utcRunner, err := New(Config{Pool: b.pool, BatchSize: 3, Zone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	utc := &testBundle{t: t, pool: b.pool, tables: b.tables, runner: utcRunner}
	res, sink = utc.run(utc.govJob("publish", at, night))
	equalStrings(t, "UTC", sendAts(sink), []string{at})
	if res.Deferred != 0 {
		t.Fatalf("UTC: deferred %d, want 0", res.Deferred)
	}

	// An event on the 24th, seen from 2026-11-23T16:00Z: the 24th in
	// Seoul (01:00), still the 23rd in UTC, so a one-day window holds it
	// only in Seoul.
	b.event("u1", "buy", "2026-11-24", 1)
	event := `"channel":"email","audience":{"type":"segment","groups":[{"conditions":[{"kind":"event","event":"buy","within_days":1,"operator":">=","value":1}]}]}`
	if res, _ := b.run(b.govJob("calculate-size", "2026-11-23T16:00:00Z", event)); res.Published != 1 {
		t.Fatalf("Seoul event window: %+v", res)
	}
	if res, _ := utc.run(utc.govJob("calculate-size", "2026-11-23T16:00:00Z", event)); res.Published != 0 {
		t.Fatalf("UTC event window: %+v", res)
	}
}

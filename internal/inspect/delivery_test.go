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

// explain counts what each targeting rule removes, the base times with
// their zones and the locales chosen; why shows the stored zone and
// language, the zone used, the base time and whether it had passed, the
// device kept and why, and the locale.
func TestDeliveryExplainWhy(t *testing.T) {
	t.Parallel()
	tb := dbtest.Project(t)
	users := []struct{ id, ext, props string }{
		{"u1", "seoul", `{"tz": "Asia/Seoul", "lang": "ko-KR"}`},
		{"u2", "kolkata", `{"tz": "Asia/Kolkata", "lang": "en_IN"}`},
		{"u3", "bad", `{"tz": "asia/seoul", "lang": 7}`},
		{"u4", "adelaide", `{"tz": "Australia/Adelaide", "lang": "fr"}`},
	}
	for _, u := range users {
		dbtest.Exec(t, `INSERT INTO `+tb.User+` (notifly_user_id, external_user_id, user_properties, random_bucket_number) VALUES ($1, $2, $3::jsonb, 0)`, u.id, u.ext, u.props)
		dbtest.Exec(t, `INSERT INTO `+tb.Device+` (notifly_device_id, notifly_user_id, device_token, platform, updated_at) VALUES ($1||'-old', $1, 'old-'||$1, 'ios', '2026-01-01T00:00:00Z'), ($1||'-new', $1, 'new-'||$1, 'android', '2026-02-01T00:00:00Z')`, u.id)
	}
	// Reference 00:00Z: 09:00 in Seoul, 05:30 in Kolkata, 10:30 in
	// Adelaide (10:00 has passed there: the next day).
	j, err := job.Parse(fmt.Appendf(nil, `{"version":1,"action":"calculate-size","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T00:00:00Z",
"campaign":{"id":"c","channel":"push_notification","audience":{"type":"all"},
"delivery":{"local_time":{"time":"10:00","time_zone":"tz"},"most_recent_device_only":true,
"localized_messages":{"property":"lang","messages":{"ko":{"t":"안녕"},"en":{"t":"hi"}}}}}}`, tb.Project))
	if err != nil {
		t.Fatal(err)
	}
	pool := dbtest.Pool(t)
	ex, err := Explain(context.Background(), publish.Config{Pool: pool}, j, 5)
	if err != nil {
		t.Fatal(err)
	}
	d := ex.Delivery
	if d == nil || *d.OlderDevice != 4 || *d.LocalTimePassed != 0 || *d.Fallback != 1 || *d.NextDay != 1 || len(d.BaseTimes) != 3 {
		t.Fatalf("explain delivery %+v", d)
	}
	if got := fmt.Sprint(d.BaseTimes); got != "[{2026-11-24 01:00:00 +0000 UTC 2 [Asia/Seoul]} {2026-11-24 04:30:00 +0000 UTC 1 [Asia/Kolkata]} {2026-11-24 23:30:00 +0000 UTC 1 [Australia/Adelaide]}]" {
		t.Fatalf("base times %s", got)
	}
	if fmt.Sprint(d.Locales) != "map[:2 en:1 ko:1]" {
		t.Fatalf("locales %v", d.Locales)
	}
	cases := []struct {
		ext, zone string
		stored    string
		want      []string // the outcomes' targeting, in order: the older device first
	}{
		{"seoul", "Asia/Seoul", `"Asia/Seoul"`, []string{"device updated at 2026-01-01T00:00:00Z; the user's most recent device that passed the earlier checks is u1-new",
			`base time 10:00 in zone Asia/Seoul: 2026-11-24T01:00:00Z; the user's most recent device`}},
		{"bad", "Asia/Seoul", `"asia/seoul"`, []string{"fallback zone Asia/Seoul (the stored value", "no localized message matches"}},
		{"adelaide", "Australia/Adelaide", `"Australia/Adelaide"`, []string{"", "10:00 in zone Australia/Adelaide had passed on the reference date: base time the next day, 2026-11-24T23:30:00Z"}},
		{"kolkata", "Asia/Kolkata", `"Asia/Kolkata"`, []string{"", `localized message "en"`}},
	}
	for _, c := range cases {
		ans, err := Why(context.Background(), publish.Config{Pool: pool}, j, c.ext)
		if err != nil {
			t.Fatal(err)
		}
		if ans.Delivery == nil || ans.Delivery.ZoneStored == nil || *ans.Delivery.ZoneStored != c.stored || ans.Delivery.ZoneProperty != "tz" {
			t.Fatalf("%s: delivery %+v", c.ext, ans.Delivery)
		}
		if len(ans.Outcomes) != 2 || ans.Outcomes[0].Reason != "older_device" || ans.Outcomes[1].Reason != "published" {
			t.Fatalf("%s: outcomes %+v", c.ext, ans.Outcomes)
		}
		for i, want := range c.want {
			o := ans.Outcomes[i]
			if !strings.Contains(o.Targeting, want) || o.Zone != c.zone || o.BaseTime == nil {
				t.Errorf("%s outcome %d: %+v, want %q in zone %s", c.ext, i, o, want, c.zone)
			}
		}
	}
}

package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
)

// segpub publish and size of a job with delivery targeting, a throttle and
// an A/B experiment with a control group: the result carries the ten skip
// keys and the base times, the file the messages with their send_at.
func TestPublishDelivery(t *testing.T) {
	t.Parallel()
	tb := dbtest.Project(t)
	dbtest.Exec(t, `INSERT INTO `+tb.Variants+` (id, experiment_id, campaign_id, name, weight) VALUES ('va', 'x', 'c', 'A', 1), ('vc', 'x', 'c', 'control', 1)`)
	for i, u := range []struct {
		zone   string
		bucket int
	}{{"Asia/Seoul", 0}, {"Asia/Seoul", 1}, {"Asia/Kolkata", 2}, {"Asia/Seoul", 9000}, {"Asia/Seoul", 3}, {"Asia/Kolkata", 4}} {
		id := fmt.Sprintf("u%d", i)
		dbtest.Exec(t, `INSERT INTO `+tb.User+` (notifly_user_id, external_user_id, user_properties, random_bucket_number) VALUES ($1, $1, $2::jsonb, $3)`,
			id, `{"tz":"`+u.zone+`"}`, u.bucket)
		dbtest.Exec(t, `INSERT INTO `+tb.Device+` (notifly_device_id, notifly_user_id, device_token, platform, updated_at) VALUES
($1||'a', $1, 'a-'||$1, 'ios', '2026-01-01T00:00:00Z'), ($1||'b', $1, 'b-'||$1, 'android', '2026-02-01T00:00:00Z')`, id)
	}
	jobText := fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r-del","project_id":%q,"scheduled_at":"2026-11-24T00:00:00Z",
"campaign":{"id":"c","channel":"push_notification","audience":{"type":"all"},"message":{"t":"hi"},"experiment_id":"x",
"throttle":{"max_per_interval":2,"interval_minutes":5},
"delivery":{"local_time":{"time":"10:00","time_zone":"tz"},"most_recent_device_only":true}}}`, tb.Project)
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, []byte(jobText), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, args := range [][]string{{"size", "--job", path}, {"publish", "--job", path, "--out", "file://" + dir + "/{channel}.ndjson"}} {
		r := run(t, "", args...)
		if r.code != ExitOK {
			t.Fatalf("%s: exit %d: %s", args[0], r.code, r.stderr)
		}
		var res struct {
			Published int64            `json:"published"`
			Skipped   map[string]int64 `json:"skipped"`
			BaseTimes []struct {
				At       string `json:"base_time"`
				Messages int64  `json:"messages"`
			} `json:"base_times"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Skipped) != 10 || res.Published != 5 || res.Skipped["older_device"] != 5 || res.Skipped["control_group"] != 2 ||
			fmt.Sprint(res.BaseTimes) != "[{2026-11-24T01:00:00Z 3} {2026-11-24T04:30:00Z 2}]" {
			t.Fatalf("%s: %s", args[0], r.stdout)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "push_notification.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m struct {
			SendAt    string `json:"send_at"`
			VariantID string `json:"variant_id"`
			Recipient struct {
				Device struct {
					Token string `json:"device_token"`
				} `json:"device"`
			} `json:"recipient"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Recipient.Device.Token+" "+m.SendAt+" "+m.VariantID)
	}
	// Seoul: u0, u1 in the first wave, u4 in the second (u3 is control);
	// Kolkata: u2, u5 in its own first wave.
	want := "b-u0 2026-11-24T01:00:00Z va|b-u1 2026-11-24T01:00:00Z va|b-u2 2026-11-24T04:30:00Z va|b-u4 2026-11-24T01:05:00Z va|b-u5 2026-11-24T04:30:00Z va"
	if strings.Join(got, "|") != want {
		t.Fatalf("messages\n got  %s\n want %s", strings.Join(got, "|"), want)
	}
}

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every bad delivery value that section 11 of the interface contract names
// is a rejection (exit 2, nothing published) whose reason names the
// offending path; the values the section allows (null members, false on any
// channel) are accepted. The
// expectations are read from the contract, not from the parser.
func TestDeliveryRejectionsNamePath(t *testing.T) {
	t.Parallel()
	const lt = `"local_time":{"time":"09:00","time_zone":"tz"}`
	const lm = `"localized_messages":{"property":"lang","messages":{"en":{"t":"hi"}}}`
	for _, tc := range []struct {
		name, channel, extra, delivery string
		// path is the JSON path the reason must name; "" means accepted.
		path string
	}{
		{"unknown key", "", "", `{"when":1}`, "campaign.delivery.when"},
		{"not an object", "", "", `"soon"`, "campaign.delivery"},
		{"array", "", "", `[]`, "campaign.delivery"},
		{"null delivery", "", "", `null`, ""},
		{"null members", "", "", `{"local_time":null,"most_recent_device_only":null,"localized_messages":null}`, ""},
		{"empty delivery", "", "", `{}`, ""},
		{"local_time not an object", "", "", `{"local_time":"09:00"}`, "campaign.delivery.local_time"},
		{"local_time unknown key", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","zone":"x"}}`, "campaign.delivery.local_time.zone"},
		{"time missing", "", "", `{"local_time":{"time_zone":"tz"}}`, "campaign.delivery.local_time.time"},
		{"time null", "", "", `{"local_time":{"time":null,"time_zone":"tz"}}`, "campaign.delivery.local_time.time"},
		{"time one-digit hour", "", "", `{"local_time":{"time":"9:00","time_zone":"tz"}}`, "campaign.delivery.local_time.time"},
		{"time 24:00", "", "", `{"local_time":{"time":"24:00","time_zone":"tz"}}`, "campaign.delivery.local_time.time"},
		{"time 09:60", "", "", `{"local_time":{"time":"09:60","time_zone":"tz"}}`, "campaign.delivery.local_time.time"},
		{"time leading space", "", "", `{"local_time":{"time":" 09:00","time_zone":"tz"}}`, "campaign.delivery.local_time.time"},
		{"time with seconds", "", "", `{"local_time":{"time":"09:00:00","time_zone":"tz"}}`, "campaign.delivery.local_time.time"},
		{"time a number", "", "", `{"local_time":{"time":900,"time_zone":"tz"}}`, "campaign.delivery.local_time.time"},
		{"time 00:00", "", "", `{"local_time":{"time":"00:00","time_zone":"tz"}}`, ""},
		{"time 23:59", "", "", `{"local_time":{"time":"23:59","time_zone":"tz"}}`, ""},
		{"time_zone missing", "", "", `{"local_time":{"time":"09:00"}}`, "campaign.delivery.local_time.time_zone"},
		{"time_zone empty", "", "", `{"local_time":{"time":"09:00","time_zone":""}}`, "campaign.delivery.local_time.time_zone"},
		{"time_zone dollar", "", "", `{"local_time":{"time":"09:00","time_zone":"$timezone"}}`, "campaign.delivery.local_time.time_zone"},
		{"time_zone a number", "", "", `{"local_time":{"time":"09:00","time_zone":7}}`, "campaign.delivery.local_time.time_zone"},
		{"fallback unknown", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","fallback_time_zone":"Mars/Olympus"}}`, "campaign.delivery.local_time.fallback_time_zone"},
		{"fallback wrong case", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","fallback_time_zone":"asia/seoul"}}`, "campaign.delivery.local_time.fallback_time_zone"},
		{"fallback Local", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","fallback_time_zone":"Local"}}`, "campaign.delivery.local_time.fallback_time_zone"},
		{"fallback empty", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","fallback_time_zone":""}}`, "campaign.delivery.local_time.fallback_time_zone"},
		{"fallback a number", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","fallback_time_zone":9}}`, "campaign.delivery.local_time.fallback_time_zone"},
		{"fallback UTC", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","fallback_time_zone":"UTC"}}`, ""},
		{"if_passed unknown", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","if_passed":"later"}}`, "campaign.delivery.local_time.if_passed"},
		{"if_passed wrong case", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","if_passed":"Skip"}}`, "campaign.delivery.local_time.if_passed"},
		{"if_passed empty", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","if_passed":""}}`, "campaign.delivery.local_time.if_passed"},
		{"if_passed a boolean", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","if_passed":true}}`, "campaign.delivery.local_time.if_passed"},
		{"if_passed skip", "", "", `{"local_time":{"time":"09:00","time_zone":"tz","if_passed":"skip"}}`, ""},
		{"most recent a string", "", "", `{"most_recent_device_only":"true"}`, "campaign.delivery.most_recent_device_only"},
		{"most recent a number", "", "", `{"most_recent_device_only":1}`, "campaign.delivery.most_recent_device_only"},
		{"most recent on email", "email", "", `{"most_recent_device_only":true}`, "campaign.delivery.most_recent_device_only"},
		{"most recent on text", "text_message", "", `{"most_recent_device_only":true}`, "campaign.delivery.most_recent_device_only"},
		{"most recent false on email", "email", "", `{"most_recent_device_only":false}`, ""},
		{"most recent on web push", "web_push_notification", "", `{"most_recent_device_only":true}`, ""},
		{"localized unknown key", "", "", `{"localized_messages":{"property":"lang","messages":{"en":{}},"default":"en"}}`, "campaign.delivery.localized_messages.default"},
		{"localized not an object", "", "", `{"localized_messages":[]}`, "campaign.delivery.localized_messages"},
		{"property missing", "", "", `{"localized_messages":{"messages":{"en":{}}}}`, "campaign.delivery.localized_messages.property"},
		{"property empty", "", "", `{"localized_messages":{"property":"","messages":{"en":{}}}}`, "campaign.delivery.localized_messages.property"},
		{"property dollar", "", "", `{"localized_messages":{"property":"$lang","messages":{"en":{}}}}`, "campaign.delivery.localized_messages.property"},
		{"messages missing", "", "", `{"localized_messages":{"property":"lang"}}`, "campaign.delivery.localized_messages.messages"},
		{"messages empty", "", "", `{"localized_messages":{"property":"lang","messages":{}}}`, "campaign.delivery.localized_messages.messages"},
		{"messages an array", "", "", `{"localized_messages":{"property":"lang","messages":[]}}`, "campaign.delivery.localized_messages.messages"},
		{"tag with underscore", "", "", `{"localized_messages":{"property":"lang","messages":{"en_US":{}}}}`, `campaign.delivery.localized_messages.messages.en_US`},
		{"tag empty", "", "", `{"localized_messages":{"property":"lang","messages":{"":{}}}}`, `campaign.delivery.localized_messages.messages[""]`},
		{"tag 36 characters", "", "", `{"localized_messages":{"property":"lang","messages":{"` + strings.Repeat("a", 36) + `":{}}}}`, "campaign.delivery.localized_messages.messages." + strings.Repeat("a", 36)},
		{"tag 35 characters", "", "", `{"localized_messages":{"property":"lang","messages":{"` + strings.Repeat("a", 35) + `":{}}}}`, ""},
		{"tags equal ignoring case", "", "", `{"localized_messages":{"property":"lang","messages":{"pt-BR":{},"pt-br":{}}}}`, `campaign.delivery.localized_messages.messages["pt-br"]`},
		{"message a string", "", "", `{"localized_messages":{"property":"lang","messages":{"en":"hi"}}}`, "campaign.delivery.localized_messages.messages.en"},
		{"message null", "", "", `{"localized_messages":{"property":"lang","messages":{"en":null}}}`, "campaign.delivery.localized_messages.messages.en"},
		{"with experiment_id", "", `"experiment_id":"x",`, `{` + lm + `}`, "campaign.delivery.localized_messages"},
		{"all three", "", "", `{` + lt + `,"most_recent_device_only":true,` + lm + `}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ch := tc.channel
			if ch == "" {
				ch = "push_notification"
			}
			text := `{"version":1,"action":"calculate-size","request_id":"r","project_id":"p_reject","scheduled_at":"2026-11-24T00:00:00Z",
"campaign":{"id":"c","channel":"` + ch + `","audience":{"type":"all"},"message":{"t":"x"},` + tc.extra + `"delivery":` + tc.delivery + `}}`
			path := filepath.Join(t.TempDir(), "job.json")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			r := run(t, "", "check", "--job", path)
			if tc.path == "" {
				if r.code != ExitOK {
					t.Fatalf("want accepted, got exit %d: %s", r.code, r.stderr)
				}
				return
			}
			if r.code != ExitRejected || !strings.Contains(r.stdout+r.stderr, tc.path) {
				t.Fatalf("want a rejection naming %s, got exit %d: %s%s", tc.path, r.code, r.stdout, r.stderr)
			}
		})
	}
}

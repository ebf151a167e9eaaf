package job

import (
	"strings"
	"testing"
)

func deliveryJob(channel, fields string) string {
	j := strings.Replace(validJob, `"channel":"email"`, `"channel":"`+channel+`",`+fields, 1)
	return j
}

// Section 11: delivery parses; absent, null and {} are off; optional members
// take their defaults.
func TestParseDelivery(t *testing.T) {
	t.Parallel()
	j, err := Parse([]byte(deliveryJob("push_notification", `"delivery":{"local_time":{"time":"09:05","time_zone":"tz"},"most_recent_device_only":true,
"localized_messages":{"property":"lang","messages":{"en":{"title":"Hi"},"zh-Hant":{"title":"你好"}}}}`)))
	if err != nil {
		t.Fatal(err)
	}
	d := j.Campaign.Delivery
	if !d.IsOn() || d.LocalTime.Hour != 9 || d.LocalTime.Minute != 5 || d.LocalTime.ZoneKey != "tz" || d.LocalTime.FallbackName != "Asia/Seoul" ||
		d.LocalTime.SkipPassed || !d.MostRecentDeviceOnly || d.Localized.Property != "lang" ||
		strings.Join(d.Localized.Keys, ",") != "en,zh-Hant" || string(d.Localized.Messages[1]) != `{"title":"你好"}` {
		t.Fatalf("parsed %+v %+v %+v", d, d.LocalTime, d.Localized)
	}
	j, err = Parse([]byte(deliveryJob("email", `"delivery":{"local_time":{"time":"23:59","time_zone":"tz","fallback_time_zone":"UTC","if_passed":"skip"},"most_recent_device_only":false}`)))
	if err != nil || !j.Campaign.Delivery.LocalTime.SkipPassed || j.Campaign.Delivery.LocalTime.FallbackName != "UTC" || j.Campaign.Delivery.MostRecentDeviceOnly {
		t.Fatalf("skip: %v %+v", err, j)
	}
	for _, fields := range []string{`"delivery":null`, `"delivery":{}`, `"delivery":{"local_time":null,"most_recent_device_only":null,"localized_messages":null}`} {
		j, err := Parse([]byte(deliveryJob("email", fields)))
		if err != nil || j.Campaign.Delivery.IsOn() {
			t.Fatalf("%s: %v %+v", fields, err, j)
		}
	}
}

// Section 11: every bad delivery value is a rejection naming its path.
func TestParseDeliveryRejections(t *testing.T) {
	t.Parallel()
	lt := func(s string) string { return `"delivery":{"local_time":{` + s + `}}` }
	lm := func(s string) string { return `"delivery":{"localized_messages":{` + s + `}}` }
	cases := []struct{ channel, fields, want string }{
		{"email", `"delivery":true`, `campaign.delivery: want an object, got a boolean`},
		{"email", `"delivery":{"quiet":1}`, `campaign.delivery.quiet: unknown field`},
		{"email", `"delivery":{"local_time":"09:00"}`, `campaign.delivery.local_time: want an object, got a string`},
		{"email", lt(`"time_zone":"tz"`), `campaign.delivery.local_time.time: required`},
		{"email", lt(`"time":"9:00","time_zone":"tz"`), `campaign.delivery.local_time.time: want HH:MM from 00:00 to 23:59, got "9:00"`},
		{"email", lt(`"time":"24:00","time_zone":"tz"`), `campaign.delivery.local_time.time: want HH:MM`},
		{"email", lt(`"time":"09:60","time_zone":"tz"`), `campaign.delivery.local_time.time: want HH:MM`},
		{"email", lt(`"time":"09:00:00","time_zone":"tz"`), `campaign.delivery.local_time.time: want HH:MM`},
		{"email", lt(`"time":900,"time_zone":"tz"`), `campaign.delivery.local_time.time: want a string, got a number`},
		{"email", lt(`"time":"09:00"`), `campaign.delivery.local_time.time_zone: required`},
		{"email", lt(`"time":"09:00","time_zone":""`), `campaign.delivery.local_time.time_zone: must name a user_properties key, got an empty name`},
		{"email", lt(`"time":"09:00","time_zone":"$tz"`), `campaign.delivery.local_time.time_zone: must name a user_properties key; "$tz" starts with $`},
		{"email", lt(`"time":"09:00","time_zone":1`), `campaign.delivery.local_time.time_zone: want a string, got a number`},
		{"email", lt(`"time":"09:00","time_zone":"tz","fallback_time_zone":"asia/seoul"`), `campaign.delivery.local_time.fallback_time_zone: "asia/seoul" is not an IANA time zone name`},
		{"email", lt(`"time":"09:00","time_zone":"tz","fallback_time_zone":"Local"`), `campaign.delivery.local_time.fallback_time_zone: "Local" is not`},
		{"email", lt(`"time":"09:00","time_zone":"tz","fallback_time_zone":""`), `campaign.delivery.local_time.fallback_time_zone: "" is not`},
		{"email", lt(`"time":"09:00","time_zone":"tz","fallback_time_zone":"../../etc/passwd"`), `campaign.delivery.local_time.fallback_time_zone: "../../etc/passwd" is not`},
		{"email", lt(`"time":"09:00","time_zone":"tz","fallback_time_zone":"Mars/Olympus"`), `campaign.delivery.local_time.fallback_time_zone: "Mars/Olympus" is not`},
		{"email", lt(`"time":"09:00","time_zone":"tz","fallback_time_zone":9`), `campaign.delivery.local_time.fallback_time_zone: want a string, got a number`},
		{"email", lt(`"time":"09:00","time_zone":"tz","if_passed":"later"`), `campaign.delivery.local_time.if_passed: unknown value "later"`},
		{"email", lt(`"time":"09:00","time_zone":"tz","if_passed":true`), `campaign.delivery.local_time.if_passed: want a string, got a boolean`},
		{"email", lt(`"time":"09:00","time_zone":"tz","zone":"x"`), `campaign.delivery.local_time.zone: unknown field`},
		{"email", `"delivery":{"most_recent_device_only":true}`, `campaign.delivery.most_recent_device_only: applies to push_notification and web_push_notification only, not email`},
		{"text_message", `"delivery":{"most_recent_device_only":true}`, `campaign.delivery.most_recent_device_only: applies to`},
		{"push_notification", `"delivery":{"most_recent_device_only":"yes"}`, `campaign.delivery.most_recent_device_only: want a boolean, got a string`},
		{"email", lm(`"messages":{"en":{}}`), `campaign.delivery.localized_messages.property: required`},
		{"email", lm(`"property":"$lang","messages":{"en":{}}`), `campaign.delivery.localized_messages.property: must name a user_properties key; "$lang" starts with $`},
		{"email", lm(`"property":"lang"`), `campaign.delivery.localized_messages.messages: required`},
		{"email", lm(`"property":"lang","messages":{}`), `campaign.delivery.localized_messages.messages: must hold at least one language`},
		{"email", lm(`"property":"lang","messages":[]`), `campaign.delivery.localized_messages.messages: want an object, got an array`},
		{"email", lm(`"property":"lang","messages":{"en":"Hi"}`), `campaign.delivery.localized_messages.messages.en: want an object, got a string`},
		{"email", lm(`"property":"lang","messages":{"en_US":{}}`), `campaign.delivery.localized_messages.messages.en_US: not a language tag`},
		{"email", lm(`"property":"lang","messages":{"":{}}`), `campaign.delivery.localized_messages.messages[""]: not a language tag`},
		{"email", lm(`"property":"lang","messages":{"` + strings.Repeat("a", 36) + `":{}}`), `campaign.delivery.localized_messages.messages.` + strings.Repeat("a", 36) + `: not a language tag`},
		{"email", lm(`"property":"lang","messages":{"en":{},"EN":{}}`), `campaign.delivery.localized_messages.messages.en: the same language as "EN"`},
		{"email", lm(`"property":"lang","messages":{"en":{}},"default":"en"`), `campaign.delivery.localized_messages.default: unknown field`},
		{"email", `"experiment_id":"x",` + lm(`"property":"lang","messages":{"en":{}}`), `campaign.delivery.localized_messages: cannot be combined with campaign.experiment_id`},
		{"email", lm(`"property":"lang","messages":{"en":{"t":"\u0000"}}`), `campaign.delivery.localized_messages.messages.en.t: contains a NUL character`},
		{"email", lt(`"time":"09:00","time_zone":"t\u0000z"`), `campaign.delivery.local_time.time_zone: contains a NUL character`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(deliveryJob(c.channel, c.fields)))
		if err == nil || !IsRejection(err) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.fields, err, c.want)
		}
	}
	// A key of 35 characters is a tag.
	if _, err := Parse([]byte(deliveryJob("email", lm(`"property":"lang","messages":{"`+strings.Repeat("a", 35)+`":{}}`)))); err != nil {
		t.Fatal(err)
	}
}

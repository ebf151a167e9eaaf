package job

import (
	"strings"
	"testing"
)

const validJob = `{"version":1,"action":"publish","request_id":"r1","project_id":"p1",
"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"c1","channel":"email","message":{"title":"x"},
"audience":{"type":"segment","groups":[{"conditions":[
{"kind":"user","attribute":"tier","operator":"=","value":"gold"},
{"kind":"device","attribute":"app_version","operator":">=","value":"3.10"},
{"kind":"event","event":"purchase","within_days":30,"operator":">=","value":1},
{"kind":"delivery","campaign_id":"c0","within_days":7,"received":false}]}]}}}`

func TestParseValid(t *testing.T) {
	t.Parallel()
	j, err := Parse([]byte(validJob))
	if err != nil {
		t.Fatal(err)
	}
	conds := j.Campaign.Audience.Groups[0].Conditions
	if j.Campaign.Channel != ChannelEmail || len(conds) != 4 || conds[2].WithinDays != 30 || conds[3].Received {
		t.Fatalf("parsed %+v", j)
	}
	if conds[2].Path != "campaign.audience.groups[0].conditions[2]" {
		t.Fatalf("condition path %q", conds[2].Path)
	}
	if got := j.ScheduledAt.UTC().Format("15:04"); got != "09:00" {
		t.Fatalf("scheduled_at %s", got)
	}
}

// Every rejection names the JSON path of what is wrong.
func TestParseRejections(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, from, to, want string }{
		{"operator", `"operator":"=","value":"gold"`, `"operator":"~=","value":"gold"`, `campaign.audience.groups[0].conditions[0].operator: unknown operator "~="`},
		{"channel", `"channel":"email"`, `"channel":"fax"`, `campaign.channel: unknown channel "fax"`},
		{"project", `"project_id":"p1"`, `"project_id":"P-1"`, `project_id: invalid project id "P-1"`},
		{"project long", `"project_id":"p1"`, `"project_id":"` + strings.Repeat("a", 49) + `"`, `project_id: invalid project id`},
		{"unknown field", `"request_id":"r1"`, `"request_id":"r1","extra":1`, `extra: unknown field`},
		{"unknown nested", `"received":false`, `"received":false,"x":1`, `campaign.audience.groups[0].conditions[3].x: unknown field`},
		{"kind", `"kind":"event"`, `"kind":"page"`, `campaign.audience.groups[0].conditions[2].kind: unknown condition kind "page"`},
		{"device attr", `"attribute":"app_version"`, `"attribute":"model"`, `campaign.audience.groups[0].conditions[1].attribute: unknown device attribute "model"`},
		{"column attr", `"attribute":"tier"`, `"attribute":"$name"`, `campaign.audience.groups[0].conditions[0].attribute: unknown column attribute "$name"`},
		{"bool op", `"operator":"=","value":"gold"`, `"operator":">","value":true`, `campaign.audience.groups[0].conditions[0].value: operator ">" does not apply to a boolean`},
		{"in scalar", `"operator":"=","value":"gold"`, `"operator":"in","value":"gold"`, `campaign.audience.groups[0].conditions[0].value: operator "in" wants an array`},
		{"array for =", `"operator":"=","value":"gold"`, `"operator":"=","value":["gold"]`, `campaign.audience.groups[0].conditions[0].value: an array is only allowed`},
		{"exists value", `"operator":"=","value":"gold"`, `"operator":"exists","value":"gold"`, `campaign.audience.groups[0].conditions[0].value: operator "exists" takes no value`},
		{"null value", `"operator":"=","value":"gold"`, `"operator":"=","value":null`, `campaign.audience.groups[0].conditions[0].value: null is not a value`},
		{"nested array", `"operator":"=","value":"gold"`, `"operator":"in","value":["a",["b"]]`, `campaign.audience.groups[0].conditions[0].value[1]: an array is only allowed`},
		{"object value", `"operator":"=","value":"gold"`, `"operator":"=","value":{"x":1}`, `campaign.audience.groups[0].conditions[0].value: an object value must be {"template": "<Liquid>"}`},
		{"contains number", `"operator":"=","value":"gold"`, `"operator":"contains","value":1`, `campaign.audience.groups[0].conditions[0].value: operator "contains" wants a string`},
		{"huge number", `"operator":"=","value":"gold"`, `"operator":"=","value":1e999`, `campaign.audience.groups[0].conditions[0].value: number 1e999 is out of range`},
		{"within_days", `"within_days":30`, `"within_days":0`, `campaign.audience.groups[0].conditions[2].within_days: must be between 1 and 36500`},
		{"within_days type", `"within_days":30`, `"within_days":"30"`, `campaign.audience.groups[0].conditions[2].within_days: want an integer, got a string`},
		{"received", `"received":false`, `"received":"no"`, `campaign.audience.groups[0].conditions[3].received: want a boolean, got a string`},
		{"version", `"version":1`, `"version":2`, `version: unsupported version 2`},
		{"action", `"action":"publish"`, `"action":"send"`, `action: unknown action "send"`},
		{"scheduled_at", `"scheduled_at":"2026-11-24T18:00:00+09:00"`, `"scheduled_at":"tomorrow"`, `scheduled_at: not an RFC 3339 time`},
		{"request_id blank", `"request_id":"r1"`, `"request_id":"  "`, `request_id: must not be blank`},
		{"audience type", `"type":"segment"`, `"type":"everyone"`, `campaign.audience.type: unknown audience type "everyone"`},
		{"empty groups", `"groups":[{"conditions":[`, `"groups":[],"x":[{"conditions":[`, `campaign.audience.x: unknown field`},
		{"throttle", `"message":{"title":"x"}`, `"message":{"title":"x"},"throttle":{"max_per_interval":0,"interval_minutes":5}`, `campaign.throttle.max_per_interval: must be between 1 and`},
		{"message type", `"message":{"title":"x"}`, `"message":"x"`, `campaign.message: want an object, got a string`},
		{"variant msgs", `"message":{"title":"x"}`, `"message":{"title":"x"},"variant_messages":{"a":{}}`, `campaign.variant_messages: needs campaign.experiment_id`},
		{"malformed", `"campaign":{`, `"campaign":{{`, `malformed JSON`},
		{"trailing", validJob, validJob + `{}`, `malformed JSON: data after the object`},
		{"not object", validJob, `[1]`, `malformed JSON`},
		{"bad utf8", `"r1"`, "\"r\xff\"", `malformed JSON: not valid UTF-8`},
	}
	for _, c := range cases {
		text := strings.Replace(validJob, c.from, c.to, 1)
		if text == validJob && c.from != validJob {
			t.Fatalf("%s: replacement did not apply", c.name)
		}
		_, err := Parse([]byte(text))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: got %v, want prefix %q", c.name, err, c.want)
			continue
		}
		if !IsRejection(err) {
			t.Errorf("%s: not a rejection", c.name)
		}
	}
}

func TestParseAudiences(t *testing.T) {
	t.Parallel()
	base := `{"version":1,"action":"calculate-size","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"push_notification","audience":%s}}`
	ok := []string{
		`{"type":"all"}`,
		`{"type":"user_ids","user_ids":[]}`,
		`{"type":"user_ids","user_ids":["a","a"],"groups":[{"conditions":[{"kind":"user","attribute":"x","operator":"exists"}]}]}`,
		`{"type":"csv","url":"s3://b/k.csv"}`,
		`{"type":"csv","url":"file:///tmp/x.csv"}`,
	}
	for _, a := range ok {
		if _, err := Parse([]byte(strings.Replace(base, "%s", a, 1))); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	bad := map[string]string{
		`{"type":"all","groups":[]}`:                      "campaign.audience.groups: unknown field",
		`{"type":"segment"}`:                              "campaign.audience.groups: required for a segment audience",
		`{"type":"segment","groups":[]}`:                  "campaign.audience.groups: must not be empty",
		`{"type":"segment","groups":[{"conditions":[]}]}`: "campaign.audience.groups[0].conditions: must not be empty",
		`{"type":"user_ids"}`:                             "campaign.audience.user_ids: required",
		`{"type":"user_ids","user_ids":[1]}`:              "campaign.audience.user_ids[0]: want a string, got a number",
		`{"type":"csv","url":"http://x/y.csv"}`:           `campaign.audience.url: unsupported URL "http://x/y.csv"`,
		`{"type":"csv"}`:                                  "campaign.audience.url: required",
	}
	for a, want := range bad {
		_, err := Parse([]byte(strings.Replace(base, "%s", a, 1)))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", a, err, want)
		}
	}
}

func TestParseEnvelope(t *testing.T) {
	t.Parallel()
	env, err := ParseEnvelope([]byte(`{"version":1,"message_id":"m-123"}`))
	if err != nil || env.MessageID != "m-123" || env.Job != nil {
		t.Fatalf("claim check: %+v %v", env, err)
	}
	env, err = ParseEnvelope([]byte(validJob))
	if err != nil || env.Job == nil {
		t.Fatalf("inline: %v", err)
	}
	if _, err := ParseEnvelope([]byte(`{"version":1,"message_id":"m","x":1}`)); err == nil || err.Error() != "x: unknown field" {
		t.Fatalf("claim check extra field: %v", err)
	}
	if _, err := ParseEnvelope([]byte(`{"version":1,"message_id":""}`)); err == nil || err.Error() != "message_id: must not be blank" {
		t.Fatalf("blank message id: %v", err)
	}
}

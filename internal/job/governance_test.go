package job

import (
	"strings"
	"testing"
)

func governanceJob(fields string) string {
	return strings.Replace(validJob, `"channel":"email"`, `"channel":"email",`+fields, 1)
}

// Section 10: advertising and frequency_cap parse; absent or null is off.
func TestParseGovernance(t *testing.T) {
	t.Parallel()
	j, err := Parse([]byte(governanceJob(`"advertising":{"consent":"marketing opt-in","night_consent":"night_opt_in"},"frequency_cap":{"max_messages":1000,"within_days":365}`)))
	if err != nil {
		t.Fatal(err)
	}
	c := j.Campaign
	if c.Advertising == nil || c.Advertising.Consent != "marketing opt-in" || c.Advertising.NightConsent != "night_opt_in" ||
		c.FrequencyCap == nil || c.FrequencyCap.MaxMessages != 1000 || c.FrequencyCap.WithinDays != 365 {
		t.Fatalf("parsed %+v %+v", c.Advertising, c.FrequencyCap)
	}
	for _, fields := range []string{`"advertising":null,"frequency_cap":null`, `"exclude_previous_recipients":false`} {
		j, err := Parse([]byte(governanceJob(fields)))
		if err != nil || j.Campaign.Advertising != nil || j.Campaign.FrequencyCap != nil {
			t.Fatalf("%s: %v %+v", fields, err, j)
		}
	}
	j, err = Parse([]byte(governanceJob(`"advertising":{"consent":"m","night_consent":null},"frequency_cap":{"max_messages":1,"within_days":1}`)))
	if err != nil || j.Campaign.Advertising.NightConsent != "" || j.Campaign.FrequencyCap.MaxMessages != 1 {
		t.Fatalf("null night_consent: %v", err)
	}
}

// Section 10: every bad governance field is a rejection naming its path.
func TestParseGovernanceRejections(t *testing.T) {
	t.Parallel()
	cases := []struct{ fields, want string }{
		{`"advertising":{}`, `campaign.advertising.consent: required`},
		{`"advertising":{"consent":""}`, `campaign.advertising.consent: must name a user_properties key, got an empty name`},
		{`"advertising":{"consent":"  "}`, `campaign.advertising.consent: must name a user_properties key`},
		{`"advertising":{"consent":"$email"}`, `campaign.advertising.consent: must name a user_properties key; "$email" starts with $`},
		{`"advertising":{"consent":"m","night_consent":""}`, `campaign.advertising.night_consent: must name a user_properties key`},
		{`"advertising":{"consent":"m","night_consent":"$x"}`, `campaign.advertising.night_consent: must name a user_properties key; "$x" starts with $`},
		{`"advertising":{"consent":"m","quiet_hours":true}`, `campaign.advertising.quiet_hours: unknown field`},
		{`"advertising":{"consent":true}`, `campaign.advertising.consent: want a string, got a boolean`},
		{`"advertising":{"consent":null}`, `campaign.advertising.consent: required`},
		{`"advertising":{"consent":"m","night_consent":1}`, `campaign.advertising.night_consent: want a string, got a number`},
		{`"advertising":true`, `campaign.advertising: want an object, got a boolean`},
		{`"advertising":"m"`, `campaign.advertising: want an object, got a string`},
		{`"frequency_cap":{"within_days":7}`, `campaign.frequency_cap.max_messages: required`},
		{`"frequency_cap":{"max_messages":3}`, `campaign.frequency_cap.within_days: required`},
		{`"frequency_cap":{"max_messages":0,"within_days":7}`, `campaign.frequency_cap.max_messages: must be between 1 and 1000, got 0`},
		{`"frequency_cap":{"max_messages":1001,"within_days":7}`, `campaign.frequency_cap.max_messages: must be between 1 and 1000, got 1001`},
		{`"frequency_cap":{"max_messages":-1,"within_days":7}`, `campaign.frequency_cap.max_messages: must be between 1 and 1000`},
		{`"frequency_cap":{"max_messages":2.5,"within_days":7}`, `campaign.frequency_cap.max_messages: want an integer, got 2.5`},
		{`"frequency_cap":{"max_messages":"3","within_days":7}`, `campaign.frequency_cap.max_messages: want an integer, got a string`},
		{`"frequency_cap":{"max_messages":null,"within_days":7}`, `campaign.frequency_cap.max_messages: want an integer, got null`},
		{`"frequency_cap":{"max_messages":3,"within_days":0}`, `campaign.frequency_cap.within_days: must be between 1 and 365, got 0`},
		{`"frequency_cap":{"max_messages":3,"within_days":366}`, `campaign.frequency_cap.within_days: must be between 1 and 365, got 366`},
		{`"frequency_cap":{"max_messages":3,"within_days":7,"channel":"email"}`, `campaign.frequency_cap.channel: unknown field`},
		{`"frequency_cap":[3,7]`, `campaign.frequency_cap: want an object, got an array`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(governanceJob(c.fields)))
		if err == nil || !IsRejection(err) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s:\n got  %v\n want %s", c.fields, err, c.want)
		}
	}
}

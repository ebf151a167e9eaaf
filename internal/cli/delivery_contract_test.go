package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/schema"
)

// These tests run jobs with delivery targeting (section 11 of the
// interface contract, docs/delivery.md), alone and with governance
// (section 10), an A/B experiment with a control group, throttles, id-list
// and CSV audiences, through segpub size and publish. Every expectation was worked out by hand from the contract's
// text over the fixture below, never read from the code; the comments show
// the working.
//
// Reference time 2026-11-24T00:00:00Z (09:00 in Seoul); local_time 09:00
// gives these base times:
//
//	Asia/Seoul and the fallback  2026-11-24T00:00Z (equal to the reference: not passed)
//	America/New_York (EST)       09:00 on Nov 23 = 14:00Z Nov 23, passed; next day 2026-11-24T14:00Z
//	Asia/Kolkata (+05:30)        2026-11-24T03:30Z
//	Asia/Kathmandu (+05:45)      2026-11-24T03:15Z
//	Pacific/Kiritimati (+14:00)  14:00 local on Nov 24: 09:00 = 19:00Z Nov 23, passed; next day 2026-11-24T19:00Z
//	UTC                          2026-11-24T09:00Z
const deliveryRef = "2026-11-24T00:00:00Z"

func deliveryFixture(t *testing.T) schema.Tables {
	t.Helper()
	tb := dbtest.Project(t)
	users := []struct {
		id, props string
		bucket    int
	}{
		{"u01", `{"tz":"Asia/Seoul","lang":"en-US","ok":true,"night":true}`, 100},
		{"u02", `{"tz":"America/New_York","lang":"pt_br","ok":true}`, 200},
		{"u03", `{"tz":"Asia/Kolkata","lang":"zh-Hant-TW","ok":true}`, 300},
		{"u04", `{"tz":"Asia/Kathmandu","lang":" KO ","ok":"true"}`, 400},
		{"u05", `{"tz":"Pacific/Kiritimati","lang":"zh","ok":true}`, 9600}, // control, but its time passes first
		{"u06", `{"tz":"asia/seoul","lang":42,"ok":true,"night":true}`, 9500},
		{"u07", `{"tz":5,"lang":"fr","ok":true}`, 600},
		{"u08", `{"tz":"UTC","lang":"EN","ok":true}`, 700},
		{"u09", `{"lang":"pt","ok":true}`, 800},
		{"u10", `{"tz":"Local","ok":true}`, 900},
		{"u11", `{"tz":"../../../etc/localtime","lang":"ko-KR","ok":false}`, 1000},
		{"u12", `{"tz":" Asia/Tokyo","lang":"pt-BR-x-foo","ok":true}`, 1100},
	}
	for _, u := range users {
		dbtest.Exec(t, `INSERT INTO `+tb.User+` (notifly_user_id, external_user_id, user_properties, random_bucket_number) VALUES ($1, $1, $2::jsonb, $3)`, u.id, u.props, u.bucket)
	}
	devices := [][5]string{
		{"d01a", "u01", "tok01a", "ios", "2026-01-01T00:00:00Z"},
		{"d01b", "u01", "tok01b", "android", "2026-03-01T00:00:00Z"}, // u01's newest
		{"d02a", "u02", "tok02a", "ios", "2026-02-01T00:00:00.123456Z"},
		{"d02B", "u02", "tok02B", "ios", "2026-02-01T00:00:00.123456Z"}, // tie: "d02B" < "d02a" in byte order
		{"d03a", "u03", "  ", "ios", "2026-05-01T00:00:00Z"},            // newest, but no_contact
		{"d03b", "u03", "tok03b", "ios", "2026-04-01T00:00:00Z"},
		{"d04a", "u04", "tok04a", "web", "2026-09-01T00:00:00Z"}, // not a push candidate
		{"d04b", "u04", "tok04b", "ios", "2026-01-01T00:00:00Z"},
		{"d05a", "u05", "shared-1", "ios", "2026-01-01T00:00:00Z"}, // u05's older device shares u06's token
		{"d05b", "u05", "tok05b", "ios", "2026-06-01T00:00:00Z"},
		{"d06a", "u06", "shared-1", "ios", "2026-06-01T00:00:00Z"},
		{"d07a", "u07", "shared-2", "android", "2026-01-01T00:00:00Z"},
		{"d08a", "u08", "shared-2", "ios", "2026-01-01T00:00:00Z"},
		{"d09a", "u09", "tok09a", "ios", "2026-01-01T00:00:00Z"},
		{"d11a", "u11", "tok11a", "ios", "2026-01-01T00:00:00Z"},
		{"d12a", "u12", "tok12a", "ios", "2026-01-01T00:00:00Z"},
	}
	for _, d := range devices {
		dbtest.Exec(t, `INSERT INTO `+tb.Device+` (notifly_device_id, notifly_user_id, device_token, platform, updated_at) VALUES ($1, $2, $3, $4, $5::timestamptz)`, d[0], d[1], d[2], d[3], d[4])
	}
	// u09 has two push deliveries in the last 7 days (frequency cap 2/7).
	dbtest.Exec(t, `INSERT INTO `+tb.DeliveryResult+` (campaign_id, notifly_user_id, channel, status, created_at) VALUES
('old', 'u09', 'push_notification', 'sent', '2026-11-23T00:00:00Z'), ('old2', 'u09', 'push_notification', 'failed', '2026-11-17T00:00:00Z'),
('old', 'u08', 'email', 'sent', '2026-11-23T00:00:00Z'), ('old2', 'u08', 'push_notification', 'sent', '2026-11-16T23:59:59Z')`)
	// Experiment x: va owns buckets 0-4999, the control vc 5000-9999 (u05,
	// u06).
	dbtest.Exec(t, `INSERT INTO `+tb.Variants+` (id, experiment_id, campaign_id, name, weight) VALUES ('va', 'x', 'c', 'A', 1), ('vc', 'x', 'c', 'control', 1)`)
	return tb
}

// deliveryRun is what one job did: the result of size and of publish (which
// must agree) and the published messages, one line each:
// "token send_at locale title variant" (locale "-" when the member is absent).
type deliveryRun struct {
	Candidates int64            `json:"candidates"`
	Published  int64            `json:"published"`
	Skipped    map[string]int64 `json:"skipped"`
	Deferred   *int64           `json:"deferred"`
	Variants   map[string]int64 `json:"variants"`
	messages   []string
}

func (r deliveryRun) counts() string {
	keys := make([]string, 0, len(r.Skipped))
	for k := range r.Skipped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "candidates=%d published=%d", r.Candidates, r.Published)
	if r.Deferred != nil {
		fmt.Fprintf(&b, " deferred=%d", *r.Deferred)
	}
	for _, k := range keys {
		if r.Skipped[k] != 0 {
			fmt.Fprintf(&b, " %s=%d", k, r.Skipped[k])
		}
	}
	return b.String()
}

var tenSkipKeys = []string{"unknown_user", "previously_received", "no_consent", "frequency_capped", "local_time_passed",
	"control_group", "no_contact", "invalid_contact", "older_device", "duplicate_destination"}

func runDeliveryJob(t *testing.T, project, channel, campaign string) deliveryRun {
	t.Helper()
	return runDeliveryJobAt(t, project, channel, deliveryRef, campaign)
}

func runDeliveryJobAt(t *testing.T, project, channel, ref, campaign string) deliveryRun {
	t.Helper()
	text := fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r-%s","project_id":%q,"scheduled_at":%q,
"campaign":{"id":"c","channel":%q,%s}}`, strings.ReplaceAll(t.Name(), "/", "-"), project, ref, channel, campaign)
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var runs [2]deliveryRun
	for i, args := range [][]string{{"size", "--job", path}, {"publish", "--job", path, "--out", "file://" + dir + "/{channel}.ndjson"}} {
		r := run(t, "", args...)
		if r.code != ExitOK {
			t.Fatalf("%s: exit %d: %s", args[0], r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &runs[i]); err != nil {
			t.Fatalf("%s: %v: %s", args[0], err, r.stdout)
		}
		for _, k := range tenSkipKeys {
			if _, ok := runs[i].Skipped[k]; !ok {
				t.Errorf("%s: skipped has no %q: %s", args[0], k, r.stdout)
			}
		}
		if len(runs[i].Skipped) != len(tenSkipKeys) || runs[i].Deferred == nil {
			t.Errorf("%s: want the ten skip keys and deferred: %s", args[0], r.stdout)
		}
	}
	if runs[0].counts() != runs[1].counts() {
		t.Errorf("size and publish differ:\n size    %s\n publish %s", runs[0].counts(), runs[1].counts())
	}
	out := runs[1]
	data, err := os.ReadFile(filepath.Join(dir, channel+".ndjson"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var m struct {
			SendAt    string          `json:"send_at"`
			VariantID *string         `json:"variant_id"`
			Locale    json.RawMessage `json:"locale"`
			Message   struct {
				Title string `json:"title"`
			} `json:"message"`
			Recipient struct {
				Email  string `json:"email"`
				Device struct {
					Token string `json:"device_token"`
				} `json:"device"`
			} `json:"recipient"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		var raw map[string]json.RawMessage
		_ = json.Unmarshal([]byte(line), &raw)
		locale := "-"
		if l, ok := raw["locale"]; ok {
			locale = strings.Trim(string(l), `"`)
		}
		variant := "nil"
		if m.VariantID != nil {
			variant = *m.VariantID
		}
		dest := m.Recipient.Device.Token
		if m.Recipient.Email != "" {
			dest = m.Recipient.Email
		}
		out.messages = append(out.messages, strings.Join([]string{dest, m.SendAt, locale, m.Message.Title, variant}, " "))
	}
	return out
}

func checkDeliveryRun(t *testing.T, got deliveryRun, counts string, variants map[string]int64, messages ...string) {
	t.Helper()
	if got.counts() != counts {
		t.Errorf("counts\n got  %s\n want %s", got.counts(), counts)
	}
	if variants != nil && fmt.Sprint(got.Variants) != fmt.Sprint(variants) {
		t.Errorf("variants: got %v, want %v", got.Variants, variants)
	}
	if g, w := strings.Join(got.messages, "\n"), strings.Join(messages, "\n"); g != w {
		t.Errorf("messages\n got\n%s\n want\n%s", g, w)
	}
}

const localizedAll = `"localized_messages":{"property":"lang","messages":{"en":{"title":"en"},"pt-BR":{"title":"pt"},"zh-Hant":{"title":"zh"},"ko":{"title":"ko"}}}`

// All three members on a project-wide push audience. 16 candidates: two
// devices each for u01, u02, u03, u05; one for u04 (its web device is not a
// push candidate), u06 to u09, u11, u12; u10 has no device (one no_contact).
func TestDeliveryContractAllThree(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	got := runDeliveryJob(t, tb.Project, "push_notification", `"audience":{"type":"all"},"message":{"title":"default"},
"delivery":{"local_time":{"time":"09:00","time_zone":"tz"},"most_recent_device_only":true,`+localizedAll+`}`)
	// no_contact: d03a (blank token) and u10. older_device: d01a, d02a
	// (tie, "d02B" wins), d05a; u03's newest passing candidate is d03b.
	// d05a being older, shared-1 goes to u06; shared-2 goes to u07, u08's
	// is a duplicate.
	checkDeliveryRun(t, got, "candidates=16 published=10 deferred=0 duplicate_destination=1 no_contact=2 older_device=3", nil,
		"tok01b 2026-11-24T00:00:00Z en en nil",          // en-US -> en
		"tok02B 2026-11-24T14:00:00Z pt-BR pt nil",       // pt_br -> pt-br, key as written
		"tok03b 2026-11-24T03:30:00Z zh-Hant zh nil",     // zh-Hant-TW -> zh-hant
		"tok04b 2026-11-24T03:15:00Z ko ko nil",          // " KO " trimmed
		"tok05b 2026-11-24T19:00:00Z null default nil",   // "zh": no key zh
		"shared-1 2026-11-24T00:00:00Z null default nil", // asia/seoul: fallback; 42: not a string
		"shared-2 2026-11-24T00:00:00Z null default nil", // 5: fallback; fr: none
		"tok09a 2026-11-24T00:00:00Z null default nil",   // no zone; "pt" does not reach pt-BR
		"tok11a 2026-11-24T00:00:00Z ko ko nil",          // a path: fallback; ko-KR -> ko
		"tok12a 2026-11-24T00:00:00Z pt-BR pt nil",       // " Asia/Tokyo" is not a name; pt-br-x-foo -> pt-br
	)
}

// if_passed skip with a throttle of 2 per 10 minutes: waves are counted per
// base time, in the run's order. Without localized_messages no message has
// a locale member.
func TestDeliveryContractSkipAndWaves(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	got := runDeliveryJob(t, tb.Project, "push_notification", `"audience":{"type":"all"},"message":{"title":"default"},
"throttle":{"max_per_interval":2,"interval_minutes":10},
"delivery":{"local_time":{"time":"09:00","time_zone":"tz","if_passed":"skip"}}}`)
	// local_time_passed: u02's and u05's two devices each; so shared-1
	// goes to u06. The Seoul base time (u01 x2, u06, u07, u09, u11, u12)
	// fills waves of two.
	checkDeliveryRun(t, got, "candidates=16 published=9 deferred=0 duplicate_destination=1 local_time_passed=4 no_contact=2", nil,
		"tok01a 2026-11-24T00:00:00Z - default nil",
		"tok01b 2026-11-24T00:00:00Z - default nil",
		"tok03b 2026-11-24T03:30:00Z - default nil",
		"tok04b 2026-11-24T03:15:00Z - default nil",
		"shared-1 2026-11-24T00:10:00Z - default nil",
		"shared-2 2026-11-24T00:10:00Z - default nil",
		"tok09a 2026-11-24T00:20:00Z - default nil",
		"tok11a 2026-11-24T00:20:00Z - default nil",
		"tok12a 2026-11-24T00:30:00Z - default nil",
	)
}

// Consent, night-time consent and a frequency cap with local_time: the
// night-time rule applies to each base time in Asia/Seoul.
func TestDeliveryContractGovernance(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	got := runDeliveryJob(t, tb.Project, "push_notification", `"audience":{"type":"all"},"message":{"title":"default"},
"advertising":{"consent":"ok","night_consent":"night"},"frequency_cap":{"max_messages":2,"within_days":7},
"delivery":{"local_time":{"time":"09:00","time_zone":"tz"}}}`)
	// no_consent: u04 ("true" is a string), u11 (false). frequency_capped:
	// u09 (u08's push row is 7 days and 1 second old). no_contact: d03a,
	// u10. shared-1 goes to u05's d05a, so u06's is a duplicate; u08's
	// shared-2 too. New York's 14:00Z is 23:00 in Seoul and Kiritimati's
	// 19:00Z is 04:00 on Nov 25: both defer to 08:00 Seoul on Nov 25
	// (23:00Z).
	checkDeliveryRun(t, got, "candidates=16 published=9 deferred=4 duplicate_destination=2 frequency_capped=1 no_consent=2 no_contact=2", nil,
		"tok01a 2026-11-24T00:00:00Z - default nil",
		"tok01b 2026-11-24T00:00:00Z - default nil",
		"tok02B 2026-11-24T23:00:00Z - default nil",
		"tok02a 2026-11-24T23:00:00Z - default nil",
		"tok03b 2026-11-24T03:30:00Z - default nil",
		"shared-1 2026-11-24T23:00:00Z - default nil",
		"tok05b 2026-11-24T23:00:00Z - default nil",
		"shared-2 2026-11-24T00:00:00Z - default nil",
		"tok12a 2026-11-24T00:00:00Z - default nil",
	)
}

// A/B with a control group, if_passed skip, one device per user and a
// throttle of 3 per 5 minutes: local_time_passed comes before the control
// draw, older_device after the contact checks.
func TestDeliveryContractExperiment(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	got := runDeliveryJob(t, tb.Project, "push_notification", `"audience":{"type":"all"},"message":{"title":"default"},
"experiment_id":"x","throttle":{"max_per_interval":3,"interval_minutes":5},
"delivery":{"local_time":{"time":"09:00","time_zone":"tz","if_passed":"skip"},"most_recent_device_only":true}}`)
	// local_time_passed: u02, u05 (2 each; u05's bucket is the control's,
	// but eligibility comes first); control_group: u06 (bucket 9500); no_contact: d03a, u10; older_device: d01a; u08's shared-2 is
	// u07's.
	checkDeliveryRun(t, got, "candidates=16 published=7 deferred=0 control_group=1 duplicate_destination=1 local_time_passed=4 no_contact=2 older_device=1",
		map[string]int64{"va": 7},
		"tok01b 2026-11-24T00:00:00Z - default va",
		"tok03b 2026-11-24T03:30:00Z - default va",
		"tok04b 2026-11-24T03:15:00Z - default va",
		"shared-2 2026-11-24T00:00:00Z - default va",
		"tok09a 2026-11-24T00:00:00Z - default va",
		"tok11a 2026-11-24T00:05:00Z - default va",
		"tok12a 2026-11-24T00:05:00Z - default va",
	)
}

// An id-list audience: an unknown id, an id listed twice, users whose time
// has passed.
func TestDeliveryContractUserIDs(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	got := runDeliveryJob(t, tb.Project, "push_notification", `"audience":{"type":"user_ids","user_ids":["u02","u05","nobody","u02","u08"]},
"message":{"title":"default"},
"delivery":{"local_time":{"time":"09:00","time_zone":"tz","if_passed":"skip"},"most_recent_device_only":true,`+localizedAll+`}`)
	// u02 and u05: both devices local_time_passed (before older_device);
	// u08's shared-2 is its own here (u07 is not listed).
	checkDeliveryRun(t, got, "candidates=6 published=1 deferred=0 local_time_passed=4 unknown_user=1", nil,
		"shared-2 2026-11-24T09:00:00Z en en nil")
}

// A CSV email audience: consent from the column the job names, the zone
// and language from theirs; email is exempt from the night-time rule.
func TestDeliveryContractCSV(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	csvPath := filepath.Join("testdata", "delivery_email.csv")
	abs, err := filepath.Abs(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	got := runDeliveryJob(t, tb.Project, "email", `"audience":{"type":"csv","url":"file://`+abs+`"},"message":{"title":"default"},
"advertising":{"consent":"mkt","night_consent":"late"},
"delivery":{"local_time":{"time":"21:30","time_zone":"zone","fallback_time_zone":"UTC"},`+localizedAll+`}`)
	// Row 1 Seoul 21:30 = 12:30Z; row 2 New York 21:30 on Nov 23 = 02:30Z
	// Nov 24, after the reference; row 3 no consent ("yes"); row 4 a
	// duplicate of row 1; row 5 no email; row 6 invalid; row 7 blank zone:
	// UTC, blank language: none.
	checkDeliveryRun(t, got, "candidates=7 published=3 deferred=0 duplicate_destination=1 invalid_contact=1 no_consent=1 no_contact=1", nil,
		"a@x.com 2026-11-24T12:30:00Z ko ko nil",
		"b@x.com 2026-11-24T02:30:00Z en en nil",
		"d@x.com 2026-11-24T21:30:00Z null default nil",
	)
}

// A CSV push audience: the zone, language and consent columns are the
// file's (the database's properties are not read); a file without the
// night_consent column means no night-time consent.
func TestDeliveryContractCSVPush(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	abs, err := filepath.Abs(filepath.Join("testdata", "delivery_push.csv"))
	if err != nil {
		t.Fatal(err)
	}
	got := runDeliveryJob(t, tb.Project, "push_notification", `"audience":{"type":"csv","url":"file://`+abs+`"},"message":{"title":"default"},
"advertising":{"consent":"ok","night_consent":"night"},
"delivery":{"local_time":{"time":"22:00","time_zone":"zone"},"most_recent_device_only":true,`+localizedAll+`}}`)
	// u01 (Asia/Seoul in the file): 22:00 Seoul = 13:00Z, night, no night
	// column: deferred to 08:00 Nov 25 Seoul = 23:00Z; newest device d01b,
	// d01a older. u02 (UTC in the file): 22:00Z, 07:00 Seoul on Nov 25:
	// deferred to 23:00Z; d02B wins the tie. u04: no consent in the file.
	// nobody: unknown_user.
	checkDeliveryRun(t, got, "candidates=6 published=2 deferred=2 no_consent=1 older_device=2 unknown_user=1", nil,
		"tok01b 2026-11-24T23:00:00Z en en nil",
		"tok02B 2026-11-24T23:00:00Z ko ko nil",
	)
}

// A CSV audience whose file lacks the column consent names is a rejection.
func TestDeliveryContractCSVWithoutConsentColumn(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	abs, err := filepath.Abs(filepath.Join("testdata", "delivery_email.csv"))
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r-noconsent","project_id":%q,"scheduled_at":%q,
"campaign":{"id":"c","channel":"email","audience":{"type":"csv","url":"file://%s"},"message":{"title":"x"},
"advertising":{"consent":"marketing_opt_in"},"delivery":{"local_time":{"time":"09:00","time_zone":"zone"}}}}`, tb.Project, deliveryRef, abs)
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"size", "publish"} {
		args := []string{cmd, "--job", path}
		if cmd == "publish" {
			args = append(args, "--out", "file://"+t.TempDir()+"/{channel}.ndjson")
		}
		if r := run(t, "", args...); r.code != ExitRejected || !strings.Contains(r.stderr, "marketing_opt_in") {
			t.Fatalf("%s: want a rejection naming the column, got exit %d: %s", cmd, r.code, r.stderr)
		}
	}
}

// Wall times that do not exist (clocks jump forward over them) or occur
// twice, in both hemispheres and with a 30-minute shift (Lord Howe), reached
// through next_day.
func TestDeliveryContractDaylightSaving(t *testing.T) {
	t.Parallel()
	tb := dbtest.Project(t)
	for i, zone := range []string{"America/New_York", "Australia/Sydney", "Australia/Lord_Howe"} {
		id := fmt.Sprintf("z%d", i)
		dbtest.Exec(t, `INSERT INTO `+tb.User+` (notifly_user_id, external_user_id, user_properties, random_bucket_number) VALUES ($1, $1, $2::jsonb, 0)`, id, `{"tz":"`+zone+`"}`)
		dbtest.Exec(t, `INSERT INTO `+tb.Device+` (notifly_device_id, notifly_user_id, device_token, platform) VALUES ($1, $1, 'tok-'||$1, 'ios')`, id)
	}
	for _, tc := range []struct {
		name, ref, time string
		want            []string
	}{
		// New York's gap on Mar 8 (02:00 EST -> 03:00 EDT): 02:30 is read
		// at -05:00, 07:30Z. Sydney (16:00 on Mar 8 there): passed, Mar 9
		// 02:30 AEDT. Lord Howe (16:00 +11:00): passed, Mar 9 02:30 +11.
		{"north gap", "2026-03-08T05:00:00Z", "02:30", []string{
			"tok-z0 2026-03-08T07:30:00Z - default nil",
			"tok-z1 2026-03-08T15:30:00Z - default nil",
			"tok-z2 2026-03-08T15:30:00Z - default nil"}},
		// Oct 3 22:00 in Sydney: 02:15 passed; on Oct 4 02:15 is in the
		// gap (02:00 AEST -> 03:00 AEDT): +10:00, 16:15Z. Lord Howe jumps
		// 02:00 -> 02:30: +10:30, 15:45Z. New York: Oct 4 02:15 EDT.
		{"south gap", "2026-10-03T12:00:00Z", "02:15", []string{
			"tok-z0 2026-10-04T06:15:00Z - default nil",
			"tok-z1 2026-10-03T16:15:00Z - default nil",
			"tok-z2 2026-10-03T15:45:00Z - default nil"}},
		// New York falls back on Nov 1 (01:00-02:00 twice): 01:30 the
		// next day is the earlier, EDT. Sydney Nov 2 01:30 AEDT. Lord
		// Howe: Nov 2 01:30 +11.
		{"north overlap", "2026-11-01T00:00:00Z", "01:30", []string{
			"tok-z0 2026-11-01T05:30:00Z - default nil",
			"tok-z1 2026-11-01T14:30:00Z - default nil",
			"tok-z2 2026-11-01T14:30:00Z - default nil"}},
		// Sydney falls back on Apr 5 (02:00-03:00 twice): 02:30 is the
		// earlier, AEDT (15:30Z Apr 4); Lord Howe falls back 02:00 ->
		// 01:30, so its 02:30 occurs once, at +10:30 (16:00Z), and its
		// 01:45 twice, the earlier at +11 (14:45Z). Reference Apr 4 12:00Z
		// (22:00 or 23:00 there): passed on Apr 4.
		{"south overlap", "2026-04-04T12:00:00Z", "02:30", []string{
			"tok-z0 2026-04-05T06:30:00Z - default nil",
			"tok-z1 2026-04-04T15:30:00Z - default nil",
			"tok-z2 2026-04-04T16:00:00Z - default nil"}},
		{"south overlap lord howe", "2026-04-04T12:00:00Z", "01:45", []string{
			"tok-z0 2026-04-05T05:45:00Z - default nil",
			"tok-z1 2026-04-04T14:45:00Z - default nil",
			"tok-z2 2026-04-04T14:45:00Z - default nil"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runDeliveryJobAt(t, tb.Project, "push_notification", tc.ref, `"audience":{"type":"all"},"message":{"title":"default"},
"delivery":{"local_time":{"time":"`+tc.time+`","time_zone":"tz"}}}`)
			checkDeliveryRun(t, got, "candidates=3 published=3 deferred=0", nil, tc.want...)
		})
	}
}

// Without delivery a job behaves as sections 3 to 10 say, and its result
// still carries the ten skip keys and deferred.
func TestDeliveryContractOff(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	campaign := `"audience":{"type":"all"},"message":{"title":"default"},"throttle":{"max_per_interval":4,"interval_minutes":1}`
	got := runDeliveryJob(t, tb.Project, "push_notification", campaign)
	// 16 candidates; no_contact d03a, u10; duplicates: u06's shared-1
	// (u05's d05a has it) and u08's shared-2. Waves of 4 in (user, device)
	// order.
	checkDeliveryRun(t, got, "candidates=16 published=12 deferred=0 duplicate_destination=2 no_contact=2", nil,
		"tok01a 2026-11-24T00:00:00Z - default nil",
		"tok01b 2026-11-24T00:00:00Z - default nil",
		"tok02B 2026-11-24T00:00:00Z - default nil",
		"tok02a 2026-11-24T00:00:00Z - default nil",
		"tok03b 2026-11-24T00:01:00Z - default nil",
		"tok04b 2026-11-24T00:01:00Z - default nil",
		"shared-1 2026-11-24T00:01:00Z - default nil",
		"tok05b 2026-11-24T00:01:00Z - default nil",
		"shared-2 2026-11-24T00:02:00Z - default nil",
		"tok09a 2026-11-24T00:02:00Z - default nil",
		"tok11a 2026-11-24T00:02:00Z - default nil",
		"tok12a 2026-11-24T00:02:00Z - default nil",
	)
}

// Waves of one base time straddle 21:00 in Seoul: the night-time rule
// applies to each wave's send_at, after the waves are numbered.
func TestDeliveryContractWavesIntoNight(t *testing.T) {
	t.Parallel()
	tb := dbtest.Project(t)
	for i, p := range []string{`{"tz":"Asia/Tokyo","ok":true}`, `{"tz":"Asia/Tokyo","ok":true,"night":true}`, `{"tz":"Asia/Tokyo","ok":true}`, `{"tz":"Asia/Seoul","ok":true}`} {
		id := fmt.Sprintf("w%d", i)
		dbtest.Exec(t, `INSERT INTO `+tb.User+` (notifly_user_id, external_user_id, user_properties, random_bucket_number) VALUES ($1, $1, $2::jsonb, 0)`, id, p)
		dbtest.Exec(t, `INSERT INTO `+tb.Device+` (notifly_device_id, notifly_user_id, device_token, platform) VALUES ($1, $1, 'tok-'||$1, 'ios')`, id)
	}
	// 20:50 in Tokyo and Seoul (the same offset) = 11:50Z; one per 10
	// minutes: w0 20:50, w1 21:00 (night consent), w2 21:10 -> 08:00 Seoul
	// on Nov 25 = 23:00Z; w3 is the same base time's fourth: 21:20,
	// deferred.
	got := runDeliveryJob(t, tb.Project, "push_notification", `"audience":{"type":"all"},"message":{"title":"default"},
"throttle":{"max_per_interval":1,"interval_minutes":10},"advertising":{"consent":"ok","night_consent":"night"},
"delivery":{"local_time":{"time":"20:50","time_zone":"tz"}}}`)
	checkDeliveryRun(t, got, "candidates=4 published=4 deferred=2", nil,
		"tok-w0 2026-11-24T11:50:00Z - default nil",
		"tok-w1 2026-11-24T12:00:00Z - default nil",
		"tok-w2 2026-11-24T23:00:00Z - default nil",
		"tok-w3 2026-11-24T23:00:00Z - default nil",
	)
}

// A CSV email audience with a frequency cap by its user_id column, consent
// and if_passed skip: a row whose user_id is a database user is capped by
// that user's email deliveries; a blank or unknown user_id is not capped.
func TestDeliveryContractCSVFrequencyCap(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	abs, err := filepath.Abs(filepath.Join("testdata", "delivery_email_cap.csv"))
	if err != nil {
		t.Fatal(err)
	}
	got := runDeliveryJob(t, tb.Project, "email", `"audience":{"type":"csv","url":"file://`+abs+`"},"message":{"title":"default"},
"advertising":{"consent":"mkt"},"frequency_cap":{"max_messages":1,"within_days":7},
"delivery":{"local_time":{"time":"09:00","time_zone":"zone","if_passed":"skip"},`+localizedAll+`}`)
	// Row 1: u08 has an email delivery on Nov 23: capped. Row 2: u09's
	// deliveries are push: not capped; UTC 09:00. Rows 3 and 4: blank and
	// unknown user_id, Seoul 09:00 = the reference, not passed. Row 5: no
	// consent comes before the cap.
	checkDeliveryRun(t, got, "candidates=5 published=3 deferred=0 frequency_capped=1 no_consent=1", nil,
		"e2@x.com 2026-11-24T09:00:00Z en en nil",
		"e3@x.com 2026-11-24T00:00:00Z null default nil",
		"e4@x.com 2026-11-24T00:00:00Z ko ko nil",
	)
}

// most_recent_device_only picks among the user's qualifying devices only:
// a newer device that a device condition excludes is not a candidate and
// does not make the qualifying one older.
func TestDeliveryContractMostRecentAmongQualifying(t *testing.T) {
	t.Parallel()
	tb := dbtest.Project(t)
	dbtest.Exec(t, `INSERT INTO `+tb.User+` (notifly_user_id, external_user_id, random_bucket_number) VALUES ('m1', 'm1', 0), ('m2', 'm2', 0)`)
	dbtest.Exec(t, `INSERT INTO `+tb.Device+` (notifly_device_id, notifly_user_id, device_token, platform, app_version, updated_at) VALUES
('m1a', 'm1', 'tok-m1a', 'ios', '3.1', '2026-01-01T00:00:00Z'),
('m1b', 'm1', 'tok-m1b', 'ios', '2.9', '2026-06-01T00:00:00Z'),
('m2a', 'm2', 'tok-m2a', 'android', '3.0', '2026-01-01T00:00:00Z'),
('m2b', 'm2', 'tok-m2b', 'ios', '3.10', '2026-01-01T00:00:01Z'),
('m2c', 'm2', 'tok-m2c', 'web', '9.0', '2026-12-01T00:00:00Z')`)
	got := runDeliveryJob(t, tb.Project, "push_notification", `"audience":{"type":"segment","groups":[{"conditions":[{"kind":"device","attribute":"app_version","operator":">=","value":"3.0"}]}]},
"message":{"title":"default"},"delivery":{"most_recent_device_only":true}`)
	// m1: only m1a qualifies. m2: m2a and m2b qualify (m2c is web), m2b
	// is a second newer.
	checkDeliveryRun(t, got, "candidates=3 published=2 deferred=0 older_device=1", nil,
		"tok-m1a 2026-11-24T00:00:00Z - default nil",
		"tok-m2b 2026-11-24T00:00:00Z - default nil",
	)
}

// no_consent and frequency_capped come before local_time_passed, and
// local_time_passed before no_contact.
func TestDeliveryContractEligibilityOrder(t *testing.T) {
	t.Parallel()
	tb := deliveryFixture(t)
	got := runDeliveryJob(t, tb.Project, "push_notification", `"audience":{"type":"user_ids","user_ids":["u02","u03","u04","u09","u08"]},
"message":{"title":"default"},"advertising":{"consent":"ok"},"frequency_cap":{"max_messages":2,"within_days":7},
"delivery":{"local_time":{"time":"05:00","time_zone":"tz","if_passed":"skip"}}}`)
	// 05:00 has passed in New York (Nov 23), Kolkata and Kathmandu (Nov
	// 24), not in UTC. u04: no consent (and passed); u09: capped (its
	// fallback Seoul passed too); u03's blank-token device is
	// local_time_passed, not no_contact; u08's push row is 1 second too
	// old to count.
	checkDeliveryRun(t, got, "candidates=7 published=1 deferred=0 frequency_capped=1 local_time_passed=4 no_consent=1", nil,
		"shared-2 2026-11-24T05:00:00Z - default nil")
}

// The reference time keeps its seconds: 09:00:00 in Seoul is earlier than
// 09:00:30, so the time has passed.
func TestDeliveryContractPassedBySeconds(t *testing.T) {
	t.Parallel()
	tb := dbtest.Project(t)
	dbtest.Exec(t, `INSERT INTO `+tb.User+` (notifly_user_id, external_user_id, user_properties, random_bucket_number) VALUES ('s1', 's1', '{"tz":"Asia/Seoul"}', 0)`)
	dbtest.Exec(t, `INSERT INTO `+tb.Device+` (notifly_device_id, notifly_user_id, device_token, platform) VALUES ('s1', 's1', 'tok-s1', 'ios')`)
	t.Run("next_day", func(t *testing.T) {
		got := runDeliveryJobAt(t, tb.Project, "push_notification", "2026-11-24T09:00:30+09:00", `"audience":{"type":"all"},"message":{"title":"default"},
"delivery":{"local_time":{"time":"09:00","time_zone":"tz","if_passed":"next_day"}}}`)
		checkDeliveryRun(t, got, "candidates=1 published=1 deferred=0", nil, "tok-s1 2026-11-25T00:00:00Z - default nil")
	})
	t.Run("skip", func(t *testing.T) {
		got := runDeliveryJobAt(t, tb.Project, "push_notification", "2026-11-24T00:00:30Z", `"audience":{"type":"all"},"message":{"title":"default"},
"delivery":{"local_time":{"time":"09:00","time_zone":"tz","if_passed":"skip"}}}`)
		checkDeliveryRun(t, got, "candidates=1 published=0 deferred=0 local_time_passed=1", nil)
	})
}

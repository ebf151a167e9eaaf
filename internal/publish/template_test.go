package publish

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
)

// dDay is the D-day template: the day before the reference date in Seoul
// (2026-11-23 for testRef's jobs).
const dDay = `{"template":"{{ \"now\" | date_add: \"-1 day\" | date: \"%Y-%m-%d\", \"Asia/Seoul\" }}"}`

// Section 3: an element of an in/not_in array may be a template, rendered
// to a string.
func TestTemplateArrayElements(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("yesterday", nil, "y@x.com", nil, `{"signup":"2026-11-23"}`, 0)
	b.user("today", nil, "t@x.com", nil, `{"signup":"2026-11-24"}`, 0)
	b.user("old", nil, "o@x.com", nil, `{"signup":"2020-01-01"}`, 0)
	b.user("none", nil, "n@x.com", nil, `{}`, 0)
	cases := []struct{ cond, want string }{
		{`{"kind":"user","attribute":"signup","operator":"in","value":[` + dDay + `]}`, "yesterday"},
		{`{"kind":"user","attribute":"signup","operator":"in","value":["2020-01-01",` + dDay + `]}`, "old yesterday"},
		{`{"kind":"user","attribute":"signup","operator":"not_in","value":[` + dDay + `,"2026-11-24"]}`, "none old"},
		{`{"kind":"user","attribute":"signup","operator":"in","value":[{"template":"2026-11-{{ 20 | plus: 4 }}"}]}`, "today"},
	}
	for _, c := range cases {
		got := strings.Join(b.segmentUsers(c.cond), " ")
		if got != sortedWords(c.want) {
			t.Errorf("%s\n got  %q\n want %q", c.cond, got, c.want)
		}
	}
	// A bad element is a rejection at the element's path.
	_, _, err := b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[
{"kind":"user","attribute":"signup","operator":"in","value":["a",{"template":"{% include \"x\" %}"}]}]}]}`))
	if !job.IsRejection(err) || !strings.Contains(err.Error(), `campaign.audience.groups[0].conditions[0].value[1].template: tag "include" is not allowed`) {
		t.Fatalf("bad element: %v", err)
	}
}

// Section 3: in and not_in on the three version attributes compare their
// elements as versions, templates included; a non-version element never
// equals, so it makes in false and not_in true.
func TestVersionInNotIn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	versions := map[string]string{"v392": "3.9.2", "v3100": "3.10.0", "v4": "4", "beta": "beta"}
	for id, v := range versions {
		b.user(id, nil, id+"@x.com", nil, "", 0)
		// The same version in all three columns.
		b.device("d-"+id, id, "t-"+id, "ios", v, v, v, "native")
	}
	// A user without a device is a null device, on which device
	// conditions are false, not_in included.
	b.user("nodev", nil, "nodev@x.com", nil, "", 0)
	b.user("nullv", nil, "nullv@x.com", nil, "", 0)
	b.device("d-nullv", "nullv", "t-nullv", "ios")
	cases := []struct{ op, value, want string }{
		{"in", `["3.10"]`, "v3100"},
		{"in", `["3.9.2.0", "4.0.0"]`, "v392 v4"},
		{"in", `[{"template":"3.{{ 5 | plus: 5 }}"}]`, "v3100"},
		{"in", `[{"template":"{{ \"3.9\" | append: \".2\" }}"}, "x"]`, "v392"},
		{"in", `["beta"]`, ""},
		{"in", `[{"template":"beta"}, 4]`, ""},
		{"not_in", `["3.10"]`, "beta nullv v392 v4"},
		{"not_in", `[{"template":"3.10.0.0"}, "4"]`, "beta nullv v392"},
		{"not_in", `["beta", {"template":"x"}]`, "beta nullv v3100 v392 v4"},
	}
	for _, attr := range []string{"os_version", "app_version", "sdk_version"} {
		for _, c := range cases {
			cond := fmt.Sprintf(`{"kind":"device","attribute":%q,"operator":%q,"value":%s}`, attr, c.op, c.value)
			got := strings.Join(b.segmentUsers(cond), " ")
			if got != sortedWords(c.want) {
				t.Errorf("%s %s %s\n got  %q\n want %q", attr, c.op, c.value, got, c.want)
			}
		}
	}
}

// Section 3: contains wants a string (a template renders to one); any
// other value is a rejection naming the value.
func TestContainsWantsString(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("gold", nil, "g@x.com", nil, `{"tier":"gold-2026-11-23"}`, 0)
	b.user("silver", nil, "s@x.com", nil, `{"tier":"silver"}`, 0)
	b.user("num", nil, "n@x.com", nil, `{"tier":1}`, 0)
	got := b.segmentUsers(`{"kind":"user","attribute":"tier","operator":"contains","value":` + dDay + `}`)
	equalStrings(t, "contains a template", got, []string{"gold"})
	got = b.segmentUsers(`{"kind":"device","attribute":"app_version","operator":"contains","value":"1"}`)
	equalStrings(t, "contains on a version", got, nil)
	for _, value := range []string{`1`, `1.5`, `true`, `false`, `["gold"]`, `[]`, `{"x":"gold"}`, `null`} {
		_, _, err := b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[
{"kind":"user","attribute":"tier","operator":"contains","value":` + value + `}]}]}`))
		if !job.IsRejection(err) || !strings.Contains(err.Error(), "campaign.audience.groups[0].conditions[0].value: ") {
			t.Errorf("contains %s: got %v, want a rejection at the value", value, err)
		}
	}
}

// Issue 13: a template that includes /proc/self/environ is a rejection at
// the template's path, and the rejection does not echo the environment.
func TestTemplateFileReadRejected(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", nil, "u1@x.com", nil, `{"signup":"x"}`, 0)
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		t.Skipf("no /proc/self/environ: %v", err)
	}
	const attack = `{"template":"{% capture f %}{% include \"../../../../../../../../proc/self/environ\" %}{% endcapture %}{{ f | date_add: \"1 day\" }}"}`
	for _, action := range []string{"publish", "calculate-size"} {
		jobText := strings.Replace(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[
{"kind":"user","attribute":"signup","operator":"exists"},
{"kind":"user","attribute":"signup","operator":"contains","value":`+attack+`}]}]}`), `"action":"publish"`, `"action":"`+action+`"`, 1)
		_, sink, err := b.tryRun(jobText)
		if !job.IsRejection(err) || !strings.Contains(err.Error(), `campaign.audience.groups[0].conditions[1].value.template: tag "include" is not allowed`) {
			t.Fatalf("%s: got %v, want a rejection at the template", action, err)
		}
		for _, e := range strings.Split(string(environ), "\x00") {
			if len(e) >= 12 && strings.Contains(err.Error(), e) {
				t.Fatalf("%s: the rejection echoes the environment: %v", action, err)
			}
		}
		if len(sink.msgs) != 0 {
			t.Fatalf("%s: published %d messages", action, len(sink.msgs))
		}
	}
}

package publish

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/job"
)

// An unknown project is the job's fault: a rejection naming project_id,
// not PostgreSQL's "relation does not exist" retried as an outage.
func TestUnknownProject(t *testing.T) {
	t.Parallel()
	b := setup(t)
	text := strings.Replace(b.jobJSON(`"channel":"email","audience":{"type":"all"}`), `"project_id":"`+b.tables.Project+`"`, `"project_id":"nosuchproject_x"`, 1)
	_, sink, err := b.tryRun(text)
	if err == nil || !job.IsRejection(err) || err.Error() != `project_id: no project "nosuchproject_x" in the database` {
		t.Fatalf("got %v (rejection %v)", err, job.IsRejection(err))
	}
	if len(sink.msgs) != 0 {
		t.Fatal("published for an unknown project")
	}
	// A project missing only the table a condition reads.
	b.exec(`DROP TABLE ` + b.tables.EventCounts)
	_, _, err = b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[{"kind":"event","event":"e","operator":">=","value":1}]}]}`))
	if err == nil || !job.IsRejection(err) || !strings.Contains(err.Error(), "has no table event_intermediate_counts_") {
		t.Fatalf("missing event table: %v", err)
	}
	// The other tables still serve a job that does not need it.
	b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"}`))
}

// Throttle waves far in the future are exact: 300 waves of 366 days each
// used to overflow time.Duration and run send_at backwards.
func TestThrottleFarWaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(`INSERT INTO ` + b.tables.User + ` (notifly_user_id, email, random_bucket_number)
SELECT 'u' || lpad(i::text, 4, '0'), 'u' || i || '@x.com', 0 FROM generate_series(1, 300) i`)
	_, sink := b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"},"throttle":{"max_per_interval":1,"interval_minutes":527040}`))
	if len(sink.msgs) != 300 {
		t.Fatalf("%d messages", len(sink.msgs))
	}
	ref := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	for k, m := range sink.msgs {
		want := ref.AddDate(0, 0, 366*k).Format(time.RFC3339)
		if m["send_at"] != want {
			t.Fatalf("message %d: send_at %v, want %s", k, m["send_at"], want)
		}
	}
}

// A run whose throttle waves would be sent after year 9999 is rejected
// before anything is published, whatever the audience: counted by the
// listed ids, the CSV rows, or the audience query.
func TestThrottlePastYear9999(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 20 {
		id := fmt.Sprintf("u%02d", i)
		b.user(id, "ext-"+id, id+"@x.com", nil, "", 0)
		b.device("d"+id, id, "tok-"+id, "ios")
	}
	throttle := `"throttle":{"max_per_interval":1,"interval_minutes":527040}`
	ids := `["ext-u00","ext-u01","ext-u02","ext-u03","ext-u04","ext-u05","ext-u06","ext-u07","ext-u08","ext-u09","ext-u10","ext-u11"]`
	rows := "email\n" + strings.Repeat("a@x.com\n", 12)
	cases := map[string]string{
		"segment":      `"channel":"email","audience":{"type":"all"},` + throttle,
		"push segment": `"channel":"push_notification","audience":{"type":"all"},` + throttle,
		"push ids":     `"channel":"push_notification","audience":{"type":"user_ids","user_ids":` + ids + `},` + throttle,
		"csv":          `"channel":"email","audience":{"type":"csv","url":"` + writeCSV(t, rows) + `"},` + throttle,
	}
	for name, fields := range cases {
		// Ten yearly waves fit from 9990: twelve or more messages do not.
		text := strings.Replace(b.jobJSON(fields), `"scheduled_at":"2026-11-24T18:00:00+09:00"`, `"scheduled_at":"9990-01-01T00:00:00Z"`, 1)
		_, sink, err := b.tryRun(text)
		if err == nil || !job.IsRejection(err) || !strings.HasPrefix(err.Error(), "campaign.throttle: ") ||
			!strings.Contains(err.Error(), "would be sent after 9999-12-31T23:59:59Z (at most 10 fit)") {
			t.Errorf("%s: got %v", name, err)
		}
		if len(sink.msgs) != 0 {
			t.Errorf("%s: %d messages published, the last at %v", name, len(sink.msgs), sink.msgs[len(sink.msgs)-1]["send_at"])
		}
	}
	// Devices per CSV row are unknown before the run: the run itself stops
	// at the first message past the limit, before its batch is sent.
	for i := range 6 {
		id := fmt.Sprintf("u%02d", i)
		b.device("d2"+id, id, "tok2-"+id, "android")
	}
	csvRows := "user_id\n" + strings.Join([]string{"ext-u00", "ext-u01", "ext-u02", "ext-u03", "ext-u04", "ext-u05"}, "\n") + "\n"
	text := strings.Replace(b.jobJSON(`"channel":"push_notification","audience":{"type":"csv","url":"`+writeCSV(t, csvRows)+`"},`+throttle),
		`"scheduled_at":"2026-11-24T18:00:00+09:00"`, `"scheduled_at":"9990-01-01T00:00:00Z"`, 1)
	_, sink, err := b.tryRun(text)
	if err == nil || !job.IsRejection(err) || !strings.Contains(err.Error(), "11 messages at 1 every 527040 minutes") {
		t.Errorf("csv push: got %v", err)
	}
	for _, m := range sink.msgs {
		if s := m["send_at"].(string); !strings.HasPrefix(s, "99") || len(s) != len("9999-01-08T00:00:00Z") {
			t.Fatalf("csv push: send_at %s", s)
		}
	}
	if len(sink.msgs) > 10 {
		t.Fatalf("csv push: %d messages", len(sink.msgs))
	}
	// A partitioned run is checked when it is planned: its ranges do not
	// count the audience.
	j, err := job.Parse([]byte(strings.Replace(b.jobJSON(cases["segment"]), `"scheduled_at":"2026-11-24T18:00:00+09:00"`, `"scheduled_at":"9990-01-01T00:00:00Z"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.runner.Precheck(t.Context(), j); err == nil || !job.IsRejection(err) || !strings.HasPrefix(err.Error(), "campaign.throttle: 20 messages") {
		t.Errorf("partition plan: %v", err)
	}
	// Ten fit, the last in 9999.
	text = strings.Replace(b.jobJSON(`"channel":"email","audience":{"type":"user_ids","user_ids":`+strings.Replace(ids, `,"ext-u10","ext-u11"`, "", 1)+`},`+throttle),
		`"scheduled_at":"2026-11-24T18:00:00+09:00"`, `"scheduled_at":"9990-01-01T00:00:00Z"`, 1)
	_, sink = b.run(text)
	if len(sink.msgs) != 10 || sink.msgs[9]["send_at"] != "9999-01-08T00:00:00Z" {
		t.Fatalf("%d messages, the last at %v", len(sink.msgs), sink.msgs[len(sink.msgs)-1]["send_at"])
	}
}

// A CSV user_id that PostgreSQL cannot take is a rejection naming the
// line, not a query error retried.
func TestCSVBadUserID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, content := range map[string]string{
		"not UTF-8": "user_id,name\nok,a\nbad\xff,b\n",
		"NUL":       "user_id,name\nok,a\nbad\x00,b\n",
	} {
		_, _, err := b.tryRun(b.jobJSON(`"channel":"push_notification","audience":{"type":"csv","url":"` + writeCSV(t, content) + `"}`))
		if err == nil || !job.IsRejection(err) || !strings.Contains(err.Error(), "line 3: user_id is not valid UTF-8") {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// A job at every limit at once compiles to a query PostgreSQL accepts
// (well under its 65,535 parameters) and runs.
func TestJobAtLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "ext-1", "a@x.com", nil, `{"a0":1}`, 0)
	var groups []string
	n := 0
	for g := 0; g < job.MaxGroups; g++ {
		var conds []string
		for c := 0; c < job.MaxConditions/job.MaxGroups; c++ {
			switch {
			case n < job.MaxJoinedConditions:
				conds = append(conds, fmt.Sprintf(`{"kind":"event","event":"e%d","within_days":7,"operator":"in","value":[1,2,3]}`, n))
			case n%2 == 0:
				conds = append(conds, fmt.Sprintf(`{"kind":"device","attribute":"app_version","operator":"not_in","value":["1.%d","2.%d"]}`, n, n))
			default:
				conds = append(conds, fmt.Sprintf(`{"kind":"user","attribute":"a%d","operator":"<=","value":%d}`, n, n))
			}
			n++
		}
		groups = append(groups, `{"conditions":[`+strings.Join(conds, ",")+`]}`)
	}
	text := b.jobJSON(`"channel":"push_notification","audience":{"type":"segment","groups":[` + strings.Join(groups, ",") + `]}`)
	j, err := job.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := b.runner.AudienceQuery(t.Context(), j)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bind parameters at every limit", len(q.Args))
	if len(q.Args) >= job.MaxQueryParams/4 {
		t.Fatalf("%d parameters at the limits: too close to PostgreSQL's %d", len(q.Args), job.MaxQueryParams)
	}
	j.Action = job.ActionCalculateSize
	if _, err := b.runner.Run(t.Context(), j, nil); err != nil {
		t.Fatal(err)
	}
}

// A long in-list on a version attribute is one parameter (it used to be one
// per element, and PostgreSQL takes at most 65,535); a version part too
// long for PostgreSQL's numeric is a rejection naming the value.
func TestVersionListParams(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "ext-1", "a@x.com", nil, "", 0)
	b.device("d1", "u1", "tok", "ios", "17", "3.10.0")
	versions := make([]string, 70000)
	for i := range versions {
		versions[i] = fmt.Sprintf(`"1.%d"`, i)
	}
	versions[69999] = `"3.10"`
	cond := func(op, value string) string {
		return b.jobJSON(`"channel":"email","audience":{"type":"segment","groups":[{"conditions":[{"kind":"device","attribute":"app_version","operator":"` +
			op + `","value":` + value + `}]}]}`)
	}
	res, _ := b.run(cond("in", "["+strings.Join(versions, ",")+"]"))
	if res.Published != 1 {
		t.Fatalf("in: %+v", res)
	}
	res, _ = b.run(cond("not_in", "["+strings.Join(versions, ",")+"]"))
	if res.Published != 0 || res.Candidates != 0 {
		t.Fatalf("not_in: %+v", res)
	}
	// Leading zeros do not count: 0003.010 = 3.10.
	res, _ = b.run(cond("=", `"0003.010"`))
	if res.Published != 1 {
		t.Fatalf("leading zeros: %+v", res)
	}
	for _, c := range []struct{ op, value, path string }{
		{">", `"1.` + strings.Repeat("9", 1001) + `"`, ".value"},
		{"in", `["1", "2.` + strings.Repeat("9", 1001) + `"]`, ".value[1]"},
	} {
		_, _, err := b.tryRun(cond(c.op, c.value))
		want := "campaign.audience.groups[0].conditions[0]" + c.path + ": a version part has 1001 digits, more than the 1000 allowed"
		if err == nil || !job.IsRejection(err) || err.Error() != want {
			t.Errorf("%s: got %v, want %q", c.op, err, want)
		}
	}
}

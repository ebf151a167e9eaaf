package publish

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Section 7: every field of a channel message, built here from the contract
// rather than from the encoder's output.
func TestMessageFields(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", "ext\"1", " Mixed@Case.com ", "+82 10-1111-2222", `{"name":"Ann \"A\"\n", "$email": "shadowed", "n": 1.50, "nested": {"a": [1, null]}}`, 42)
	b.device("d1", "u1", "tok\t", "android", "14", "3.10.0", "2.1", "flutter")
	_, sink := b.run(b.jobJSON(`"channel":"push_notification","audience":{"type":"all"},"message":{"title":"Hi {{ user[\"name\"] }}","body":"x"}`))
	if len(sink.raw) != 1 {
		t.Fatalf("want 1 message, got %d", len(sink.raw))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(sink.raw[0]), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"idempotency_key": wantKey(b.tables.Project, "cmp1", "r-1", "push_notification", "tok"),
		"request_id":      "r-1",
		"project_id":      b.tables.Project,
		"campaign_id":     "cmp1",
		"channel":         "push_notification",
		"variant_id":      nil,
		"send_at":         "2026-11-24T09:00:00Z",
		"recipient": map[string]any{
			"notifly_user_id":  "u1",
			"external_user_id": `ext"1`,
			"device": map[string]any{
				"notifly_device_id": "d1", "device_token": "tok", "platform": "android",
				"os_version": "14", "app_version": "3.10.0", "sdk_version": "2.1", "sdk_type": "flutter",
			},
		},
		"personalization": map[string]any{
			"user": map[string]any{
				"name": "Ann \"A\"\n", "n": 1.5, "nested": map[string]any{"a": []any{1.0, nil}},
				"$email": " Mixed@Case.com ", "$phone_number": "+82 10-1111-2222", "external_user_id": `ext"1`,
			},
			"device": map[string]any{
				"notifly_device_id": "d1", "notifly_user_id": "u1", "external_device_id": "ext-d1", "device_token": "tok\t",
				"platform": "android", "os_version": "14", "app_version": "3.10.0", "sdk_version": "2.1", "sdk_type": "flutter",
				"updated_at": "2026-01-02T03:04:05.123456Z",
			},
			"csv": nil,
		},
		"message": map[string]any{"title": `Hi {{ user["name"] }}`, "body": "x"},
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("message:\n got  %s\n want %s", gj, wj)
	}
	// Keys come in the contract's order.
	order := []string{"idempotency_key", "request_id", "project_id", "campaign_id", "channel", "variant_id", "send_at", "recipient", "personalization", "message"}
	last := -1
	for _, k := range order {
		i := strings.Index(sink.raw[0], `"`+k+`":`)
		if i <= last {
			t.Fatalf("key %s out of order", k)
		}
		last = i
	}
	if strings.Count(sink.raw[0], `"$email"`) != 1 {
		t.Fatal("personalization.user repeats $email")
	}

	_, sink = b.run(b.jobJSON(`"channel":"email","audience":{"type":"all"}`))
	r := sink.msgs[0]["recipient"].(map[string]any)
	if r["email"] != "Mixed@Case.com" || r["device"] != nil || r["phone_number"] != nil || len(r) != 3 {
		t.Fatalf("email recipient: %v", r)
	}
	_, sink = b.run(b.jobJSON(`"channel":"kakao_alimtalk","audience":{"type":"all"}`))
	r = sink.msgs[0]["recipient"].(map[string]any)
	if r["phone_number"] != "01011112222" || len(r) != 3 {
		t.Fatalf("kakao recipient: %v", r)
	}
}

// calculate-size counts exactly what publish publishes, and publishes
// nothing.
func TestSizeMatchesPublish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", nil, "a@x.com", nil, "", 0)
	b.user("u2", nil, "A@x.com", nil, "", 0)
	b.user("u3", nil, "bad", nil, "", 0)
	b.user("u4", nil, nil, nil, "", 0)
	text := b.jobJSON(`"channel":"email","audience":{"type":"all"}`)
	pub, _ := b.run(text)
	size, sink := b.run(strings.Replace(text, `"action":"publish"`, `"action":"calculate-size"`, 1))
	if len(sink.msgs) != 0 || sink.batches != 0 {
		t.Fatal("calculate-size published")
	}
	if size.Action != "calculate-size" || size.Candidates != pub.Candidates || size.Published != pub.Published || size.Skipped != pub.Skipped {
		t.Fatalf("size %+v != publish %+v", size, pub)
	}
}

func writeCSV(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audience.csv")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + path
}

// Section 3: CSV audiences: header rules, trimming, file order, recipients
// from the file.
func TestCSVAudience(t *testing.T) {
	t.Parallel()
	b := setup(t)
	url := writeCSV(t, "\ufeffemail , name,user_id\n z@x.com ,Zed, z1\nA@x.com,Ann,\na@x.com ,dup,\n,blank,\nnot-an-email,bad,\n")
	res, sink := b.run(b.jobJSON(`"channel":"email","audience":{"type":"csv","url":"` + url + `"}`))
	equalStrings(t, "file order", destinations(sink), []string{"z@x.com", "A@x.com"})
	if res.Candidates != 5 || res.Skipped != (Skipped{DuplicateDestination: 1, NoContact: 1, InvalidContact: 1}) {
		t.Fatalf("counts %+v", res)
	}
	m := sink.msgs[0]
	r := m["recipient"].(map[string]any)
	if r["notifly_user_id"] != nil || r["external_user_id"] != "z1" {
		t.Fatalf("csv recipient %v", r)
	}
	p := m["personalization"].(map[string]any)
	if !reflect.DeepEqual(p["csv"], map[string]any{"email": "z@x.com", "name": "Zed", "user_id": "z1"}) || p["user"] != nil {
		t.Fatalf("csv personalization %v", p)
	}

	// Push: user_id rows must exist; devices of the row's user.
	b.user("u1", "x1", nil, nil, `{"tier":"t"}`, 0)
	b.device("d2", "u1", "tok2", "ios")
	b.device("d1", "u1", "tok1", "android")
	b.user("u2", "x2", nil, nil, "", 0)
	url = writeCSV(t, "user_id,coupon\nx2,A\nmissing,B\nx1,C\n,D\nx1,E\n")
	res, sink = b.run(b.jobJSON(`"channel":"push_notification","audience":{"type":"csv","url":"` + url + `"}`))
	equalStrings(t, "push csv", destinations(sink), []string{"tok1", "tok2"})
	if res.Candidates != 7 || res.Skipped != (Skipped{UnknownUser: 2, NoContact: 1, DuplicateDestination: 2}) {
		t.Fatalf("push csv counts %+v", res)
	}
	p = sink.msgs[0]["personalization"].(map[string]any)
	if p["csv"].(map[string]any)["coupon"] != "C" || p["user"].(map[string]any)["tier"] != "t" {
		t.Fatalf("push csv personalization %v", p)
	}
}

// Bad CSV files reject the job before anything is published.
func TestCSVRejections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	long := "email\n" + strings.Repeat("a@x.com\n", 50) + "b@x.com,extra\n"
	cases := []struct{ channel, content, want string }{
		{"email", long, "line 52: wrong number of fields"},
		{"email", "name\nAnn\n", "needs a email column"},
		{"text_message", "email\nx\n", "needs a phone_number column"},
		{"push_notification", "email\nx\n", "needs a user_id column"},
		{"email", "email,email\n", `names column "email" twice`},
		{"email", "email,\n", "has no name"},
		{"email", "", "empty file"},
		{"email", "email\n\"unterminated\n", "line 2"},
	}
	for _, c := range cases {
		url := writeCSV(t, c.content)
		_, sink, err := b.tryRun(b.jobJSON(`"channel":"` + c.channel + `","audience":{"type":"csv","url":"` + url + `"}`))
		if err == nil || !strings.HasPrefix(err.Error(), "campaign.audience.url: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want rejection containing %q", c.content, err, c.want)
		}
		if len(sink.msgs) != 0 {
			t.Errorf("%q: published %d messages before rejecting", c.content, len(sink.msgs))
		}
	}
	_, _, err := b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"csv","url":"file:///nonexistent/x.csv"}`))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
	_, _, err = b.tryRun(b.jobJSON(`"channel":"email","audience":{"type":"csv","url":"file:///x.csv"},"experiment_id":"e"`))
	if err == nil || !strings.HasPrefix(err.Error(), "campaign.experiment_id: ") {
		t.Fatalf("csv experiment: %v", err)
	}
}

// Values that look like SQL are data: they match what they equal, and the
// tables survive.
func TestHostileValues(t *testing.T) {
	t.Parallel()
	b := setup(t)
	evil := `x'); DROP TABLE ` + b.tables.User + `; --`
	b.user(evil, evil, "e@x.com", nil, `{"k'\"; --": "v'); DROP TABLE y; --"}`, 0)
	b.user("plain", nil, "p@x.com", nil, "", 0)
	got := b.segmentUsers(`{"kind":"user","attribute":"k'\"; --","operator":"=","value":"v'); DROP TABLE y; --"}`)
	equalStrings(t, "evil attribute", got, []string{evil})
	got = b.segmentUsers(`{"kind":"event","event":"'; DELETE FROM x; --","operator":"=","value":0}`)
	equalStrings(t, "evil event", got, []string{"plain", evil})
	got = b.segmentUsers(`{"kind":"delivery","campaign_id":"' OR 1=1 --","received":false}`)
	equalStrings(t, "evil campaign", got, []string{"plain", evil})
	res, _ := b.run(b.jobJSON(`"channel":"email","audience":{"type":"user_ids","user_ids":[` + jsonString(evil) + `]}`))
	if res.Published != 1 {
		t.Fatalf("evil id: %+v", res)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

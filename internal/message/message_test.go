package message

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/segpub/segpub/internal/job"
)

// U+FFFE and U+FFFF, valid in PostgreSQL text and jsonb, leave the encoder
// only as JSON escapes (SQS refuses them raw), anywhere in the message, and
// decode to the same characters.
func TestNoncharactersEscaped(t *testing.T) {
	t.Parallel()
	j, err := job.Parse([]byte(`{"version":1,"action":"publish","request_id":"r","project_id":"p1",
"campaign":{"id":"c","channel":"email","audience":{"type":"all"},"message":{"subject":"s\uffff","body":"b￿￾"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEncoder(j)
	r := &Recipient{HasUser: true, UserID: []byte("u1"), Email: []byte("a\uffff@x.com"),
		Properties: []byte(`{"name": "x\ufffey\uffffz", "ok": "\uffbd"}`), CSV: AppendCSVRow(nil, []string{"k\ufffe"}, []string{"v\uffff"})}
	out := e.Append([]byte("prefix:"), sha256.Sum256([]byte("k")), "", []byte("2026-01-01T00:00:00Z"), r, []byte("a\ufffe@x.com"))
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte("k"))); string(KeyIn(out[len("prefix:"):])) != want {
		t.Fatalf("KeyIn: %s, want %s", KeyIn(out[len("prefix:"):]), want)
	}
	if !bytes.HasPrefix(out, []byte("prefix:")) {
		t.Fatalf("prefix lost: %q", out)
	}
	msg := out[len("prefix:"):]
	if bytes.Contains(msg, []byte("\uffff")) || bytes.Contains(msg, []byte("\ufffe")) {
		t.Fatalf("raw noncharacter in %s", msg)
	}
	var m struct {
		Recipient struct {
			Email string `json:"email"`
		} `json:"recipient"`
		Personalization struct {
			User map[string]any    `json:"user"`
			CSV  map[string]string `json:"csv"`
		} `json:"personalization"`
		Message map[string]string `json:"message"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, msg)
	}
	if m.Recipient.Email != "a\ufffe@x.com" || m.Personalization.User["name"] != "x\ufffey\uffffz" ||
		m.Personalization.User["$email"] != "a\uffff@x.com" || m.Personalization.User["ok"] != "\uffbd" {
		t.Fatalf("decoded %+v", m)
	}
	if m.Message["subject"] != "s\uffff" || m.Message["body"] != "b\uffff\ufffe" || m.Personalization.CSV["k\ufffe"] != "v\uffff" {
		t.Fatalf("decoded message %q, csv %q", m.Message, m.Personalization.CSV)
	}
}

// appendBytes writes any bytes as a JSON string that decodes to them, each
// invalid byte as U+FFFD, with no raw control character, U+2028/U+2029 or
// noncharacter U+FFFE/U+FFFF: checked on random strings rich in the bytes
// that need escaping, at every alignment of the word-at-a-time scan.
func TestAppendBytesRandom(t *testing.T) {
	t.Parallel()
	alphabet := [][]byte{[]byte("a"), []byte("Z09"), []byte(`"`), []byte(`\`), {0x00}, {0x1f}, {0x7f}, []byte("\n"),
		[]byte("김"), []byte("\u2028"), []byte("\ufffe"), []byte("\uffff"), {0xff}, {0xe2, 0x80}, []byte("abcdefgh12345678")}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 20000 {
		var b []byte
		tokens := 12
		if n%10 == 0 {
			tokens = 300 // long enough to regrow the output mid-string
		}
		for range rng.IntN(tokens) {
			b = append(b, alphabet[rng.IntN(len(alphabet))]...)
		}
		// After a prefix, in a buffer with little room to spare.
		prefix := make([]byte, n%5, n%5+n%3)
		out := appendBytes(prefix, b)
		if !bytes.Equal(out[:len(prefix)], make([]byte, len(prefix))) {
			t.Fatalf("case %d: prefix changed: %q", n, out[:len(prefix)])
		}
		out = out[len(prefix):]
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("case %d %q: not a JSON string: %v: %q", n, b, err, out)
		}
		var want []rune
		for i := 0; i < len(b); {
			r, size := utf8.DecodeRune(b[i:])
			want = append(want, r) // utf8.RuneError for an invalid byte
			i += size
		}
		if got != string(want) {
			t.Fatalf("case %d %q: decodes to %q, want %q", n, b, got, string(want))
		}
		for _, bad := range []string{"\u2028", "\u2029", "\ufffe", "\uffff"} {
			if bytes.Contains(out, []byte(bad)) {
				t.Fatalf("case %d %q: raw %q in %q", n, b, bad, out)
			}
		}
		for _, c := range out {
			if c < 0x20 {
				t.Fatalf("case %d %q: raw control byte in %q", n, b, out)
			}
		}
	}
}

// BenchmarkAppend encodes a push message with the seed's kind of data.
func BenchmarkAppend(b *testing.B) {
	j, err := job.Parse([]byte(`{"version":1,"action":"publish","request_id":"bench-push-all","project_id":"bench1m",
"campaign":{"id":"bench_push","channel":"push_notification","audience":{"type":"all"},"message":{"title":"Hello","body":"A benchmark message."}}}`))
	if err != nil {
		b.Fatal(err)
	}
	e := NewEncoder(j)
	r := &Recipient{HasUser: true, UserID: []byte("0000079a23cad6809c169caf41f79518"), ExternalUserID: []byte("ext-413754"),
		Email: []byte("user413754@example.com"), Phone: []byte("+82 10-1041-3754"),
		Properties: []byte(`{"age": 24, "vip": false, "name": "Kim Minsu 413754", "tier": "gold", "signup_date": "2025-02-10", "favorite color": "green"}`),
		HasDevice:  true, DeviceID: []byte("acf63fd175af2d87342d0820ab56eec9"), ExternalDeviceID: []byte("xd-413754-0"),
		Token: []byte("3faf5e93998b3373817dce1ff236bfab0c87f2f03f3329c9a650f19e1bac372d"), Platform: []byte("android"),
		OSVersion: []byte("17.1"), AppVersion: []byte("3.10"), SDKVersion: []byte("2.1.0"), SDKType: []byte("native")}
	key := sha256.Sum256([]byte("k"))
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = e.Append(buf[:0], key, "", []byte("2026-12-02T00:27:42Z"), r, r.Token)
	}
	b.SetBytes(int64(len(buf)))
}

// Properties holding a key personalization.user adds keep one key of that
// name, the column's value; a '$' or a key name inside a value changes
// nothing.
func TestUserKeysOnce(t *testing.T) {
	t.Parallel()
	r := &Recipient{HasUser: true, Email: []byte("col@x.com"), Phone: []byte("0101"), ExternalUserID: []byte("ext-col")}
	for _, tc := range []struct {
		props string
		want  map[string]any
	}{
		{`{"$email": "prop@x.com", "a": 1}`, map[string]any{"a": 1.0}},
		{`{"$phone_number": "9", "a": 1}`, map[string]any{"a": 1.0}},
		{`{"external_user_id": "ext-prop", "a": 1}`, map[string]any{"a": 1.0}},
		{`{"price": "$5", "note": "external_user_id"}`, map[string]any{"price": "$5", "note": "external_user_id"}},
		{`{"a": "\"$email\""}`, map[string]any{"a": `"$email"`}},
		{`{}`, map[string]any{}},
	} {
		r.Properties = []byte(tc.props)
		out := appendUser(nil, r)
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: not JSON: %v: %s", tc.props, err, out)
		}
		for k, v := range map[string]string{"$email": "col@x.com", "$phone_number": "0101", "external_user_id": "ext-col"} {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want the column's %q (%s)", tc.props, k, got[k], v, out)
			}
			delete(got, k)
			if n := bytes.Count(out, []byte(`"`+k+`":`)); n != 1 {
				t.Errorf("%s: key %s %d times: %s", tc.props, k, n, out)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: properties %v, want %v", tc.props, got, tc.want)
		}
	}
}

// A push message carries the user id, the device id and the device's
// details twice (recipient and personalization): both copies decode to
// the row's values, escapes and NULLs included.
func TestDeviceFieldsTwice(t *testing.T) {
	t.Parallel()
	j, err := job.Parse([]byte(`{"version":1,"action":"publish","request_id":"r","project_id":"p1",
"campaign":{"id":"c","channel":"push_notification","audience":{"type":"all"},"message":{"title":"t"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEncoder(j)
	for _, r := range []*Recipient{
		{HasUser: true, HasDevice: true, UserID: []byte("u\"1\\"), DeviceID: []byte("d\n1"), Token: []byte("tok"),
			Platform: []byte("ios"), OSVersion: []byte("17\t1"), AppVersion: []byte("\uffff"), SDKVersion: []byte("é"), SDKType: []byte("x\x01")},
		{HasUser: true, HasDevice: true, UserID: []byte("u2"), DeviceID: []byte("d2"), Token: []byte("tok2")},
	} {
		out := e.Append(nil, sha256.Sum256(r.UserID), "", []byte("2026-01-01T00:00:00Z"), r, r.Token)
		var m struct {
			Recipient struct {
				UserID string         `json:"notifly_user_id"`
				Device map[string]any `json:"device"`
			} `json:"recipient"`
			Personalization struct {
				Device map[string]any `json:"device"`
			} `json:"personalization"`
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("not JSON: %v: %s", err, out)
		}
		want := map[string]any{"notifly_device_id": string(r.DeviceID), "platform": nullable(r.Platform), "os_version": nullable(r.OSVersion),
			"app_version": nullable(r.AppVersion), "sdk_version": nullable(r.SDKVersion), "sdk_type": nullable(r.SDKType)}
		for k, v := range want {
			if m.Recipient.Device[k] != v || m.Personalization.Device[k] != v {
				t.Errorf("%s: recipient %q, personalization %q, want %q: %s", k, m.Recipient.Device[k], m.Personalization.Device[k], v, out)
			}
		}
		if m.Recipient.UserID != string(r.UserID) || m.Personalization.Device["notifly_user_id"] != string(r.UserID) {
			t.Errorf("user id: %q and %q, want %q", m.Recipient.UserID, m.Personalization.Device["notifly_user_id"], r.UserID)
		}
	}
}

func nullable(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// Every channel's message carries its destination in the member the
// channel's table names.
func TestEveryChannelRecipientField(t *testing.T) {
	for _, ch := range job.Channels {
		j := &job.Job{ProjectID: "p", RequestID: "r", Campaign: job.Campaign{ID: "c", Channel: ch, Message: json.RawMessage(`{}`)}}
		e := NewEncoder(j)
		r := &Recipient{UserID: []byte("u"), HasDevice: true, DeviceID: []byte("d"), Token: []byte("tok")}
		msg := e.Append(nil, e.Key([]byte("dest")), "", []byte("2026-01-01T00:00:00Z"), r, []byte("dest"))
		var m struct {
			Recipient map[string]json.RawMessage `json:"recipient"`
		}
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Fatalf("%s: %v: %s", ch, err, msg)
		}
		field := ch.Destination().Field
		if _, ok := m.Recipient[field]; !ok || len(m.Recipient) != 3 {
			t.Errorf("%s: recipient %s, want notifly_user_id, external_user_id and %s", ch, msg, field)
		}
	}
}

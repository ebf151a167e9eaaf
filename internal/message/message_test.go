package message

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/segpub/segpub/internal/job"
)

// U+FFFE and U+FFFF, valid in PostgreSQL text and jsonb, leave the encoder
// only as JSON escapes (SQS refuses them raw), anywhere in the message, and
// decode to the same characters.
func TestNoncharactersEscaped(t *testing.T) {
	t.Parallel()
	j, err := job.Parse([]byte(`{"version":1,"action":"publish","request_id":"r","project_id":"p1",
"campaign":{"id":"c","channel":"email","audience":{"type":"all"},"message":{"subject":"s","body":"b"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEncoder(j)
	r := &Recipient{HasUser: true, UserID: []byte("u1"), Email: []byte("a\uffff@x.com"),
		Properties: []byte(`{"name": "x\ufffey\uffffz", "ok": "\uffbd"}`)}
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
			User map[string]any `json:"user"`
		} `json:"personalization"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, msg)
	}
	if m.Recipient.Email != "a\ufffe@x.com" || m.Personalization.User["name"] != "x\ufffey\uffffz" ||
		m.Personalization.User["$email"] != "a\uffff@x.com" || m.Personalization.User["ok"] != "\uffbd" {
		t.Fatalf("decoded %+v", m)
	}
}

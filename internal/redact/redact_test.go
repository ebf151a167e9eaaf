package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"dial postgres://app:s3cr3t@db:5432/x failed": "dial postgres://app:***@db:5432/x failed",
		"nats://user:pw@host:4222 and https://h/p":    "nats://user:***@host:4222 and https://h/p",
		"no URL here: a:b@c":                          "no URL here: a:b@c",
		`"s3://k:se/cr@et@bucket/x.csv"`:              `"s3://k:***@bucket/x.csv"`,
		"sqs://:onlypass@q":                           "sqs://:***@q",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every string, error and group attribute, and the message, is redacted,
// including attributes bound with With.
func TestHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewJSONHandler(&buf, nil))).With("url", "postgres://u:hunter2@db/x")
	log.Info("open file://u:hunter3@h/x", "err", errors.New("dial nats://a:hunter4@n:4222: refused"),
		slog.Group("job", slog.String("out", "sqs://k:hunter5@q")))
	out := buf.String()
	for _, secret := range []string{"hunter2", "hunter3", "hunter4", "hunter5"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line carries %s: %s", secret, out)
		}
	}
	if strings.Count(out, Mask) != 4 {
		t.Errorf("want 4 masks: %s", out)
	}
}

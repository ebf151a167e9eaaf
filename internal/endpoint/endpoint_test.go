package endpoint

import (
	"context"
	"strings"
	"testing"
)

// Every output of the table is complete and picked by its own URL; an
// unknown URL is refused naming every output.
func TestSinksTable(t *testing.T) {
	examples := map[string]string{
		"file://":                         "file:///tmp/out/{channel}.ndjson",
		"embedded:, nats://…":             "nats://127.0.0.1:4222",
		"an SQS queue URL with {channel}": "https://sqs.ap-northeast-2.amazonaws.com/123456789012/{channel}",
	}
	for _, k := range Sinks {
		if k.Name == "" || k.Match == nil || k.Open == nil {
			t.Errorf("%q: Name, Match and Open are required", k.Name)
			continue
		}
		ex, ok := examples[k.Name]
		if !ok {
			t.Errorf("%q: no example URL in this test", k.Name)
			continue
		}
		for _, first := range Sinks {
			if first.Match(ex) {
				if first.Name != k.Name {
					t.Errorf("%s is taken by %q before %q", ex, first.Name, k.Name)
				}
				break
			}
		}
	}
	_, err := (&Opener{}).Sink(context.Background(), "kafka://broker/{channel}")
	if err == nil || !strings.Contains(err.Error(), `channel URL "kafka://broker/{channel}": want file://, embedded:, nats://… or an SQS queue URL with {channel}`) {
		t.Fatalf("unknown output: %v", err)
	}
}

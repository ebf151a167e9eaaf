package demo

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/ledger"
)

// The summary lists an A/B run's variants by name, not in Go's map syntax.
func TestSummaryVariants(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	runs := map[string]*ledger.Run{"r1": {Status: ledger.Completed, Candidates: 10, Published: 9,
		Result: json.RawMessage(`{"variants":{"var_b":4,"var_a":5}}`)}}
	if err := summary(&out, []string{"r1"}, map[string]campaign{"r1": {name: "email A/B test", channel: "email"}}, runs, 9); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "map[") || !strings.Contains(out.String(), "variants: var_a 5, var_b 4") {
		t.Fatalf("summary:\n%s", out.String())
	}
}

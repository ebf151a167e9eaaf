package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
)

// The demo runs every campaign to completion, and the channel stream holds
// exactly the messages the runs report (Run checks that and fails if not).
func TestDemo(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := Run(context.Background(), Config{Pool: dbtest.IsolatedPool(t), Users: 3000, DataDir: t.TempDir(), Out: &out})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	if n := strings.Count(text, " completed "); n != len(campaigns("")) {
		t.Fatalf("%d completed runs in the summary, want %d:\n%s", n, len(campaigns("")), text)
	}
	for _, want := range []string{"email A/B test", "control", "variants:", "email from a CSV file", "kakao_friendtalk"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
}

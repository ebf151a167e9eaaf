package bench

import (
	"strings"
	"testing"
)

func TestThisMachine(t *testing.T) {
	t.Parallel()
	m := thisMachine()
	if m.CPUs <= 0 || m.OS == "" || !strings.Contains(m.String(), " CPUs") {
		t.Fatalf("%+v: %s", m, m)
	}
	if (Machine{}).String() != "an unrecorded machine" {
		t.Fatal("an empty machine")
	}
}

package job

import (
	"slices"
	"testing"

	"github.com/segpub/segpub/internal/schema"
)

// Every entry of the kinds table is complete, and the table is the
// contract's list of kinds.
func TestKindsTableIsComplete(t *testing.T) {
	if want := []ConditionKind{"user", "device", "event", "delivery"}; !slices.Equal(ConditionKinds, want) {
		t.Fatalf("kinds %v, want the contract's %v", ConditionKinds, want)
	}
	tables, err := schema.For("p")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Kinds() {
		if k.parse == nil || k.Table == nil || k.Describe == nil || len(k.Fields) == 0 {
			t.Errorf("kind %s: parse, Table, Describe and Fields are required", k.Kind)
			continue
		}
		if table := k.Table(tables); table != "" && !slices.Contains(tables.All(), table) {
			t.Errorf("kind %s: table %q is not a project table", k.Kind, table)
		}
		if (k.Index == "") != (k.Joined == nil) {
			// A joined test is a scan of its own table: the one its
			// index serves.
			t.Errorf("kind %s: index %q without a joined key, or the other way", k.Kind, k.Index)
		}
		if got, ok := k.Kind.Info(); !ok || got.Kind != k.Kind || got.PerDevice != k.Kind.PerDevice() {
			t.Errorf("kind %s: Info %+v, %v", k.Kind, got, ok)
		}
		if c, err := parseCondition(mustObject(t, k.Example)); err != nil || c.Kind != k.Kind {
			t.Errorf("kind %s: example %s parses to %+v, %v", k.Kind, k.Example, c, err)
		}
		if d := k.Describe(Condition{Kind: k.Kind, Operator: OpEq}, "1"); d == "" {
			t.Errorf("kind %s: empty description", k.Kind)
		}
	}
	if _, ok := ConditionKind("segment").Info(); ok {
		t.Error("a kind that is not one has an entry")
	}
	if got := kindList(); got != "user, device, event or delivery" {
		t.Errorf("kindList %q", got)
	}
}

func mustObject(t *testing.T, text string) *object {
	t.Helper()
	o, err := toObject([]byte(text), "c")
	if err != nil {
		t.Fatal(err)
	}
	return o
}

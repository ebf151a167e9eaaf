package audience

import (
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

// Every kind of job's table compiles in the audience query and in why's.
func TestEveryKindCompiles(t *testing.T) {
	tables, err := schema.For("p")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range job.ConditionKinds {
		if _, ok := kindSQL[kind]; !ok {
			t.Errorf("kind %s: no SQL (kindSQL)", kind)
			continue
		}
		info, _ := kind.Info()
		sample := info.Example
		j, err := job.Parse([]byte(`{"version":1,"action":"calculate-size","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"push_notification",
"audience":{"type":"segment","groups":[{"conditions":[` + sample + `]}]}}}`))
		if err != nil {
			t.Fatalf("kind %s: %v", kind, err)
		}
		spec := Spec{Tables: tables, Channel: j.Campaign.Channel, Audience: j.Campaign.Audience, Reference: time.Unix(1_800_000_000, 0)}
		q, err := Compile(spec)
		if err != nil {
			t.Fatalf("kind %s: compile: %v", kind, err)
		}
		if table := info.Table(tables); table != "" && !strings.Contains(q.SQL, table) {
			t.Errorf("kind %s: the query does not read %s, the table job's table names:\n%s", kind, table, q.SQL)
		}
		eq, refs, err := ExplainUser(spec, "ext")
		if err != nil || len(refs) != 1 || strings.Count(eq.SQL, "$") < 1 {
			t.Fatalf("kind %s: explain: %v %v", kind, refs, err)
		}
	}
	for kind := range kindSQL {
		if _, ok := kind.Info(); !ok {
			t.Errorf("kindSQL has %s, which job's table has not", kind)
		}
	}
}

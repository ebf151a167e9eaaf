package audience

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

var fuzzSeeds = []string{
	`{"version":1,"action":"publish","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"push_notification","message":{},
"audience":{"type":"segment","groups":[{"conditions":[
{"kind":"user","attribute":"tier","operator":"=","value":"gold'; DROP TABLE x; --"},
{"kind":"device","attribute":"app_version","operator":">=","value":"3.10"},
{"kind":"event","event":"purchase","within_days":30,"operator":">=","value":1}]},
{"conditions":[{"kind":"delivery","campaign_id":"c0","within_days":7,"received":false},
{"kind":"user","attribute":"$email","operator":"in","value":["a",1,true]},
{"kind":"user","attribute":"x\"y","operator":"not_in","value":["a",{"template":"{{ 1 }}"}]}]}]}}}`,
	`{"version":1,"action":"calculate-size","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"email","exclude_previous_recipients":true,
"audience":{"type":"user_ids","user_ids":["a","b'c"],"groups":[{"conditions":[{"kind":"device","attribute":"platform","operator":"contains","value":"i"}]}]}}}`,
	`{"version":1,"action":"calculate-size","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"text_message","audience":{"type":"all"}}}`,
	`{"version":1,"message_id":"m"}`,
	`{"version":1,"action":"calculate-size","request_id":"r","project_id":"p","campaign":{"id":"c","channel":"email","audience":{"type":"segment","groups":[{"conditions":[{"kind":"user","attribute":"n","operator":"<","value":-1.5e3}]}]}}}`,
}

// pathPrefix is a JSON path (name, .name, [index], ["key"]) and ": ", or
// the whole-message "malformed JSON".
var pathPrefix = regexp.MustCompile(`^(([A-Za-z_$][A-Za-z0-9_$]*|\["(\\.|[^"\\])*"\])(\.[A-Za-z_$][A-Za-z0-9_$]*|\[[0-9]+\]|\["(\\.|[^"\\])*"\])*: |malformed JSON)`)

// FuzzCompile: any input is either rejected with an error that names where,
// or compiled into SQL whose text does not depend on the input's values:
// replacing every value, attribute name, event name and id with a fresh
// marker gives the same SQL text, and no marker appears in it.
func FuzzCompile(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	tables, err := schema.For("p")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := job.Parse(data)
		if err != nil {
			if !job.IsRejection(err) || !pathPrefix.MatchString(err.Error()) {
				t.Fatalf("rejection without a path: %v", err)
			}
			return
		}
		if j.Campaign.Audience.Type == job.AudienceCSV {
			return
		}
		spec := Spec{Tables: tables, Channel: j.Campaign.Channel, Audience: j.Campaign.Audience, CampaignID: j.Campaign.ID,
			ExcludePrevious: j.Campaign.ExcludePreviousRecipients, Reference: time.Unix(1_800_000_000, 0), WithProperties: true,
			Render: func(src string) (string, error) { return src, nil }}
		q, err := Compile(spec)
		if err != nil {
			if !job.IsRejection(err) || !pathPrefix.MatchString(err.Error()) {
				t.Fatalf("compile error without a path: %v", err)
			}
			return
		}
		m := &marker{}
		spec.Audience = m.audience(spec.Audience)
		spec.CampaignID = m.next()
		q2, err := Compile(spec)
		if err != nil {
			t.Fatalf("marked job does not compile: %v", err)
		}
		if q.SQL != q2.SQL {
			t.Fatalf("SQL text depends on values:\n%s\n---\n%s", q.SQL, q2.SQL)
		}
		for i := 1; i <= m.n; i++ {
			if strings.Contains(q2.SQL, fmt.Sprintf("MARK%dX", i)) {
				t.Fatalf("value MARK%dX reached the SQL text:\n%s", i, q2.SQL)
			}
		}
	})
}

// marker replaces values by unique markers of the same shape: strings that
// are versions stay versions, others become plain markers.
type marker struct{ n int }

func (m *marker) next() string {
	m.n++
	return fmt.Sprintf("MARK%dX", m.n)
}

func (m *marker) audience(a job.Audience) job.Audience {
	out := a
	if a.UserIDs != nil {
		out.UserIDs = make([]string, len(a.UserIDs))
		for i := range a.UserIDs {
			out.UserIDs[i] = m.next()
		}
	}
	out.Groups = make([]job.Group, len(a.Groups))
	for i, g := range a.Groups {
		out.Groups[i].Conditions = make([]job.Condition, len(g.Conditions))
		for k, c := range g.Conditions {
			if c.Kind == job.KindUser && !strings.HasPrefix(c.Attribute, "$") {
				c.Attribute = m.next()
			}
			if c.Event != "" {
				c.Event = m.next()
			}
			if c.CampaignID != "" {
				c.CampaignID = m.next()
			}
			c.Value = m.value(c.Value)
			out.Groups[i].Conditions[k] = c
		}
	}
	return out
}

func (m *marker) value(v job.Value) job.Value {
	switch v.Type {
	case job.ValueString, job.ValueTemplate:
		if _, ok := versionParts(job.Value{Type: job.ValueString, Str: v.Str}); ok {
			return job.Value{Type: v.Type, Str: fmt.Sprintf("%d.%d", m.n+1, m.n+2)}
		}
		return job.Value{Type: v.Type, Str: m.next()}
	case job.ValueNumber:
		return job.Value{Type: v.Type, Str: fmt.Sprint(m.n + 7)}
	case job.ValueBool:
		return job.Value{Type: v.Type, Bool: !v.Bool}
	case job.ValueArray:
		items := make([]job.Value, len(v.Items))
		for i, it := range v.Items {
			items[i] = m.value(it)
		}
		return job.Value{Type: v.Type, Items: items}
	}
	return v
}

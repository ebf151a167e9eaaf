package audience

import (
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

// Which audiences read ordered inputs and order by the user alone, and
// which keep the full ORDER BY: a wrong answer either sorts the joined
// rows again or streams a user's devices unordered to a reader that does
// not expect it.
func TestOrderedInputsOnlyWhereTheyPay(t *testing.T) {
	t.Parallel()
	tables, err := schema.For("p")
	if err != nil {
		t.Fatal(err)
	}
	user := job.Condition{Kind: job.KindUser, Attribute: "$random_bucket_number", Operator: "<", Value: job.Value{Type: job.ValueNumber, Str: "3000"}}
	event := job.Condition{Kind: job.KindEvent, Event: "purchase", WithinDays: 30, Operator: ">=", Value: job.Value{Type: job.ValueNumber, Str: "1"}}
	device := job.Condition{Kind: job.KindDevice, Attribute: "platform", Operator: "=", Value: job.Value{Type: job.ValueString, Str: "ios"}}
	segment := func(cs ...job.Condition) job.Audience {
		return job.Audience{Type: job.AudienceSegment, Groups: []job.Group{{Conditions: cs}}}
	}
	all := job.Audience{Type: job.AudienceAll}
	for _, tc := range []struct {
		name    string
		spec    Spec
		ordered bool
	}{
		{"push, all", Spec{Channel: job.ChannelPush, Audience: all}, true},
		{"push, user condition", Spec{Channel: job.ChannelPush, Audience: segment(user)}, true},
		{"push, event condition", Spec{Channel: job.ChannelPush, Audience: segment(user, event)}, false},
		{"push, device condition", Spec{Channel: job.ChannelPush, Audience: segment(device)}, false},
		{"push, previous recipients", Spec{Channel: job.ChannelPush, Audience: all, ExcludePrevious: true}, false},
		{"push, frequency cap", Spec{Channel: job.ChannelPush, Audience: all, FrequencyCap: &job.FrequencyCap{MaxMessages: 1, WithinDays: 1}}, false},
		{"push, id list", Spec{Channel: job.ChannelPush, Audience: job.Audience{Type: job.AudienceUserIDs, UserIDs: []string{"a"}}}, false},
		{"push, CSV chunk", Spec{Channel: job.ChannelPush, Audience: all, ExternalIDs: []string{"a"}}, false},
		{"push, the floor's plain inputs", Spec{Channel: job.ChannelPush, Audience: all, PlainInputs: true}, false},
		{"email, all", Spec{Channel: job.ChannelEmail, Audience: all}, false},
	} {
		tc.spec.Tables, tc.spec.WithProperties = tables, true
		q, err := Compile(tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		order := q.SQL[strings.LastIndex(q.SQL, "\nORDER BY"):]
		sortsDevices := strings.Contains(order, "notifly_device_id")
		readsOrdered := strings.Contains(q.SQL, `FROM (SELECT *, user_properties::text AS `+propertiesText)
		if q.UserOrder != tc.ordered || readsOrdered != tc.ordered || (q.Device && sortsDevices == tc.ordered) {
			t.Errorf("%s: UserOrder %v, ordered readings %v, final %q; want ordered inputs %v:\n%s", tc.name, q.UserOrder, readsOrdered, order, tc.ordered, q.SQL)
		}
	}
}

// A key range bounds both ordered readings: PostgreSQL carries the users'
// range to no other table, and a range's reading would sort every device
// of the project. The bounds' values are bind parameters.
func TestOrderedReadingsOfARange(t *testing.T) {
	t.Parallel()
	tables, err := schema.For("p")
	if err != nil {
		t.Fatal(err)
	}
	q, err := Compile(Spec{Tables: tables, Channel: job.ChannelPush, Audience: job.Audience{Type: job.AudienceAll}, From: "4", Before: "5';--"})
	if err != nil {
		t.Fatal(err)
	}
	_, devices, ok := strings.Cut(q.SQL, "LEFT JOIN (SELECT * FROM "+tables.Device)
	if !q.UserOrder || !ok || strings.Contains(q.SQL, "5';--") {
		t.Fatalf("want ordered readings with bound bounds:\n%s", q.SQL)
	}
	devices, _, _ = strings.Cut(devices, "ORDER BY")
	for _, want := range []string{`notifly_user_id COLLATE "C" >= $`, `notifly_user_id COLLATE "C" < $`} {
		if strings.Count(q.SQL, want) != 2 || !strings.Contains(devices, want) {
			t.Errorf("%q not on both readings:\n%s", want, q.SQL)
		}
	}
}

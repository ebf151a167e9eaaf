package audience

import "github.com/segpub/segpub/internal/job"

// kindSQL is the table of the condition kinds' SQL, the other half of
// job's table of kinds (job.KindInfo): how each compiles in the audience
// query and in segpub why's, and how why shows its actual value. A test
// fails on a kind of job.ConditionKinds missing here.
var kindSQL = map[job.ConditionKind]struct {
	// truth compiles the condition on the user u and, for a per-device
	// kind, the device alias; the result is never NULL.
	truth func(b *builder, c job.Condition, alias string) (string, error)
	// value is the condition's actual value as text.
	value func(b *builder, c job.Condition) (string, error)
}{
	job.KindUser: {
		truth: func(b *builder, c job.Condition, _ string) (string, error) { return b.userCond(c) },
		value: func(b *builder, c job.Condition) (string, error) {
			if col, ok := userColumnExprs[c.Attribute]; ok {
				return col + "::text", nil
			}
			if c.Attribute == "$random_bucket_number" {
				return "u.random_bucket_number::text", nil
			}
			return "(u.user_properties -> " + b.arg(c.Attribute) + "::text)::text", nil
		},
	},
	job.KindDevice: {
		truth: func(b *builder, c job.Condition, alias string) (string, error) { return b.deviceCond(c, alias) },
		value: func(_ *builder, c job.Condition) (string, error) { return "d." + c.Attribute, nil },
	},
	job.KindEvent: {
		truth: func(b *builder, c job.Condition, _ string) (string, error) { return b.eventCond(c) },
		value: func(b *builder, c job.Condition) (string, error) {
			w := c
			w.Operator, w.Value = job.OpExists, job.Value{}
			// The sum itself: compile the condition's subquery and show it.
			sum, err := b.eventSum(w)
			return sum + "::text", err
		},
	},
	job.KindDelivery: {
		truth: func(b *builder, c job.Condition, _ string) (string, error) { return b.deliveryCond(c), nil },
		value: func(b *builder, c job.Condition) (string, error) {
			w := c
			w.Received = true
			return b.deliveryCond(w) + "::text", nil
		},
	},
}

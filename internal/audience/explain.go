package audience

import (
	"fmt"
	"strings"

	"github.com/segpub/segpub/internal/job"
)

// CondRef locates one condition of an ExplainUser query.
type CondRef struct {
	Group, Index int
	Condition    job.Condition
}

// ExplainUser compiles a query for one user, by external_user_id: one row
// per device of the user (one row with NULL device columns when it has
// none), with notifly_user_id, notifly_device_id, platform and then, for
// every condition in order, its actual value as text and its truth on that
// (user, device) pair. The truths use the same compiled expressions as the
// audience query, so they cannot disagree with it.
func ExplainUser(s Spec, externalID string) (*Query, []CondRef, error) {
	b := &builder{spec: s}
	var cols []string
	var refs []CondRef
	for gi, g := range s.Audience.Groups {
		for ci, c := range g.Conditions {
			val, err := b.valueExpr(c)
			if err != nil {
				return nil, nil, err
			}
			var truth string
			switch c.Kind {
			case job.KindUser:
				truth, err = b.userCond(c)
			case job.KindDevice:
				truth, err = b.deviceCond(c, "d")
				// The null device of a user without devices satisfies
				// no device condition.
				truth = "(d.notifly_device_id IS NOT NULL AND " + truth + ")"
			case job.KindEvent:
				truth, err = b.eventCond(c)
			case job.KindDelivery:
				truth = b.deliveryCond(c)
			}
			if err != nil {
				return nil, nil, err
			}
			cols = append(cols, val, truth)
			refs = append(refs, CondRef{Group: gi, Index: ci, Condition: c})
		}
	}
	sql := fmt.Sprintf(`SELECT u.notifly_user_id, d.notifly_device_id, d.platform%s
FROM %s u LEFT JOIN %s d ON d.notifly_user_id = u.notifly_user_id
WHERE u.external_user_id = %s
ORDER BY d.notifly_device_id COLLATE "C"`, prefixComma(cols), s.Tables.User, s.Tables.Device, b.arg(externalID))
	return &Query{SQL: sql, Args: b.args}, refs, nil
}

func prefixComma(cols []string) string {
	if len(cols) == 0 {
		return ""
	}
	return ", " + strings.Join(cols, ", ")
}

// valueExpr is a condition's actual value as text, for display.
func (b *builder) valueExpr(c job.Condition) (string, error) {
	switch c.Kind {
	case job.KindUser:
		if col, ok := userColumnExprs[c.Attribute]; ok {
			return col + "::text", nil
		}
		if c.Attribute == "$random_bucket_number" {
			return "u.random_bucket_number::text", nil
		}
		return "(u.user_properties -> " + b.arg(c.Attribute) + "::text)::text", nil
	case job.KindDevice:
		return "d." + c.Attribute, nil
	case job.KindEvent:
		w := c
		w.Operator, w.Value = job.OpExists, job.Value{}
		// The sum itself: compile the condition's subquery and show it.
		sum, err := b.eventSum(w)
		return sum + "::text", err
	case job.KindDelivery:
		w := c
		w.Received = true
		return b.deliveryCond(w) + "::text", nil
	}
	return "NULL", nil
}

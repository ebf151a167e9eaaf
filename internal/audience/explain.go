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
			k, ok := kindSQL[c.Kind]
			if !ok {
				return nil, nil, job.Rejectf(c.Path+".kind", "unknown condition kind %q", c.Kind)
			}
			truth, err := k.truth(b, c, "d")
			if c.Kind.PerDevice() {
				// The null device of a user without devices satisfies
				// no per-device condition.
				truth = "(d.notifly_device_id IS NOT NULL AND " + truth + ")"
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
	if k, ok := kindSQL[c.Kind]; ok {
		return k.value(b, c)
	}
	return "NULL", nil
}

package job

import "slices"

// The names a job may use, one table each. The parser accepts exactly
// these, and docs/job.schema.json enumerates the same (a test compares
// them), so an editor's schema cannot drift from the binary.
var (
	// Actions are the values of action.
	Actions = []Action{ActionPublish, ActionCalculateSize}
	// AudienceTypes are the values of campaign.audience.type.
	AudienceTypes = []AudienceType{AudienceAll, AudienceSegment, AudienceUserIDs, AudienceCSV}
	// ConditionKinds are the values of a condition's kind: the kinds
	// table (conditions.go).
	ConditionKinds = func() []ConditionKind {
		out := make([]ConditionKind, len(kinds))
		for i, k := range kinds {
			out[i] = k.Kind
		}
		return out
	}()
	// Operators are the values of a condition's operator.
	Operators = []Operator{OpEq, OpNe, OpGt, OpGe, OpLt, OpLe, OpIn, OpNotIn, OpExists, OpNotExists, OpContains}
)

func knownOperator(o Operator) bool { return slices.Contains(Operators, o) }

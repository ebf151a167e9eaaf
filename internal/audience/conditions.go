package audience

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segpub/segpub/internal/job"
)

// operand is what a condition compares: a JSON property, a column, a
// version column or an event sum. access returns an SQL expression of the
// given value type and a guard that must hold before the expression may be
// evaluated; ok=false when the operand never has that type (a type mismatch,
// which makes the condition false, or true for the negative operators).
type operand interface {
	access(t job.ValueType) (expr, guard string, ok bool)
	exists() string
}

// jsonProp is a key of user_properties. The guard checks the stored JSON
// type first, so a cast never fails on bad data.
type jsonProp struct{ key string }

func (p jsonProp) val() string { return "(u.user_properties -> " + p.key + ")" }

func (p jsonProp) access(t job.ValueType) (string, string, bool) {
	switch t {
	case job.ValueString:
		return "(u.user_properties ->> " + p.key + ")", "jsonb_typeof" + p.val() + " = 'string'", true
	case job.ValueNumber:
		return p.val() + "::numeric", "jsonb_typeof" + p.val() + " = 'number'", true
	case job.ValueBool:
		return p.val() + "::boolean", "jsonb_typeof" + p.val() + " = 'boolean'", true
	}
	return "", "", false
}

// A JSON null counts as missing.
func (p jsonProp) exists() string {
	return "coalesce(jsonb_typeof" + p.val() + " <> 'null', false)"
}

// textCol is a text column; NULL is missing.
type textCol struct{ col string }

func (c textCol) access(t job.ValueType) (string, string, bool) {
	return c.col, "", t == job.ValueString
}
func (c textCol) exists() string { return "(" + c.col + " IS NOT NULL)" }

// numberExpr is a numeric expression that is never NULL.
type numberExpr struct{ expr string }

func (n numberExpr) access(t job.ValueType) (string, string, bool) {
	return n.expr, "", t == job.ValueNumber
}
func (n numberExpr) exists() string { return "true" }

var sqlOps = map[job.Operator]string{
	job.OpEq: "=", job.OpNe: "<>", job.OpGt: ">", job.OpGe: ">=", job.OpLt: "<", job.OpLe: "<=",
}

// constant is the value of a condition whose operand can never match: false,
// or true for the negative operators.
func constant(op job.Operator) string {
	if op.Negative() {
		return "true"
	}
	return "false"
}

func (b *builder) param(v job.Value) string {
	switch v.Type {
	case job.ValueNumber:
		return "(" + b.arg(v.Str) + "::text)::numeric"
	case job.ValueBool:
		return b.arg(v.Bool) + "::boolean"
	}
	return b.arg(v.Str) + "::text"
}

// resolve renders a template value into a string value.
func (b *builder) resolve(v job.Value, path string) (job.Value, error) {
	switch v.Type {
	case job.ValueTemplate:
		if b.spec.Render == nil {
			return v, job.Rejectf(path, "templates are not available here")
		}
		// Every render error is the template's own doing (the sandbox
		// reads nothing), so it is a rejection, at the template's path.
		out, err := b.spec.Render(v.Str)
		if err != nil {
			return v, job.Rejectf(path+".template", "%v", err)
		}
		return job.Value{Type: job.ValueString, Str: out}, nil
	case job.ValueArray:
		items := make([]job.Value, len(v.Items))
		for i, it := range v.Items {
			r, err := b.resolve(it, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return v, err
			}
			items[i] = r
		}
		return job.Value{Type: job.ValueArray, Items: items}, nil
	}
	return v, nil
}

// compare compiles a typed comparison. The result is never NULL.
func (b *builder) compare(o operand, c job.Condition) (string, error) {
	v, err := b.resolve(c.Value, c.Path+".value")
	if err != nil {
		return "", err
	}
	neg := constant(c.Operator)
	switch c.Operator {
	case job.OpExists:
		return o.exists(), nil
	case job.OpNotExists:
		return "NOT " + o.exists(), nil
	case job.OpIn, job.OpNotIn:
		in := b.inList(o, v.Items)
		if c.Operator == job.OpNotIn {
			return "NOT " + in, nil
		}
		return in, nil
	case job.OpContains:
		expr, guard, ok := o.access(job.ValueString)
		if !ok || v.Type != job.ValueString {
			return neg, nil
		}
		return guarded(guard, "strpos("+expr+", "+b.param(v)+") > 0", neg), nil
	}
	expr, guard, ok := o.access(v.Type)
	if !ok {
		return neg, nil
	}
	if v.Type == job.ValueString {
		expr += ` COLLATE "C"`
	}
	return guarded(guard, expr+" "+sqlOps[c.Operator]+" "+b.param(v), neg), nil
}

// inList is true when the operand equals one of the items of its own type.
func (b *builder) inList(o operand, items []job.Value) string {
	byType := map[job.ValueType][]job.Value{}
	for _, it := range items {
		byType[it.Type] = append(byType[it.Type], it)
	}
	var ors []string
	for _, t := range []job.ValueType{job.ValueString, job.ValueNumber, job.ValueBool} {
		list := byType[t]
		if len(list) == 0 {
			continue
		}
		expr, guard, ok := o.access(t)
		if !ok {
			continue
		}
		var arr string
		switch t {
		case job.ValueString:
			s := make([]string, len(list))
			for i, it := range list {
				s[i] = it.Str
			}
			arr = b.arg(s) + "::text[]"
		case job.ValueNumber:
			s := make([]string, len(list))
			for i, it := range list {
				s[i] = it.Str
			}
			arr = b.arg(s) + "::text[]::numeric[]"
		case job.ValueBool:
			s := make([]bool, len(list))
			for i, it := range list {
				s[i] = it.Bool
			}
			arr = b.arg(s) + "::boolean[]"
		}
		ors = append(ors, guarded(guard, expr+" = ANY("+arr+")", "false"))
	}
	if len(ors) == 0 {
		return "false"
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

// guarded evaluates cmp only where guard holds, and turns NULL (missing or
// mismatched) into ifNull.
func guarded(guard, cmp, ifNull string) string {
	if guard == "" {
		return "coalesce(" + cmp + ", " + ifNull + ")"
	}
	return "coalesce(CASE WHEN " + guard + " THEN " + cmp + " END, " + ifNull + ")"
}

var userColumnExprs = map[string]string{
	"$email":            "u.email",
	"$phone_number":     "u.phone_number",
	"$external_user_id": "u.external_user_id",
}

func (b *builder) userCond(c job.Condition) (string, error) {
	if col, ok := userColumnExprs[c.Attribute]; ok {
		return b.compare(textCol{col}, c)
	}
	if c.Attribute == "$random_bucket_number" {
		return b.compare(numberExpr{"u.random_bucket_number"}, c)
	}
	return b.compare(jsonProp{b.arg(c.Attribute) + "::text"}, c)
}

func (b *builder) deviceCond(c job.Condition, alias string) (string, error) {
	col := alias + "." + c.Attribute // attribute is one of job.DeviceAttributes
	switch c.Attribute {
	case "os_version", "app_version", "sdk_version":
		return b.versionCond(col, c)
	}
	return b.compare(textCol{col}, c)
}

// versionPattern is the shape of a comparable version: dot-separated digits.
const versionPattern = `'^[0-9]+(\.[0-9]+)*$'`

// versionCond compares versions part by part, numerically, missing parts
// being 0. Both sides are normalized to numeric arrays without trailing zero
// parts, so PostgreSQL's array ordering is version ordering.
func (b *builder) versionCond(col string, c job.Condition) (string, error) {
	switch c.Operator {
	case job.OpContains, job.OpExists, job.OpNotExists:
		return b.compare(textCol{col}, c)
	}
	v, err := b.resolve(c.Value, c.Path+".value")
	if err != nil {
		return "", err
	}
	norm := "string_to_array(regexp_replace(" + col + `, '(\.0+)+$', ''), '.')::numeric[]`
	guard := col + " ~ " + versionPattern
	switch c.Operator {
	case job.OpIn, job.OpNotIn:
		// One parameter for the whole list, however long: a parameter per
		// element would pass PostgreSQL's 65,535.
		var versions []string
		for i, it := range v.Items {
			parts, ok := versionParts(it)
			if !ok {
				continue
			}
			if err := checkVersionParts(parts, fmt.Sprintf("%s.value[%d]", c.Path, i)); err != nil {
				return "", err
			}
			versions = append(versions, strings.Join(parts, "."))
		}
		in := "false"
		if len(versions) > 0 {
			in = guarded(guard, "("+norm+" IN (SELECT string_to_array(v, '.')::numeric[] FROM unnest("+b.arg(versions)+"::text[]) v))", "false")
		}
		if c.Operator == job.OpNotIn {
			return "NOT " + in, nil
		}
		return in, nil
	}
	parts, ok := versionParts(v)
	if !ok {
		return constant(c.Operator), nil
	}
	if err := checkVersionParts(parts, c.Path+".value"); err != nil {
		return "", err
	}
	return guarded(guard, norm+" "+sqlOps[c.Operator]+" "+b.arg(parts)+"::text[]::numeric[]", constant(c.Operator)), nil
}

// versionParts splits a version value into its numeric parts without
// trailing zeros; ok=false when the value is not dot-separated digits.
func versionParts(v job.Value) ([]string, bool) {
	if v.Type != job.ValueString || v.Str == "" {
		return nil, false
	}
	parts := strings.Split(v.Str, ".")
	for _, p := range parts {
		if p == "" {
			return nil, false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return nil, false
			}
		}
	}
	for len(parts) > 1 && strings.Trim(parts[len(parts)-1], "0") == "" {
		parts = parts[:len(parts)-1]
	}
	// Leading zeros do not change a part's value; without them its length
	// is its magnitude.
	for i, p := range parts {
		if t := strings.TrimLeft(p, "0"); t != p {
			parts[i] = cmp.Or(t, "0")
		}
	}
	return parts, true
}

// MaxVersionDigits bounds a version part of a condition value, far below
// what PostgreSQL's numeric holds (131,072 digits).
const MaxVersionDigits = 1000

func checkVersionParts(parts []string, path string) error {
	for _, p := range parts {
		if len(p) > MaxVersionDigits {
			return job.Rejectf(path, "a version part has %d digits, more than the %d allowed", len(p), MaxVersionDigits)
		}
	}
	return nil
}

// eventCond compares the sum of an event's counts over the window; a user
// without rows has the sum 0.
func (b *builder) eventCond(c job.Condition) (string, error) {
	sum, err := b.eventSum(c)
	if err != nil {
		return "", err
	}
	return b.compare(numberExpr{sum}, c)
}

// eventSum is the sum of an event's counts over the condition's window.
func (b *builder) eventSum(c job.Condition) (string, error) {
	var from, to string
	if c.WithinDays > 0 {
		zone := b.spec.Zone
		if zone == nil {
			var err error
			if zone, err = LoadZone(DefaultZone); err != nil {
				return "", err
			}
		}
		ref := b.spec.Reference.In(zone)
		end := time.Date(ref.Year(), ref.Month(), ref.Day(), 0, 0, 0, 0, time.UTC)
		from, to = end.AddDate(0, 0, -(c.WithinDays-1)).Format(time.DateOnly), end.Format(time.DateOnly)
	}
	window := func() string {
		if from == "" {
			return ""
		}
		return " AND e.dt BETWEEN " + b.arg(from) + "::text::date AND " + b.arg(to) + "::text::date"
	}
	if !b.joinEvents {
		return fmt.Sprintf("(SELECT coalesce(sum(e.count), 0) FROM %s e WHERE e.notifly_user_id = u.notifly_user_id AND e.name = %s::text%s)",
			b.spec.Tables.EventCounts, b.arg(c.Event), window()), nil
	}
	// One join per distinct (event, window), shared by every condition on
	// it; its parameters are bound once.
	alias := b.join(c.Event+"\x00"+from+"\x00"+to, "ev", func() string {
		return fmt.Sprintf("SELECT e.notifly_user_id, sum(e.count) AS c FROM %s e WHERE e.name = %s::text%s GROUP BY e.notifly_user_id",
			b.spec.Tables.EventCounts, b.arg(c.Event), window())
	})
	return "coalesce(" + alias + ".c, 0)", nil
}

// join returns the alias of the derived table registered under key,
// registering it on first use; build binds its parameters and returns its
// SQL, once.
func (b *builder) join(key, prefix string, build func() string) string {
	for _, e := range b.events {
		if e.key == key {
			return e.alias
		}
	}
	alias := prefix + strconv.Itoa(len(b.events))
	b.events = append(b.events, eventJoin{key: key, alias: alias, sql: build()})
	return alias
}

// deliveryCond tests for a delivery_result row of a campaign, within
// within_days×24 hours before the reference time when given.
func (b *builder) deliveryCond(c job.Condition) string {
	var from, to any
	if c.WithinDays > 0 {
		ref := b.spec.Reference.UTC()
		from, to = ref.Add(-time.Duration(c.WithinDays)*24*time.Hour), ref
	}
	if b.joinDeliveries {
		alias := b.deliveryJoin(c.CampaignID, from, to)
		if c.Received {
			return "(" + alias + ".notifly_user_id IS NOT NULL)"
		}
		return "(" + alias + ".notifly_user_id IS NULL)"
	}
	exists := fmt.Sprintf("EXISTS (SELECT 1 FROM %s r WHERE r.campaign_id = %s::text AND r.notifly_user_id = u.notifly_user_id%s)",
		b.spec.Tables.DeliveryResult, b.arg(c.CampaignID), b.deliveryWindow(from, to))
	if c.Received {
		return exists
	}
	return "NOT " + exists
}

// deliveryJoin joins the users who received a campaign (within a window
// when from is set) once per distinct (campaign, window) and returns its
// alias. delivery_result has no key in the contract's schema, so a probe
// per user would scan it once per user; the join reads it once.
func (b *builder) deliveryJoin(campaign string, from, to any) string {
	return b.join(fmt.Sprintf("d\x00%s\x00%v\x00%v", campaign, from, to), "dv", func() string {
		return fmt.Sprintf("SELECT DISTINCT r.notifly_user_id FROM %s r WHERE r.campaign_id = %s::text%s",
			b.spec.Tables.DeliveryResult, b.arg(campaign), b.deliveryWindow(from, to))
	})
}

// deliveryWindow bounds delivery rows (alias r) to [from, to]; empty when
// from is nil.
func (b *builder) deliveryWindow(from, to any) string {
	if from == nil {
		return ""
	}
	return " AND r.created_at >= " + b.arg(from) + "::timestamptz AND r.created_at <= " + b.arg(to) + "::timestamptz"
}

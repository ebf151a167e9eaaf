package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/segpub/segpub/internal/schema"
)

// Envelope is a decoded job queue message: either an inline job or a claim
// check naming the message store item that holds the job.
type Envelope struct {
	Job       *Job
	MessageID string
}

// ParseEnvelope decodes a queue message. A claim check is recognised by its
// message_id field; its job is parsed later with Parse.
func ParseEnvelope(data []byte) (Envelope, error) {
	root, err := decodeRoot(data)
	if err != nil {
		return Envelope{}, err
	}
	if _, ok := root.m["message_id"]; ok {
		if err := root.allow("version", "message_id"); err != nil {
			return Envelope{}, err
		}
		if err := parseVersion(root); err != nil {
			return Envelope{}, err
		}
		id, err := root.str("message_id", true)
		if err != nil {
			return Envelope{}, err
		}
		if len(id) > MaxMessageIDBytes {
			return Envelope{}, Rejectf(root.at("message_id"), "longer than %d bytes", MaxMessageIDBytes)
		}
		return Envelope{MessageID: id}, nil
	}
	j, err := parseJob(root)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{Job: j}, nil
}

// Parse decodes and validates an inline job.
func Parse(data []byte) (*Job, error) {
	root, err := decodeRoot(data)
	if err != nil {
		return nil, err
	}
	return parseJob(root)
}

func decodeRoot(data []byte) (*object, error) {
	if !utf8.Valid(data) {
		return nil, Rejectf("", "malformed JSON: not valid UTF-8")
	}
	if p, why := unstorable(data); p != "" {
		return nil, Rejectf(p, "%s", why)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, Rejectf("", "malformed JSON: %s", jsonErr(err))
	}
	if m == nil {
		return nil, Rejectf("", "malformed JSON: want an object")
	}
	if dec.More() {
		return nil, Rejectf("", "malformed JSON: data after the object")
	}
	var rest json.RawMessage
	if err := dec.Decode(&rest); err == nil {
		return nil, Rejectf("", "malformed JSON: data after the object")
	}
	return &object{path: "", m: m}, nil
}

func jsonErr(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%v (at byte %d)", syn, syn.Offset)
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return "want an object, got " + typeErr.Value
	}
	return err.Error()
}

func parseVersion(o *object) error {
	v, err := o.integer("version", true)
	if err != nil {
		return err
	}
	if v != 1 {
		return Rejectf(o.at("version"), "unsupported version %d (want 1)", v)
	}
	return nil
}

func parseJob(o *object) (*Job, error) {
	if err := o.allow("version", "action", "request_id", "project_id", "scheduled_at", "campaign"); err != nil {
		return nil, err
	}
	if err := parseVersion(o); err != nil {
		return nil, err
	}
	j := &Job{Version: 1}
	action, err := o.str("action", true)
	if err != nil {
		return nil, err
	}
	switch Action(action) {
	case ActionPublish, ActionCalculateSize:
		j.Action = Action(action)
	default:
		return nil, Rejectf(o.at("action"), "unknown action %q (want %q or %q)", action, ActionPublish, ActionCalculateSize)
	}
	if j.RequestID, err = o.str("request_id", true); err != nil {
		return nil, err
	}
	if len(j.RequestID) > 512 {
		return nil, Rejectf(o.at("request_id"), "longer than 512 bytes")
	}
	if j.ProjectID, err = o.str("project_id", true); err != nil {
		return nil, err
	}
	if err := schema.ValidateProjectID(j.ProjectID); err != nil {
		return nil, Rejectf(o.at("project_id"), "%v", err)
	}
	if s, err := o.str("scheduled_at", false); err != nil {
		return nil, err
	} else if s != "" {
		if j.ScheduledAt, err = parseScheduledAt(o.at("scheduled_at"), s); err != nil {
			return nil, err
		}
	}
	c, err := o.obj("campaign", true)
	if err != nil {
		return nil, err
	}
	if j.Campaign, err = parseCampaign(c); err != nil {
		return nil, err
	}
	if j.Action == ActionPublish && j.Campaign.Message == nil {
		return nil, Rejectf(c.at("message"), "required for action %q", ActionPublish)
	}
	if err := checkThrottleFits(c.at("throttle"), j); err != nil {
		return nil, err
	}
	return j, nil
}

func parseCampaign(o *object) (Campaign, error) {
	var c Campaign
	if err := o.allow("id", "channel", "audience", "message", "experiment_id", "variant_messages", "throttle", "exclude_previous_recipients",
		"advertising", "frequency_cap", "delivery"); err != nil {
		return c, err
	}
	var err error
	if c.ID, err = o.str("id", true); err != nil {
		return c, err
	}
	ch, err := o.str("channel", true)
	if err != nil {
		return c, err
	}
	c.Channel = Channel(ch)
	if !c.Channel.Known() {
		names := make([]string, len(Channels))
		for i, k := range Channels {
			names[i] = string(k)
		}
		return c, Rejectf(o.at("channel"), "unknown channel %q (want one of %s)", ch, strings.Join(names, ", "))
	}
	a, err := o.obj("audience", true)
	if err != nil {
		return c, err
	}
	if c.Audience, err = parseAudience(a); err != nil {
		return c, err
	}
	if raw, ok := o.m["message"]; ok && !isNull(raw) {
		if c.Message, err = compactObject(raw, o.at("message")); err != nil {
			return c, err
		}
	}
	if c.ExperimentID, err = o.str("experiment_id", false); err != nil {
		return c, err
	}
	if vm, err := o.obj("variant_messages", false); err != nil {
		return c, err
	} else if vm != nil {
		if c.ExperimentID == "" {
			return c, Rejectf(vm.path, "needs campaign.experiment_id")
		}
		c.VariantMessages = make(map[string]json.RawMessage, len(vm.m))
		for _, k := range vm.keys() {
			msg, err := compactObject(vm.m[k], vm.at(k))
			if err != nil {
				return c, err
			}
			c.VariantMessages[k] = msg
		}
	}
	if c.ExperimentID != "" && c.Audience.Type == AudienceCSV {
		return c, Rejectf(o.at("experiment_id"), "experiments need user buckets; a csv audience has none")
	}
	if t, err := o.obj("throttle", false); err != nil {
		return c, err
	} else if t != nil {
		if err := t.allow("max_per_interval", "interval_minutes"); err != nil {
			return c, err
		}
		th := &Throttle{}
		if th.MaxPerInterval, err = t.integer("max_per_interval", true); err != nil {
			return c, err
		}
		if th.MaxPerInterval < 1 || th.MaxPerInterval > MaxPerInterval {
			return c, Rejectf(t.at("max_per_interval"), "must be between 1 and %d, got %d", MaxPerInterval, th.MaxPerInterval)
		}
		if th.IntervalMinutes, err = t.integer("interval_minutes", true); err != nil {
			return c, err
		}
		if th.IntervalMinutes < 1 || th.IntervalMinutes > MaxIntervalMinutes {
			return c, Rejectf(t.at("interval_minutes"), "must be between 1 and %d, got %d", MaxIntervalMinutes, th.IntervalMinutes)
		}
		c.Throttle = th
	}
	if c.ExcludePreviousRecipients, err = o.boolean("exclude_previous_recipients"); err != nil {
		return c, err
	}
	if err := parseGovernance(o, &c); err != nil {
		return c, err
	}
	if err := parseDelivery(o, &c); err != nil {
		return c, err
	}
	return c, nil
}

func parseAudience(o *object) (Audience, error) {
	var a Audience
	typ, err := o.str("type", true)
	if err != nil {
		return a, err
	}
	a.Type = AudienceType(typ)
	switch a.Type {
	case AudienceAll:
		if err := o.allow("type"); err != nil {
			return a, err
		}
	case AudienceSegment:
		if err := o.allow("type", "groups"); err != nil {
			return a, err
		}
		if _, ok := o.m["groups"]; !ok {
			return a, Rejectf(o.at("groups"), "required for a segment audience")
		}
		if a.Groups, err = parseGroups(o); err != nil {
			return a, err
		}
	case AudienceUserIDs:
		if err := o.allow("type", "user_ids", "groups"); err != nil {
			return a, err
		}
		raw, ok := o.m["user_ids"]
		if !ok {
			return a, Rejectf(o.at("user_ids"), "required for a user_ids audience")
		}
		if a.UserIDs, err = stringList(raw, o.at("user_ids")); err != nil {
			return a, err
		}
		if len(a.UserIDs) > MaxUserIDs {
			return a, Rejectf(o.at("user_ids"), "%d ids, more than the %d allowed", len(a.UserIDs), MaxUserIDs)
		}
		if _, ok := o.m["groups"]; ok {
			if a.Groups, err = parseGroups(o); err != nil {
				return a, err
			}
		}
	case AudienceCSV:
		if err := o.allow("type", "url"); err != nil {
			return a, err
		}
		if a.URL, err = o.str("url", true); err != nil {
			return a, err
		}
		if !strings.HasPrefix(a.URL, "s3://") && !strings.HasPrefix(a.URL, "file://") {
			return a, Rejectf(o.at("url"), "unsupported URL %q (want s3:// or file://)", a.URL)
		}
	default:
		return a, Rejectf(o.at("type"), "unknown audience type %q (want all, segment, user_ids or csv)", typ)
	}
	if err := checkLimits(o.path, a.Groups); err != nil {
		return a, err
	}
	return a, nil
}

// stringList decodes a possibly huge array of strings without building a
// generic value per element.
func stringList(raw json.RawMessage, path string) ([]string, error) {
	// Pointers tell a JSON null (which would decode to "") from a string.
	var ptrs []*string
	if err := json.Unmarshal(raw, &ptrs); err == nil && ptrs != nil {
		ids := make([]string, len(ptrs))
		for i, p := range ptrs {
			if p == nil {
				return nil, Rejectf(fmt.Sprintf("%s[%d]", path, i), "want a string, got null")
			}
			ids[i] = *p
		}
		return ids, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, Rejectf(path, "want an array of strings, got %s", jsonType(raw))
	}
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			return nil, Rejectf(fmt.Sprintf("%s[%d]", path, i), "want a string, got %s", jsonType(it))
		}
	}
	return nil, Rejectf(path, "want an array of strings")
}

func parseGroups(o *object) ([]Group, error) {
	items, err := o.array("groups")
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, Rejectf(o.at("groups"), "must not be empty")
	}
	groups := make([]Group, len(items))
	for i, raw := range items {
		gpath := fmt.Sprintf("%s[%d]", o.at("groups"), i)
		g, err := toObject(raw, gpath)
		if err != nil {
			return nil, err
		}
		if err := g.allow("conditions"); err != nil {
			return nil, err
		}
		conds, err := g.array("conditions")
		if err != nil {
			return nil, err
		}
		if conds == nil {
			return nil, Rejectf(g.at("conditions"), "required")
		}
		if len(conds) == 0 {
			// An empty group would match every user: too easy to send a
			// campaign to everyone by accident, so it must be said with
			// {"type": "all"}.
			return nil, Rejectf(g.at("conditions"), "must not be empty (use audience type \"all\" for everyone)")
		}
		groups[i].Conditions = make([]Condition, len(conds))
		for k, craw := range conds {
			cpath := fmt.Sprintf("%s[%d]", g.at("conditions"), k)
			co, err := toObject(craw, cpath)
			if err != nil {
				return nil, err
			}
			if groups[i].Conditions[k], err = parseCondition(co); err != nil {
				return nil, err
			}
		}
	}
	return groups, nil
}

func parseCondition(o *object) (Condition, error) {
	c := Condition{Path: o.path}
	kind, err := o.str("kind", true)
	if err != nil {
		return c, err
	}
	c.Kind = ConditionKind(kind)
	k, ok := kindByName[c.Kind]
	if !ok {
		return c, Rejectf(o.at("kind"), "unknown condition kind %q (want %s)", kind, kindList())
	}
	allowed := append([]string{"kind"}, k.Fields...)
	if k.Compared {
		allowed = append(allowed, "operator", "value")
	}
	if err := o.allow(allowed...); err != nil {
		return c, err
	}
	if err := k.parse(o, &c); err != nil {
		return c, err
	}
	if !k.Compared {
		return c, nil
	}
	op, err := o.str("operator", true)
	if err != nil {
		return c, err
	}
	c.Operator = Operator(op)
	if !knownOperator(c.Operator) {
		return c, Rejectf(o.at("operator"), "unknown operator %q", op)
	}
	raw, hasValue := o.m["value"]
	vpath := o.at("value")
	switch c.Operator {
	case OpExists, OpNotExists:
		if hasValue {
			return c, Rejectf(vpath, "operator %q takes no value", op)
		}
		return c, nil
	}
	if !hasValue {
		return c, Rejectf(vpath, "required for operator %q", op)
	}
	if c.Value, err = parseValue(raw, vpath, c.Operator == OpIn || c.Operator == OpNotIn); err != nil {
		return c, err
	}
	switch {
	case c.Operator == OpIn || c.Operator == OpNotIn:
		if c.Value.Type != ValueArray {
			return c, Rejectf(vpath, "operator %q wants an array", op)
		}
	case c.Value.Type == ValueArray:
		return c, Rejectf(vpath, "operator %q wants a single value, got an array", op)
	case c.Value.Type == ValueBool && c.Operator != OpEq && c.Operator != OpNe:
		return c, Rejectf(vpath, "operator %q does not apply to a boolean (use =, !=, in or not_in)", op)
	case c.Operator == OpContains && c.Value.Type != ValueString && c.Value.Type != ValueTemplate:
		return c, Rejectf(vpath, "operator %q wants a string", op)
	}
	return c, nil
}

func parseValue(raw json.RawMessage, path string, arrayOK bool) (Value, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Value{}, Rejectf(path, "malformed value: %v", err)
	}
	return toValue(v, path, arrayOK)
}

func toValue(v any, path string, arrayOK bool) (Value, error) {
	switch x := v.(type) {
	case nil:
		return Value{}, Rejectf(path, "null is not a value (use the exists or not_exists operator)")
	case string:
		return Value{Type: ValueString, Str: x}, nil
	case bool:
		return Value{Type: ValueBool, Bool: x}, nil
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) || len(x) > MaxNumberLength || (f == 0 && nonZeroMantissa(string(x))) {
			return Value{}, Rejectf(path, "number %.64s is out of range (want a float64 of at most %d characters)", x, MaxNumberLength)
		}
		return Value{Type: ValueNumber, Str: string(x)}, nil
	case []any:
		if !arrayOK {
			return Value{}, Rejectf(path, "an array is only allowed with the in and not_in operators")
		}
		out := Value{Type: ValueArray, Items: make([]Value, len(x))}
		for i, it := range x {
			item, err := toValue(it, fmt.Sprintf("%s[%d]", path, i), false)
			if err != nil {
				return Value{}, err
			}
			out.Items[i] = item
		}
		return out, nil
	case map[string]any:
		src, ok := x["template"].(string)
		if !ok || len(x) != 1 {
			return Value{}, Rejectf(path, `an object value must be {"template": "<Liquid>"}`)
		}
		return Value{Type: ValueTemplate, Str: src}, nil
	}
	return Value{}, Rejectf(path, "unsupported value")
}

// object is one JSON object being validated, with its path.
type object struct {
	path string
	m    map[string]json.RawMessage
}

var plainKey = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// at is the path of a field. Keys that are not plain names are quoted, so
// the path stays unambiguous: campaign["a.b"].
func (o *object) at(key string) string {
	if !plainKey.MatchString(key) {
		q, _ := json.Marshal(key)
		return o.path + "[" + string(q) + "]"
	}
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

func (o *object) keys() []string {
	keys := make([]string, 0, len(o.m))
	for k := range o.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// allow rejects the first (in sorted order) field not in names.
func (o *object) allow(names ...string) error {
	for _, k := range o.keys() {
		known := false
		for _, n := range names {
			if k == n {
				known = true
				break
			}
		}
		if !known {
			return Rejectf(o.at(k), "unknown field")
		}
	}
	return nil
}

func (o *object) str(key string, required bool) (string, error) {
	raw, ok := o.m[key]
	if !ok || (!required && isNull(raw)) {
		if required {
			return "", Rejectf(o.at(key), "required")
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || isNull(raw) {
		return "", Rejectf(o.at(key), "want a string, got %s", jsonType(raw))
	}
	if required && strings.TrimSpace(s) == "" {
		return "", Rejectf(o.at(key), "must not be blank")
	}
	return s, nil
}

func (o *object) integer(key string, required bool) (int64, error) {
	raw, ok := o.m[key]
	if !ok {
		if required {
			return 0, Rejectf(o.at(key), "required")
		}
		return 0, nil
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	// json.Number also accepts a quoted number; the contract's integers
	// are JSON numbers.
	if err := dec.Decode(&n); err != nil || jsonType(raw) != "a number" {
		return 0, Rejectf(o.at(key), "want an integer, got %s", jsonType(raw))
	}
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, Rejectf(o.at(key), "want an integer, got %s", n)
	}
	return v, nil
}

func (o *object) boolean(key string) (bool, error) {
	raw, ok := o.m[key]
	if !ok || isNull(raw) {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, Rejectf(o.at(key), "want a boolean, got %s", jsonType(raw))
	}
	return b, nil
}

func (o *object) obj(key string, required bool) (*object, error) {
	raw, ok := o.m[key]
	if !ok || (!required && isNull(raw)) {
		if required {
			return nil, Rejectf(o.at(key), "required")
		}
		return nil, nil
	}
	return toObject(raw, o.at(key))
}

func (o *object) array(key string) ([]json.RawMessage, error) {
	raw, ok := o.m[key]
	if !ok {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || isNull(raw) {
		return nil, Rejectf(o.at(key), "want an array, got %s", jsonType(raw))
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	return items, nil
}

func toObject(raw json.RawMessage, path string) (*object, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, Rejectf(path, "want an object, got %s", jsonType(raw))
	}
	return &object{path: path, m: m}, nil
}

func compactObject(raw json.RawMessage, path string) (json.RawMessage, error) {
	if _, err := toObject(raw, path); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, Rejectf(path, "malformed JSON: %v", err)
	}
	return buf.Bytes(), nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// jsonType names the JSON type of raw for error messages.
func jsonType(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

package job

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/segpub/segpub/internal/schema"
)

// This file is the table of condition kinds (docs/job.md): for each kind,
// the fields it takes and how they parse, whether it is evaluated per
// device, the table and index its SQL reads, how it counts against the
// joined-test bound and how an operator reads it. Parsing, the audience
// bounds, the project check, segpub explain and why read it; package
// audience holds the one other table, the kinds' SQL, and a test in each
// fails on a kind of ConditionKinds that is missing there.

// ConditionKind is what a condition looks at.
type ConditionKind string

const (
	KindUser     ConditionKind = "user"
	KindDevice   ConditionKind = "device"
	KindEvent    ConditionKind = "event"
	KindDelivery ConditionKind = "delivery"
)

// Condition is one condition of a group. Which fields are set depends on
// Kind; the parser guarantees the combination is valid.
type Condition struct {
	// Path is the condition's JSON path, for errors found after parsing.
	Path       string
	Kind       ConditionKind
	Attribute  string // user, device
	Event      string // event
	CampaignID string // delivery
	WithinDays int    // event, delivery; 0 = no window
	Received   bool   // delivery
	Operator   Operator
	Value      Value
}

// KindInfo is what segpub knows of a condition kind outside its SQL.
type KindInfo struct {
	Kind ConditionKind
	// Fields are the kind's own fields besides "kind"; Compared: an
	// operator and a value follow them.
	Fields   []string
	Compared bool
	// parse reads the kind's own fields into c (the field names are
	// already allowed).
	parse func(o *object, c *Condition) error
	// PerDevice: the condition is evaluated on (user, device) pairs
	// (docs/job.md), not once per user.
	PerDevice bool
	// Table is the project table the condition reads besides the users
	// ("" for none).
	Table func(t schema.Tables) string
	// Index is the name prefix of the secondary index (package indexes)
	// its SQL reads, "" for none.
	Index string
	// Joined is the key of the joined test the condition compiles to, ""
	// for none: MaxJoinedConditions bounds their distinct keys.
	Joined func(c Condition) string
	// Describe renders the condition as an operator wrote it, its value
	// given as text.
	Describe func(c Condition, value string) string
	// Example is a condition of the kind as a job writes it; tests of
	// every consumer of the table compile it.
	Example string
}

// kinds is the table, in docs/job.md's order.
var kinds = []KindInfo{
	{
		Kind: KindUser, Fields: []string{"attribute"}, Compared: true,
		Example: `{"kind":"user","attribute":"tier","operator":"=","value":"gold"}`,
		parse: func(o *object, c *Condition) error {
			var err error
			if c.Attribute, err = o.str("attribute", true); err != nil {
				return err
			}
			if strings.HasPrefix(c.Attribute, "$") && !userColumns[c.Attribute] {
				return Rejectf(o.at("attribute"), "unknown column attribute %q (want $email, $phone_number, $external_user_id or $random_bucket_number)", c.Attribute)
			}
			return nil
		},
		Table:    func(schema.Tables) string { return "" },
		Describe: describeAttribute,
	},
	{
		Kind: KindDevice, Fields: []string{"attribute"}, Compared: true, PerDevice: true,
		Example: `{"kind":"device","attribute":"app_version","operator":">=","value":"3.10"}`,
		parse: func(o *object, c *Condition) error {
			var err error
			if c.Attribute, err = o.str("attribute", true); err != nil {
				return err
			}
			if !DeviceAttributes[c.Attribute] {
				return Rejectf(o.at("attribute"), "unknown device attribute %q (want platform, os_version, app_version, sdk_version or sdk_type)", c.Attribute)
			}
			return nil
		},
		Table:    func(t schema.Tables) string { return t.Device },
		Describe: describeAttribute,
	},
	{
		Kind: KindEvent, Fields: []string{"event", "within_days"}, Compared: true,
		Example: `{"kind":"event","event":"purchase","within_days":30,"operator":">=","value":1}`,
		parse: func(o *object, c *Condition) error {
			var err error
			if c.Event, err = o.str("event", true); err != nil {
				return err
			}
			c.WithinDays, err = withinDays(o)
			return err
		},
		Table:  func(t schema.Tables) string { return t.EventCounts },
		Index:  "sp_evc_",
		Joined: func(c Condition) string { return fmt.Sprintf("e\x00%s\x00%d", c.Event, c.WithinDays) },
		Describe: func(c Condition, v string) string {
			return fmt.Sprintf("event %s (%s) %s %s", c.Event, window(c, "all time"), c.Operator, v)
		},
	},
	{
		Kind: KindDelivery, Fields: []string{"campaign_id", "within_days", "received"},
		Example: `{"kind":"delivery","campaign_id":"c0","within_days":7,"received":false}`,
		parse: func(o *object, c *Condition) error {
			var err error
			if c.CampaignID, err = o.str("campaign_id", true); err != nil {
				return err
			}
			if c.WithinDays, err = withinDays(o); err != nil {
				return err
			}
			raw, ok := o.m["received"]
			if !ok {
				return Rejectf(o.at("received"), "required")
			}
			if err := json.Unmarshal(raw, &c.Received); err != nil || isNull(raw) {
				return Rejectf(o.at("received"), "want a boolean, got %s", jsonType(raw))
			}
			return nil
		},
		Table:  func(t schema.Tables) string { return t.DeliveryResult },
		Index:  "sp_drcu_",
		Joined: func(c Condition) string { return fmt.Sprintf("d\x00%s\x00%d", c.CampaignID, c.WithinDays) },
		Describe: func(c Condition, _ string) string {
			return fmt.Sprintf("delivery of %s (%s) received=%v", c.CampaignID, window(c, "any time"), c.Received)
		},
	},
}

var kindByName = func() map[ConditionKind]*KindInfo {
	m := make(map[ConditionKind]*KindInfo, len(kinds))
	for i := range kinds {
		m[kinds[i].Kind] = &kinds[i]
	}
	return m
}()

// Kinds returns the table of condition kinds.
func Kinds() []KindInfo { return append([]KindInfo(nil), kinds...) }

// Info returns the kind's entry of the table; ok is false for a kind that
// is not one (the parser rejects those).
func (k ConditionKind) Info() (info KindInfo, ok bool) {
	p, ok := kindByName[k]
	if !ok {
		return KindInfo{}, false
	}
	return *p, true
}

// PerDevice reports whether conditions of the kind are evaluated per
// (user, device) pair.
func (k ConditionKind) PerDevice() bool {
	p, ok := kindByName[k]
	return ok && p.PerDevice
}

// kindList names the kinds for a rejection: "user, device, event or
// delivery".
func kindList() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k.Kind)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func describeAttribute(c Condition, v string) string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %s %s", c.Kind, c.Attribute, c.Operator, v))
}

func window(c Condition, none string) string {
	if c.WithinDays > 0 {
		return fmt.Sprintf("last %d days", c.WithinDays)
	}
	return none
}

// userColumns are the user attributes that name columns, not properties.
var userColumns = map[string]bool{"$email": true, "$phone_number": true, "$external_user_id": true, "$random_bucket_number": true}

// DeviceAttributes are the device columns a condition may name.
var DeviceAttributes = map[string]bool{"platform": true, "os_version": true, "app_version": true, "sdk_version": true, "sdk_type": true}

func withinDays(o *object) (int, error) {
	if _, ok := o.m["within_days"]; !ok {
		return 0, nil
	}
	n, err := o.integer("within_days", true)
	if err != nil {
		return 0, err
	}
	if n < 1 || n > 36500 {
		return 0, Rejectf(o.at("within_days"), "must be between 1 and 36500, got %d", n)
	}
	return int(n), nil
}

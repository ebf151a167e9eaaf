package job

import (
	"encoding/json"
	"strings"

	"github.com/segpub/segpub/internal/tz"
)

// Delivery is the campaign's delivery targeting (docs/delivery.md):
// each member is nil (or false) when off.
type Delivery struct {
	LocalTime *LocalTime
	// MostRecentDeviceOnly keeps, of a user's candidates, only the one on
	// the device with the latest updated_at.
	MostRecentDeviceOnly bool
	Localized            *Localized
}

// LocalTime delivers at a wall-clock time in each recipient's own zone.
type LocalTime struct {
	// Hour and Minute are the wall-clock time.
	Hour, Minute int
	// ZoneKey is the user_properties key (CSV: column) holding the
	// recipient's IANA zone name.
	ZoneKey string
	// Fallback is the zone of recipients without a valid zone name; its
	// name is FallbackName.
	FallbackName string
	// SkipPassed skips a recipient whose time has passed today
	// (local_time_passed) instead of sending on the next day.
	SkipPassed bool
}

// DefaultFallbackZone is local_time.fallback_time_zone's default.
const DefaultFallbackZone = "Asia/Seoul"

// Localized is per-recipient message content by language tag.
type Localized struct {
	// Property is the user_properties key (CSV: column) holding the
	// recipient's language tag.
	Property string
	// Keys are the messages' keys as written, in sorted order; Messages
	// their compact JSON objects, index for index.
	Keys     []string
	Messages []json.RawMessage
}

// MaxLocaleKeyBytes bounds a localized_messages key (docs/delivery.md).
const MaxLocaleKeyBytes = 35

// IsOn reports whether any targeting is on.
func (d *Delivery) IsOn() bool {
	return d != nil && (d.LocalTime != nil || d.MostRecentDeviceOnly || d.Localized != nil)
}

// parseDelivery reads the optional delivery field of a campaign; absent or
// null leaves it off.
func parseDelivery(o *object, c *Campaign) error {
	d, err := o.obj("delivery", false)
	if err != nil || d == nil {
		return err
	}
	if err := d.allow("local_time", "most_recent_device_only", "localized_messages"); err != nil {
		return err
	}
	out := &Delivery{}
	if lt, err := d.obj("local_time", false); err != nil {
		return err
	} else if lt != nil {
		if out.LocalTime, err = parseLocalTime(lt); err != nil {
			return err
		}
	}
	if out.MostRecentDeviceOnly, err = d.boolean("most_recent_device_only"); err != nil {
		return err
	}
	if out.MostRecentDeviceOnly && !c.Channel.TargetsDevices() {
		return Rejectf(d.at("most_recent_device_only"), "applies to push_notification and web_push_notification only, not %s", c.Channel)
	}
	if lm, err := d.obj("localized_messages", false); err != nil {
		return err
	} else if lm != nil {
		if out.Localized, err = parseLocalized(lm); err != nil {
			return err
		}
		if c.ExperimentID != "" {
			return Rejectf(d.at("localized_messages"), "cannot be combined with campaign.experiment_id (a variant's message and a language's would compete)")
		}
	}
	c.Delivery = out
	return nil
}

func parseLocalTime(o *object) (*LocalTime, error) {
	if err := o.allow("time", "time_zone", "fallback_time_zone", "if_passed"); err != nil {
		return nil, err
	}
	lt := &LocalTime{FallbackName: DefaultFallbackZone}
	s, err := o.str("time", true)
	if err != nil {
		return nil, err
	}
	var ok bool
	if lt.Hour, lt.Minute, ok = parseClock(s); !ok {
		return nil, Rejectf(o.at("time"), "want HH:MM from 00:00 to 23:59, got %q", s)
	}
	if lt.ZoneKey, err = propertyName(o, "time_zone", true); err != nil {
		return nil, err
	}
	if raw, ok := o.m["fallback_time_zone"]; ok && !isNull(raw) {
		name, err := o.str("fallback_time_zone", false)
		if err != nil {
			return nil, err
		}
		if _, ok := tz.Load(name); !ok {
			return nil, Rejectf(o.at("fallback_time_zone"), "%q is not an IANA time zone name (exact case, e.g. \"Asia/Seoul\" or \"UTC\")", name)
		}
		lt.FallbackName = name
	}
	// Absent or null is the default; "" is a value, and not one of the two.
	if raw, ok := o.m["if_passed"]; ok && !isNull(raw) {
		ip, err := o.str("if_passed", false)
		if err != nil {
			return nil, err
		}
		switch ip {
		case "next_day":
		case "skip":
			lt.SkipPassed = true
		default:
			return nil, Rejectf(o.at("if_passed"), "unknown value %q (want \"next_day\" or \"skip\")", ip)
		}
	}
	return lt, nil
}

// parseClock reads HH:MM, 00:00 to 23:59, two digits each.
func parseClock(s string) (h, m int, ok bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, 0, false
	}
	for _, i := range []int{0, 1, 3, 4} {
		if s[i] < '0' || s[i] > '9' {
			return 0, 0, false
		}
	}
	h = int(s[0]-'0')*10 + int(s[1]-'0')
	m = int(s[3]-'0')*10 + int(s[4]-'0')
	return h, m, h <= 23 && m <= 59
}

func parseLocalized(o *object) (*Localized, error) {
	if err := o.allow("property", "messages"); err != nil {
		return nil, err
	}
	l := &Localized{}
	var err error
	if l.Property, err = propertyName(o, "property", true); err != nil {
		return nil, err
	}
	msgs, err := o.obj("messages", true)
	if err != nil {
		return nil, err
	}
	if len(msgs.m) == 0 {
		return nil, Rejectf(msgs.path, "must hold at least one language")
	}
	folded := map[string]string{}
	for _, k := range msgs.keys() {
		if !localeKey(k) {
			return nil, Rejectf(msgs.at(k), "not a language tag: want 1 to %d characters of A-Z, a-z, 0-9 and -", MaxLocaleKeyBytes)
		}
		lk := strings.ToLower(k)
		if prev, dup := folded[lk]; dup {
			return nil, Rejectf(msgs.at(k), "the same language as %q (keys are compared ignoring case)", prev)
		}
		folded[lk] = k
		m, err := compactObject(msgs.m[k], msgs.at(k))
		if err != nil {
			return nil, err
		}
		l.Keys = append(l.Keys, k)
		l.Messages = append(l.Messages, m)
	}
	return l, nil
}

func localeKey(k string) bool {
	if k == "" || len(k) > MaxLocaleKeyBytes {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

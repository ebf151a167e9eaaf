package job

import "strings"

// Advertising marks a campaign's message as advertising information
// (docs/governance.md): it needs the user's consent, and at night a
// separate night-time consent.
type Advertising struct {
	// Consent is the user_properties key whose JSON value true is consent.
	Consent string
	// NightConsent is the key for night-time consent; "" turns the
	// night-time rule off.
	NightConsent string
}

// FrequencyCap skips users who already received MaxMessages messages of
// the job's channel within WithinDays×24 hours before the reference time.
type FrequencyCap struct {
	MaxMessages int64
	WithinDays  int64
}

// Bounds of a frequency cap (docs/governance.md).
const (
	MaxFrequencyMessages   = 1000
	MaxFrequencyWithinDays = 365
)

// parseGovernance reads the optional advertising and frequency_cap fields
// of a campaign; absent or null leaves them off.
func parseGovernance(o *object, c *Campaign) error {
	if a, err := o.obj("advertising", false); err != nil {
		return err
	} else if a != nil {
		if err := a.allow("consent", "night_consent"); err != nil {
			return err
		}
		adv := &Advertising{}
		if adv.Consent, err = propertyName(a, "consent", true); err != nil {
			return err
		}
		if adv.NightConsent, err = propertyName(a, "night_consent", false); err != nil {
			return err
		}
		c.Advertising = adv
	}
	if f, err := o.obj("frequency_cap", false); err != nil {
		return err
	} else if f != nil {
		if err := f.allow("max_messages", "within_days"); err != nil {
			return err
		}
		fc := &FrequencyCap{}
		if fc.MaxMessages, err = f.integer("max_messages", true); err != nil {
			return err
		}
		if fc.MaxMessages < 1 || fc.MaxMessages > MaxFrequencyMessages {
			return Rejectf(f.at("max_messages"), "must be between 1 and %d, got %d", MaxFrequencyMessages, fc.MaxMessages)
		}
		if fc.WithinDays, err = f.integer("within_days", true); err != nil {
			return err
		}
		if fc.WithinDays < 1 || fc.WithinDays > MaxFrequencyWithinDays {
			return Rejectf(f.at("within_days"), "must be between 1 and %d, got %d", MaxFrequencyWithinDays, fc.WithinDays)
		}
		c.FrequencyCap = fc
	}
	return nil
}

// propertyName reads a user_properties key naming a consent. Names starting
// with $ are the columns of conditions, not properties, so they are refused
// rather than silently read as property keys.
func propertyName(o *object, key string, required bool) (string, error) {
	raw, ok := o.m[key]
	if !ok || isNull(raw) {
		if required {
			return "", Rejectf(o.at(key), "required")
		}
		return "", nil
	}
	s, err := o.str(key, false)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(s) == "" {
		return "", Rejectf(o.at(key), "must name a user_properties key, got an empty name")
	}
	if strings.HasPrefix(s, "$") {
		return "", Rejectf(o.at(key), "must name a user_properties key; %q starts with $", s)
	}
	return s, nil
}

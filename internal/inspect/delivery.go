package inspect

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// DeliveryCounts is explain's account of delivery targeting
// (docs/delivery.md); nil when the job has none.
type DeliveryCounts struct {
	// LocalTimePassed and OlderDevice count the candidates each rule
	// removes (present when the rule is on).
	LocalTimePassed *int64 `json:"local_time_passed,omitempty"`
	OlderDevice     *int64 `json:"older_device,omitempty"`
	// BaseTimes is the distribution of the messages' base times, earliest
	// first; Fallback counts the messages whose recipient had no valid
	// zone (the fallback's base time); NextDay those whose time had passed
	// and moved to the next day.
	BaseTimes []BaseTimeZones `json:"base_times,omitempty"`
	Fallback  *int64          `json:"fallback_zone,omitempty"`
	NextDay   *int64          `json:"next_day,omitempty"`
	// Locales counts the messages by the locale chosen ("" keys the
	// messages that carry the default message and "locale": null).
	Locales map[string]int64 `json:"locales,omitempty"`
}

// BaseTimeZones is one base time: its messages and the zones they came
// from (at most maxZonesShown names, most messages first).
type BaseTimeZones struct {
	At       time.Time `json:"base_time"`
	Messages int64     `json:"messages"`
	Zones    []string  `json:"zones"`
}

const maxZonesShown = 10

// deliveryTally counts targeting outcomes from a run's trace.
type deliveryTally struct {
	zones           map[int64]map[string]int64
	fallback, moved int64
	locales         map[string]int64
}

func (d *deliveryTally) trace(o publish.Outcome) {
	if o.Reason != "published" {
		return
	}
	if !o.BaseTime.IsZero() {
		if d.zones == nil {
			d.zones = map[int64]map[string]int64{}
		}
		at := o.BaseTime.Unix()
		if d.zones[at] == nil {
			d.zones[at] = map[string]int64{}
		}
		d.zones[at][o.Zone]++
		if o.ZoneFallback {
			d.fallback++
		}
		if o.BasePassed {
			d.moved++
		}
	}
	if d.locales == nil {
		d.locales = map[string]int64{}
	}
	d.locales[o.Locale]++
}

func (d *deliveryTally) counts(c job.Campaign, res *publish.Result) *DeliveryCounts {
	del := c.Delivery
	if !del.IsOn() {
		return nil
	}
	out := &DeliveryCounts{}
	if del.LocalTime != nil {
		n, f, m := res.Skipped.LocalTimePassed, d.fallback, d.moved
		out.LocalTimePassed, out.Fallback, out.NextDay = &n, &f, &m
		for at, zones := range d.zones {
			b := BaseTimeZones{At: time.Unix(at, 0).UTC()}
			for z, k := range zones {
				b.Messages += k
				b.Zones = append(b.Zones, z)
			}
			sort.Slice(b.Zones, func(i, j int) bool {
				if zones[b.Zones[i]] != zones[b.Zones[j]] {
					return zones[b.Zones[i]] > zones[b.Zones[j]]
				}
				return b.Zones[i] < b.Zones[j]
			})
			if len(b.Zones) > maxZonesShown {
				b.Zones = b.Zones[:maxZonesShown]
			}
			out.BaseTimes = append(out.BaseTimes, b)
		}
		sort.Slice(out.BaseTimes, func(i, j int) bool { return out.BaseTimes[i].At.Before(out.BaseTimes[j].At) })
	}
	if del.MostRecentDeviceOnly {
		n := res.Skipped.OlderDevice
		out.OlderDevice = &n
	}
	if del.Localized != nil {
		out.Locales = d.locales
		if out.Locales == nil {
			out.Locales = map[string]int64{}
		}
	}
	return out
}

// DeliveryAnswer is why's account of delivery targeting for one user.
type DeliveryAnswer struct {
	// ZoneProperty and ZoneStored are the time zone property and its
	// value as stored (JSON text; nil when missing). For CSV audiences the
	// value comes from the file and is not shown here.
	ZoneProperty string  `json:"zone_property,omitempty"`
	ZoneStored   *string `json:"zone_stored,omitempty"`
	// LanguageProperty and LanguageStored likewise for the language tag.
	LanguageProperty string  `json:"language_property,omitempty"`
	LanguageStored   *string `json:"language_stored,omitempty"`
}

// deliveryOf looks up one user's stored zone and language values.
func deliveryOf(ctx context.Context, pool *pgxpool.Pool, j *job.Job, spec audience.Spec, externalID string) (*DeliveryAnswer, error) {
	d := j.Campaign.Delivery
	if d == nil || (d.LocalTime == nil && d.Localized == nil) {
		return nil, nil
	}
	out := &DeliveryAnswer{}
	if d.LocalTime != nil {
		out.ZoneProperty = d.LocalTime.ZoneKey
	}
	if d.Localized != nil {
		out.LanguageProperty = d.Localized.Property
	}
	if j.Campaign.Audience.Type == job.AudienceCSV {
		return out, nil
	}
	q := audience.PropertiesOf(spec.Tables, externalID, out.ZoneProperty, out.LanguageProperty)
	err := pool.QueryRow(ctx, q.SQL, q.Args...).Scan(&out.ZoneStored, &out.LanguageStored)
	if errors.Is(err, pgx.ErrNoRows) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up zone and language of user %s: %w", externalID, err)
	}
	return out, nil
}

// deliveryDetail explains the targeting of one outcome in words; chosen is
// the user's device that most_recent_device_only kept (nil: none or off).
func deliveryDetail(j *job.Job, o publish.Outcome, chosen *publish.Outcome) string {
	d := j.Campaign.Delivery
	if d == nil {
		return ""
	}
	var out string
	add := func(s string) {
		if out != "" {
			out += "; "
		}
		out += s
	}
	if lt := d.LocalTime; lt != nil && !o.BaseTime.IsZero() {
		zone := fmt.Sprintf("zone %s", o.Zone)
		if o.ZoneFallback {
			zone = fmt.Sprintf("fallback zone %s (the stored value is missing, not a string, or not an exact IANA name)", o.Zone)
		}
		at := o.BaseTime.In(time.UTC).Format(time.RFC3339)
		switch {
		case o.Reason == "local_time_passed":
			add(fmt.Sprintf("%02d:%02d in %s was %s, before the reference time; if_passed is skip", lt.Hour, lt.Minute, zone, at))
		case o.BasePassed:
			add(fmt.Sprintf("%02d:%02d in %s had passed on the reference date: base time the next day, %s", lt.Hour, lt.Minute, zone, at))
		default:
			add(fmt.Sprintf("base time %02d:%02d in %s: %s", lt.Hour, lt.Minute, zone, at))
		}
	}
	if d.MostRecentDeviceOnly && chosen != nil && o.DeviceID != "" {
		switch {
		case o.Reason == "older_device":
			add(fmt.Sprintf("device updated at %s; the user's most recent device that passed the earlier checks is %s, updated at %s",
				o.DeviceUpdatedAt.UTC().Format(time.RFC3339Nano), chosen.DeviceID, chosen.DeviceUpdatedAt.UTC().Format(time.RFC3339Nano)))
		case o.DeviceID == chosen.DeviceID:
			add(fmt.Sprintf("the user's most recent device that passed the earlier checks (updated at %s; ties go to the smallest device id)",
				o.DeviceUpdatedAt.UTC().Format(time.RFC3339Nano)))
		}
	}
	if d.Localized != nil && o.Reason == "published" {
		if o.Locale == "" {
			add("no localized message matches the language value: the campaign's message, locale null")
		} else {
			add(fmt.Sprintf("localized message %q", o.Locale))
		}
	}
	return out
}

package publish

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/message"
	"github.com/segpub/segpub/internal/tz"
)

// targeting applies a run's delivery targeting (docs/delivery.md):
// per-recipient base times, one device per user, and the message language.
// Its caches are bounded by the distinct zone names and language tags of
// the audience, never by its size.
type targeting struct {
	local *job.LocalTime
	// fallback is the fallback zone's base time, computed once.
	fallback baseTime
	zones    *tz.Cache
	// bases caches the base time of each zone name seen (the reference
	// time is the run's, so a name always gives the same base time).
	bases map[string]baseTime
	ref   time.Time

	mostRecent bool

	localized *job.Localized
	// locales maps a lower-cased key to its index in localized.Keys;
	// chosen caches the look-up of each recipient value seen.
	locales map[string]int
	chosen  map[string]int
}

// maxTargetingCache bounds the per-run caches of zone names and language
// values; past it they are computed each time (still exact).
const maxTargetingCache = 4096

// baseTime is a recipient's base time and how it was reached.
type baseTime struct {
	at time.Time
	// passed: the time had passed on the reference date; skip: the
	// candidate is skipped for it (if_passed skip), else at is the next
	// day's.
	passed, skip bool
	// zone is the zone used; fallback reports that it is the fallback.
	zone     string
	fallback bool
}

func newTargeting(d *job.Delivery, ref time.Time, zones *tz.Cache) (*targeting, error) {
	if !d.IsOn() {
		return nil, nil
	}
	t := &targeting{local: d.LocalTime, mostRecent: d.MostRecentDeviceOnly, localized: d.Localized, zones: zones, ref: ref}
	if t.local != nil {
		t.bases = map[string]baseTime{}
		loc, ok := zones.Load(t.local.FallbackName)
		if !ok {
			// Parsing checked the name: this host's zone data lacks it (a
			// build without time/tzdata on a host without zoneinfo).
			return nil, fmt.Errorf("load fallback time zone %q: not in this host's time zone data", t.local.FallbackName)
		}
		t.fallback = t.compute(loc, t.local.FallbackName)
		t.fallback.fallback = true
	}
	if t.localized != nil {
		t.locales = make(map[string]int, len(t.localized.Keys))
		for i, k := range t.localized.Keys {
			t.locales[strings.ToLower(k)] = i
		}
		t.chosen = map[string]int{}
	}
	return t, nil
}

func (t *targeting) compute(loc *time.Location, name string) baseTime {
	at, passed := tz.Base(t.ref, t.local.Hour, t.local.Minute, loc, !t.local.SkipPassed)
	return baseTime{at: at, passed: passed, skip: passed && t.local.SkipPassed, zone: name}
}

// base returns the base time of a recipient whose zone value is zone (nil:
// missing or not a string).
func (t *targeting) base(zone []byte) baseTime {
	if len(zone) == 0 {
		return t.fallback
	}
	if b, ok := t.bases[string(zone)]; ok {
		return b
	}
	name := string(zone)
	b := t.fallback
	if loc, ok := t.zones.Load(name); ok {
		b = t.compute(loc, name)
	}
	if len(t.bases) < maxTargetingCache {
		t.bases[name] = b
	}
	return b
}

// noLocale is a recipient without a selected language.
const noLocale = message.NoLocale

// locale returns the index of the localized message for a recipient's
// language value (nil: missing or not a string), or noLocale. The value is
// trimmed, lower-cased, has _ read as -, and is looked up as RFC 4647
// lookup does: whole, then without its last -subtag, down to its first.
func (t *targeting) locale(value []byte) int {
	if value == nil {
		return noLocale
	}
	if i, ok := t.chosen[string(value)]; ok {
		return i
	}
	i := LookupLocale(t.locales, string(value))
	if len(t.chosen) < maxTargetingCache {
		t.chosen[string(value)] = i
	}
	return i
}

// LookupLocale is the look-up of a language value among keys (lower-cased
// key -> index): the index, or message.NoLocale.
func LookupLocale(keys map[string]int, value string) int {
	v := strings.ToLower(strings.Trim(value, " \t\n\v\f\r"))
	v = strings.ReplaceAll(v, "_", "-")
	for v != "" {
		if i, ok := keys[v]; ok {
			return i
		}
		cut := strings.LastIndexByte(v, '-')
		if cut < 0 {
			break
		}
		v = v[:cut]
	}
	return noLocale
}

// newer reports whether device a (updated at ta) wins over device b for
// most_recent_device_only: the later updated_at, then the smaller id in
// byte order.
func newer(ta time.Time, a []byte, tb time.Time, b []byte) bool {
	if !ta.Equal(tb) {
		return ta.After(tb)
	}
	return bytes.Compare(a, b) < 0
}

// pending is the best device so far of the user being checked, under
// most_recent_device_only: it is published (or found a duplicate) once the
// user's last candidate has been seen. It owns copies of its bytes.
type pending struct {
	set       bool
	cand      candidate
	variantID string
	base      baseTime
	buf       rowBatch
}

// hold copies cand into p.
func (p *pending) hold(cand *candidate, variantID string, base baseTime) {
	p.buf.arena = p.buf.arena[:0]
	c := copyCandidate(&p.buf, *cand)
	c.CSV = p.buf.copy(cand.CSV)
	c.Zone = p.buf.copy(cand.Zone)
	c.Language = p.buf.copy(cand.Language)
	p.cand, p.variantID, p.base, p.set = c, variantID, base, true
}

// baseTimes is the run's distribution of base times (nil without
// local_time).
func (c *checker) baseTimes() []BaseTimeCount {
	if len(c.waves) == 0 {
		return nil
	}
	out := make([]BaseTimeCount, 0, len(c.waves))
	for at, w := range c.waves {
		out = append(out, BaseTimeCount{At: time.Unix(at, 0).UTC(), Messages: w.n})
	}
	return MergeBaseTimes(nil, out)
}

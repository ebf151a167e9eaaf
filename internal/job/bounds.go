package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds on the numbers and sizes a job may carry (docs/decisions.md,
// "Bounds on what a job carries"). They keep every computation a job
// drives inside int64, inside PostgreSQL's limits and inside RFC 3339.
const (
	// MaxGroups is the most groups an audience may have.
	MaxGroups = 100
	// MaxConditions is the most conditions an audience may have, over
	// all its groups.
	MaxConditions = 1000
	// MaxJoinedConditions is the most distinct event (event, within_days)
	// and delivery (campaign_id, within_days) tests an audience may
	// have: each is a join the planner must order, and planning time
	// grows steeply with them (400 took 52 s).
	MaxJoinedConditions = 32
	// MaxMessageIDBytes bounds a claim check's message_id: the message
	// store's keys (DynamoDB: 2,048 bytes) must take it.
	MaxMessageIDBytes = 1024
	// MaxUserIDs is the most ids a user_ids audience may list.
	MaxUserIDs = 10_000_000
	// MaxPerInterval bounds throttle.max_per_interval.
	MaxPerInterval = 1_000_000_000
	// MaxIntervalMinutes bounds throttle.interval_minutes: 366 days.
	MaxIntervalMinutes = 366 * 24 * 60
	// MaxNumberLength bounds the text of a number in a condition value.
	MaxNumberLength = 64
	// MaxQueryParams is the most bind parameters one PostgreSQL statement
	// can carry (its protocol counts them in 16 bits).
	MaxQueryParams = 65535
)

var (
	// MinTime and MaxTime bound scheduled_at and every send_at. MaxTime
	// is the last instant RFC 3339 can write (year 9999). MinTime leaves
	// the zero time free to mean "no scheduled_at" and keeps every
	// window a condition looks back over far from year 0.
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// parseScheduledAt parses scheduled_at strictly: RFC 3339 with a numeric
// offset of at most 23:59, and an instant between MinTime and MaxTime.
func parseScheduledAt(path, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, Rejectf(path, "not an RFC 3339 time: %q", s)
	}
	// Go accepts offsets up to +99:99; RFC 3339's are at most 23:59.
	if n := len(s); n >= 6 && (s[n-6] == '+' || s[n-6] == '-') {
		if s[n-5:n-3] > "23" || s[n-2:] > "59" {
			return time.Time{}, Rejectf(path, "not an RFC 3339 time: %q (offset out of range)", s)
		}
	}
	if t.Before(MinTime) || t.After(MaxTime) {
		return time.Time{}, Rejectf(path, "%q is out of range (want %s to %s)", s,
			MinTime.Format(time.RFC3339), MaxTime.Format(time.RFC3339))
	}
	return t, nil
}

// ThrottleCapacity is the number of messages a run with reference time ref
// can publish before a throttle wave's send_at would pass MaxTime. Without
// a throttle it is unlimited (math.MaxInt64).
func ThrottleCapacity(ref time.Time, th *Throttle) int64 {
	const unlimited = int64(^uint64(0) >> 1)
	if th == nil || ref.After(MaxTime) {
		if th == nil {
			return unlimited
		}
		return 0
	}
	// An earlier reference (never from a parsed job) counts from MinTime:
	// fewer waves, and no overflow below.
	if ref.Before(MinTime) {
		ref = MinTime
	}
	// Whole minutes from ref to MaxTime: MaxTime's fraction is the
	// largest, so the seconds' difference floors correctly.
	minutes := (MaxTime.Unix() - ref.Unix()) / 60
	waves := minutes/th.IntervalMinutes + 1
	// waves <= 5.3e9 and MaxPerInterval <= 1e9: no overflow.
	return waves * th.MaxPerInterval
}

// SendAt is message k's send time: ref + floor(k/N)*M minutes
// (docs/job.md, "Throttling"). ok is false when it would pass MaxTime; the sum is computed
// in days and minutes, never as a time.Duration, which holds only 292
// years.
func SendAt(ref time.Time, th *Throttle, k int64) (at time.Time, ok bool) {
	if th == nil {
		return ref, !ref.After(MaxTime)
	}
	if k >= ThrottleCapacity(ref, th) {
		return time.Time{}, false
	}
	minutes := (k / th.MaxPerInterval) * th.IntervalMinutes // < 5.3e9
	// In UTC every day is 24 hours, so AddDate adds exactly that.
	at = ref.UTC().AddDate(0, 0, int(minutes/1440)).Add(time.Duration(minutes%1440) * time.Minute)
	return at, true
}

// checkLimits applies the bounds that need the whole audience: the number
// of groups, conditions and distinct joined tests.
func checkLimits(path string, groups []Group) error {
	if len(groups) > MaxGroups {
		return Rejectf(path+".groups", "%d groups, more than the %d allowed", len(groups), MaxGroups)
	}
	total := 0
	joined := map[string]bool{}
	for _, g := range groups {
		total += len(g.Conditions)
		if total > MaxConditions {
			return Rejectf(path+".groups", "more than the %d conditions allowed (over all groups)", MaxConditions)
		}
		for _, c := range g.Conditions {
			k, ok := kindByName[c.Kind]
			if !ok || k.Joined == nil {
				continue
			}
			joined[k.Joined(c)] = true
			if len(joined) > MaxJoinedConditions {
				return Rejectf(c.Path, "more than %d distinct event and delivery tests (event or campaign_id with within_days) in one audience", MaxJoinedConditions)
			}
		}
	}
	return nil
}

// checkThrottleFits rejects a throttle whose last wave would pass MaxTime
// when parsing already bounds the number of messages: scheduled_at given
// and a user_ids audience on a channel with one message per user.
func checkThrottleFits(path string, j *Job) error {
	c := j.Campaign
	if c.Throttle == nil || j.ScheduledAt.IsZero() || c.Audience.Type != AudienceUserIDs || c.Channel.IsDevice() {
		return nil
	}
	if n := int64(len(c.Audience.UserIDs)); n > ThrottleCapacity(j.ScheduledAt, c.Throttle) {
		return ThrottleOverflow(path, j.ScheduledAt, c.Throttle, n)
	}
	return nil
}

// ThrottleOverflow is the rejection of a throttle whose waves for n
// messages would be sent after MaxTime.
func ThrottleOverflow(path string, ref time.Time, th *Throttle, n int64) error {
	return Rejectf(path, "%d messages at %d every %d minutes from %s would be sent after %s (at most %d fit)",
		n, th.MaxPerInterval, th.IntervalMinutes, ref.UTC().Format(time.RFC3339), MaxTime.Format(time.RFC3339),
		ThrottleCapacity(ref, th))
}

// nulEscape is how a NUL character appears in JSON text (raw control
// characters are invalid inside JSON strings).
var nulEscape = []byte(`\u0000`)

// unstorable returns the path of the first string or key PostgreSQL cannot
// store, and why; "" when there is none. Its text and jsonb take no NUL
// character, and jsonb no unpaired UTF-16 surrogate escape (which Go
// decodes to U+FFFD), so such a job could be neither recorded nor queried.
func unstorable(data []byte) (path, why string) {
	var bad func(string) bool
	if bytes.IndexByte(data, 0) >= 0 {
		// A raw NUL is not even JSON; inside a string, written as its
		// escape it is, and the string's path can be named.
		data = bytes.ReplaceAll(data, []byte{0}, nulEscape)
	}
	switch {
	case bytes.Contains(data, nulEscape):
		why = "contains a NUL character (\\u0000), which PostgreSQL cannot store"
		bad = func(s string) bool { return strings.IndexByte(s, 0) >= 0 }
	case loneSurrogate(data):
		why = "contains an unpaired UTF-16 surrogate escape, which PostgreSQL cannot store"
		bad = func(s string) bool { return strings.ContainsRune(s, utf8.RuneError) }
	default:
		return "", "" // the common case: no decoding
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", ""
	}
	if path = findString(v, "", bad); path == "" {
		return "", "" // `\\u0000`: an escaped backslash, then text
	}
	return path, why
}

// loneSurrogate reports whether JSON text holds a \uD800-\uDFFF escape
// that is not a high surrogate followed by a low one.
func loneSurrogate(data []byte) bool {
	for i := 0; i+1 < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		if data[i+1] != 'u' {
			i++ // an escaped character, perhaps a backslash
			continue
		}
		r, ok := hex4(data, i+2)
		if !ok {
			continue
		}
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			low, ok := rune(0), false
			if i+7 < len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
				low, ok = hex4(data, i+8)
			}
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

func hex4(data []byte, at int) (rune, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(data[at:at+4]), 16, 32)
	return rune(n), err == nil
}

// findString returns the path of the first string or key (keys in sorted
// order) for which bad holds.
func findString(v any, path string, bad func(string) bool) string {
	switch x := v.(type) {
	case string:
		if bad(x) {
			return cmpPath(path)
		}
	case []any:
		for i, it := range x {
			if p := findString(it, fmt.Sprintf("%s[%d]", path, i), bad); p != "" {
				return p
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		o := &object{path: path}
		for _, k := range keys {
			if bad(k) {
				return cmpPath(o.at(k))
			}
			if p := findString(x[k], o.at(k), bad); p != "" {
				return p
			}
		}
	}
	return ""
}

// cmpPath names the root for a string at the top level.
func cmpPath(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

// nonZeroMantissa reports whether a JSON number's digits before its
// exponent are not all zero: such a number that parses to 0 underflowed.
func nonZeroMantissa(n string) bool {
	if i := strings.IndexAny(n, "eE"); i >= 0 {
		n = n[:i]
	}
	return strings.ContainsAny(n, "123456789")
}

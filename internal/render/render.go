// Package render renders the Liquid templates of condition values
// ({"template": "..."}, docs/job.md), once per run, at the run's
// reference time: "now" in a template is that time, never the wall clock,
// so a resumed or replayed run renders the same values.
//
// Templates come from jobs, which are untrusted, so they render in a
// sandbox (see sandbox.go): only an allowlist of tags and filters, none of
// which reaches files, the environment or the network, and bounded work.
package render

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/osteele/liquid/values"
	"github.com/osteele/tuesday"
)

// Renderer renders templates at one reference time.
type Renderer struct {
	ref time.Time
}

// New returns a Renderer whose "now" is ref.
func New(ref time.Time) *Renderer {
	return &Renderer{ref: ref}
}

// toTime turns a filter input into a time: "now" and "today" are the
// reference time.
func (r *Renderer) toTime(in any) (time.Time, error) {
	switch v := in.(type) {
	case time.Time:
		return v, nil
	case string:
		switch strings.TrimSpace(v) {
		case "now", "today":
			return r.ref, nil
		}
		t, err := values.ParseDate(strings.TrimSpace(v))
		if err != nil {
			return time.Time{}, fmt.Errorf("not a date: %q", clip(v, 64))
		}
		return t, nil
	case nil:
		return time.Time{}, fmt.Errorf("not a date: nil")
	}
	return time.Time{}, fmt.Errorf("not a date: %s", clip(fmt.Sprint(in), 64))
}

// zoneName is the shape of an IANA time zone name. The check keeps the
// name from selecting anything but the time zone database: "Local" (the
// worker's own zone, from its environment) and paths are refused.
var zoneName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$`)

// date formats a time with strftime, in an optional IANA time zone.
func (r *Renderer) date(in any, format func(string) string, zone func(string) string) (string, error) {
	t, err := r.toTime(in)
	if err != nil {
		return "", fmt.Errorf("date: %w", err)
	}
	if name := zone(""); name != "" {
		if len(name) > 64 || !zoneName.MatchString(name) || name == "Local" {
			return "", fmt.Errorf("date: unknown time zone %q", clip(name, 64))
		}
		loc, err := time.LoadLocation(name)
		if err != nil {
			return "", fmt.Errorf("date: unknown time zone %q", name)
		}
		t = t.In(loc)
	}
	f := format("%a, %b %d, %y")
	// A conversion can be a few times longer than its directive
	// (%c is 24 bytes); the format's length bounds the output.
	if len(f) > MaxOutputBytes/8 {
		return "", &LimitError{What: fmt.Sprintf("date format of %d bytes", len(f)), Limit: "MaxOutputBytes/8"}
	}
	return tuesday.Strftime(f, t)
}

var amountRe = regexp.MustCompile(`^\s*([+-]?\d+)\s*([a-z]+?)s?\s*$`)

// dateAdd adds "<signed amount> <unit>" to a time. Calendar units keep the
// day of the month where it exists and clamp to the month's last day where
// it does not (Mar 31 - 1 month = Feb 28), as people count months.
func (r *Renderer) dateAdd(in any, amount string) (time.Time, error) {
	t, err := r.toTime(in)
	if err != nil {
		return time.Time{}, fmt.Errorf("date_add: %w", err)
	}
	if len(amount) > 64 {
		return time.Time{}, fmt.Errorf("date_add: malformed amount %q (want e.g. \"-1 day\")", clip(amount, 64))
	}
	m := amountRe.FindStringSubmatch(strings.ToLower(amount))
	if m == nil {
		return time.Time{}, fmt.Errorf("date_add: malformed amount %q (want e.g. \"-1 day\")", amount)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return time.Time{}, fmt.Errorf("date_add: malformed amount %q", amount)
	}
	switch m[2] {
	case "second":
		return t.Add(time.Duration(n) * time.Second), nil
	case "minute":
		return t.Add(time.Duration(n) * time.Minute), nil
	case "hour":
		return t.Add(time.Duration(n) * time.Hour), nil
	case "day":
		return t.AddDate(0, 0, n), nil
	case "week":
		return t.AddDate(0, 0, 7*n), nil
	case "month":
		return addMonths(t, n), nil
	case "year":
		return addMonths(t, 12*n), nil
	}
	return time.Time{}, fmt.Errorf("date_add: unknown unit %q in %q (want second, minute, hour, day, week, month or year)", m[2], amount)
}

func addMonths(t time.Time, n int) time.Time {
	y, mo, d := t.Date()
	first := time.Date(y, mo+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// clip shortens s to at most n bytes (on a rune boundary) for an error
// message: a template's values are the job's own, but a message stays short.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// LimitError reports a template that went past one of the sandbox's
// limits.
type LimitError struct {
	What  string // what went past it, e.g. "output of 70000 bytes"
	Limit string // the limit's name, e.g. "MaxOutputBytes"
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s is over the template limit %s", e.What, e.Limit)
}

// IsLimit reports whether err is (or wraps) a LimitError.
func IsLimit(err error) bool {
	var e *LimitError
	return errors.As(err, &e)
}

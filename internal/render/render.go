// Package render renders the Liquid templates of condition values
// ({"template": "..."}, CONTRACT.md section 3), once per run, at the run's
// reference time: "now" in a template is that time, never the wall clock,
// so a resumed or replayed run renders the same values.
package render

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/osteele/liquid"
	"github.com/osteele/liquid/values"
	"github.com/osteele/tuesday"
)

// Renderer renders templates at one reference time.
type Renderer struct {
	ref    time.Time
	engine *liquid.Engine
}

// New returns a Renderer whose "now" is ref.
func New(ref time.Time) *Renderer {
	r := &Renderer{ref: ref, engine: liquid.NewEngine()}
	r.engine.RegisterFilter("date", r.date)
	r.engine.RegisterFilter("date_add", r.dateAdd)
	return r
}

// Render renders src with no variables but the filters.
func (r *Renderer) Render(src string) (out string, err error) {
	defer func() {
		// The engine reports most errors, but a filter given values of
		// types it did not expect can panic inside it.
		if p := recover(); p != nil {
			out, err = "", fmt.Errorf("template: %v", p)
		}
	}()
	out, serr := r.engine.ParseAndRenderString(src, map[string]any{})
	if serr != nil {
		return "", fmt.Errorf("template: %w", serr)
	}
	return out, nil
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
			return time.Time{}, fmt.Errorf("not a date: %q", v)
		}
		return t, nil
	case nil:
		return time.Time{}, fmt.Errorf("not a date: nil")
	}
	return time.Time{}, fmt.Errorf("not a date: %v", in)
}

// date formats a time with strftime, in an optional IANA time zone.
func (r *Renderer) date(in any, format func(string) string, zone func(string) string) (string, error) {
	t, err := r.toTime(in)
	if err != nil {
		return "", fmt.Errorf("date: %w", err)
	}
	if name := zone(""); name != "" {
		loc, err := time.LoadLocation(name)
		if err != nil {
			return "", fmt.Errorf("date: unknown time zone %q", name)
		}
		t = t.In(loc)
	}
	return tuesday.Strftime(format("%a, %b %d, %y"), t)
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

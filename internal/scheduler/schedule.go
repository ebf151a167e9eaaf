// Package scheduler enqueues each due occurrence of each active campaign
// exactly once (docs/campaigns.md), even with several schedulers
// running: an occurrence is enqueued inside the transaction that records
// it, and the record's primary key lets only one scheduler win.
package scheduler

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Kind is how a campaign repeats.
type Kind string

const (
	Immediate Kind = "immediate" // once, as soon as it is added
	Once      Kind = "once"      // once, at Date and Time
	Daily     Kind = "daily"     // every day at Time
	Weekly    Kind = "weekly"    // at Time on Weekdays
)

// Schedule says when a campaign's occurrences are, in its time zone.
type Schedule struct {
	Kind Kind `json:"kind"`
	// Time is the local time of day, "HH:MM" (once, daily, weekly).
	Time string `json:"time,omitempty"`
	// Date is the local date of a once campaign, "YYYY-MM-DD".
	Date string `json:"date,omitempty"`
	// Weekdays are "mon" to "sun" (weekly).
	Weekdays []string `json:"weekdays,omitempty"`
	// StartDate and EndDate bound occurrences, inclusive, local dates.
	StartDate string `json:"start_date,omitempty"`
	EndDate   string `json:"end_date,omitempty"`
	// TimeZone is an IANA name. Default: Asia/Seoul.
	TimeZone string `json:"time_zone,omitempty"`
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// parsed is a validated schedule.
type parsed struct {
	Schedule
	loc        *time.Location
	hour, min  int
	date       time.Time // once
	start, end time.Time // zero when open
	days       map[time.Weekday]bool
}

// ParseSchedule validates a schedule; errors name the field.
func ParseSchedule(raw json.RawMessage) (*parsed, error) {
	var s Schedule
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	p := &parsed{Schedule: s}
	zone := s.TimeZone
	if zone == "" {
		zone = "Asia/Seoul"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("schedule.time_zone: unknown time zone %q", zone)
	}
	p.loc = loc
	date := func(field, v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, nil
		}
		t, err := time.ParseInLocation(time.DateOnly, v, loc)
		if err != nil {
			return time.Time{}, fmt.Errorf("schedule.%s: want YYYY-MM-DD, got %q", field, v)
		}
		return t, nil
	}
	if p.start, err = date("start_date", s.StartDate); err != nil {
		return nil, err
	}
	if p.end, err = date("end_date", s.EndDate); err != nil {
		return nil, err
	}
	if !p.end.IsZero() && p.end.Before(p.start) {
		return nil, fmt.Errorf("schedule.end_date: %s is before start_date %s", s.EndDate, s.StartDate)
	}
	switch s.Kind {
	case Immediate:
		return p, nil
	case Once, Daily, Weekly:
	default:
		return nil, fmt.Errorf("schedule.kind: unknown kind %q (want immediate, once, daily or weekly)", s.Kind)
	}
	tod, err := time.Parse("15:04", s.Time)
	if err != nil {
		return nil, fmt.Errorf("schedule.time: want HH:MM, got %q", s.Time)
	}
	p.hour, p.min = tod.Hour(), tod.Minute()
	switch s.Kind {
	case Once:
		if p.date, err = date("date", s.Date); err != nil {
			return nil, err
		}
		if p.date.IsZero() {
			return nil, fmt.Errorf("schedule.date: required for a once campaign")
		}
	case Weekly:
		if len(s.Weekdays) == 0 {
			return nil, fmt.Errorf("schedule.weekdays: required for a weekly campaign")
		}
		p.days = map[time.Weekday]bool{}
		for i, d := range s.Weekdays {
			wd, ok := weekdays[strings.ToLower(d)]
			if !ok {
				return nil, fmt.Errorf("schedule.weekdays[%d]: unknown day %q (want mon..sun)", i, d)
			}
			p.days[wd] = true
		}
	}
	return p, nil
}

// Occurrences returns the occurrences in (from, to], in order. created is
// when the campaign was added (the occurrence of an immediate campaign).
func (p *parsed) Occurrences(created, from, to time.Time) []time.Time {
	if p.Kind == Immediate {
		if created.After(from) && !created.After(to) {
			return []time.Time{created}
		}
		return nil
	}
	var out []time.Time
	// Walk local days from the day before `from` (a time zone can put an
	// occurrence of the previous local day after `from`).
	f := from.In(p.loc)
	day := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, p.loc).AddDate(0, 0, -1)
	for !day.After(to.In(p.loc)) {
		at := time.Date(day.Year(), day.Month(), day.Day(), p.hour, p.min, 0, 0, p.loc)
		if at.After(from) && !at.After(to) && p.includes(day) {
			out = append(out, at)
		}
		day = day.AddDate(0, 0, 1)
	}
	return out
}

// includes reports whether a local day has an occurrence.
func (p *parsed) includes(day time.Time) bool {
	if !p.start.IsZero() && day.Before(p.start) {
		return false
	}
	if !p.end.IsZero() && day.After(p.end) {
		return false
	}
	switch p.Kind {
	case Once:
		return day.Equal(p.date)
	case Weekly:
		return p.days[day.Weekday()]
	}
	return true
}

// RequestID is the request_id of a campaign's occurrence: derived, so every
// scheduler computes the same one and the run ledger drops a second copy.
func RequestID(campaignID string, at time.Time) string {
	return "sched:" + campaignID + "@" + at.UTC().Format("2006-01-02T15:04:05Z")
}

package render

import (
	"strings"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	t.Parallel()
	seoulEvening := time.Date(2026, 11, 24, 18, 0, 0, 0, time.FixedZone("KST", 9*3600))
	seoulMidnight := time.Date(2026, 11, 24, 15, 30, 0, 0, time.UTC) // 2026-11-25 00:30 in Seoul
	cases := []struct {
		ref       time.Time
		src, want string
	}{
		{seoulEvening, `{{ "now" | date_add: "-1 day" | date: "%Y-%m-%d", "Asia/Seoul" }}`, "2026-11-23"},
		{seoulMidnight, `{{ "now" | date_add: "-1 day" | date: "%Y-%m-%d", "Asia/Seoul" }}`, "2026-11-24"},
		{seoulMidnight, `{{ "now" | date: "%Y-%m-%d %H:%M" }}`, "2026-11-24 15:30"},
		{seoulMidnight, `{{ "now" | date: "%Y-%m-%d %H:%M", "Asia/Seoul" }}`, "2026-11-25 00:30"},
		{seoulEvening, `{{ "now" | date_add: "+2 hours" | date: "%H:%M" }}`, "20:00"},
		{seoulEvening, `{{ "today" | date_add: "3 weeks" | date: "%Y-%m-%d" }}`, "2026-12-15"},
		{time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC), `{{ "now" | date_add: "-1 month" | date: "%Y-%m-%d" }}`, "2026-02-28"},
		{time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC), `{{ "now" | date_add: "1 year" | date: "%Y-%m-%d" }}`, "2029-02-28"},
		{seoulEvening, `{{ "2026-01-31" | date_add: "1 month" | date: "%Y-%m-%d" }}`, "2026-02-28"},
		{seoulEvening, `{{ "now" | date_add: "-90 seconds" | date: "%H:%M:%S" }}`, "17:58:30"},
		{time.Date(1999, 1, 2, 0, 0, 0, 0, time.UTC), `{{ "now" | date: "%Y" }}`, "1999"},
		{seoulEvening, `plain text`, "plain text"},
		{seoulEvening, `{{ 3 | plus: 4 }}`, "7"},
	}
	for _, c := range cases {
		got, err := New(c.ref).Render(c.src)
		if err != nil || got != c.want {
			t.Errorf("%s at %s: got %q, %v; want %q", c.src, c.ref, got, err, c.want)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	r := New(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	cases := map[string]string{
		`{{ "now" | date_add: "-1 fortnight" }}`:   `unknown unit`,
		`{{ "now" | date_add: "soon" }}`:           `malformed amount`,
		`{{ "now" | date: "%Y", "Mars/Olympus" }}`: `unknown time zone`,
		`{% if %}`:                                  `template`,
		`{{ "now" | no_such_filter }}`:              `no_such_filter`,
		`{{ "yesterday-ish" | date_add: "1 day" }}`: `not a date`,
	}
	for src, want := range cases {
		_, err := r.Render(src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want error containing %q", src, err, want)
		}
	}
}

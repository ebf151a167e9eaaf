package tz

import (
	"testing"
	"time"
)

// Names from user data: only exact IANA names are zones.
func TestValidName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"Asia/Seoul": true, "UTC": true, "America/Argentina/Buenos_Aires": true, "Etc/GMT+5": true, "Etc/GMT-14": true,
		"America/Port-au-Prince": true, "EST5EDT": true,
		"": false, "Local": false, "asia/seoul": false, "Asia/seoul": false, "/usr/share/zoneinfo/Asia/Seoul": false,
		"../../etc/passwd": false, "Asia/../Asia/Seoul": false, "Asia/Seoul/": false, "Asia//Seoul": false, "9": false,
		"posixrules": false, "zone.tab": false, "Asia/Seoul\x00": false, " Asia/Seoul": false,
		"A" + string(make([]byte, MaxNameBytes)): false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestCacheLoad(t *testing.T) {
	t.Parallel()
	c := NewCache(2)
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"Asia/Seoul", true}, {"Asia/Seoul", true}, {"Local", false}, {"ASIA/SEOUL", false}, {"Nowhere/Atlantis", false}, {"UTC", true}, {"Asia/Kolkata", true}} {
		loc, ok := c.Load(tc.name)
		if ok != tc.ok || ok && loc == nil {
			t.Errorf("Load(%q) = %v, %v; want ok %v", tc.name, loc, ok, tc.ok)
		}
	}
	if len(c.m) != 2 {
		t.Fatalf("cache holds %d names, want its bound 2", len(c.m))
	}
}

// Wall times that do not exist, or occur twice, in both hemispheres.
func TestWallTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		zone      string
		y         int
		m         time.Month
		d, hh, mm int
		want      string
	}{
		{"America/New_York", 2026, 3, 8, 2, 30, "2026-03-08T07:30:00Z"},    // gap 02:00-03:00: 03:30 EDT
		{"America/New_York", 2026, 11, 1, 1, 30, "2026-11-01T05:30:00Z"},   // twice: 01:30 EDT
		{"America/New_York", 2026, 11, 1, 2, 30, "2026-11-01T07:30:00Z"},   // once, after
		{"Europe/Berlin", 2026, 3, 29, 2, 30, "2026-03-29T01:30:00Z"},      // gap: 03:30 CEST
		{"Europe/Berlin", 2026, 10, 25, 2, 30, "2026-10-25T00:30:00Z"},     // twice: 02:30 CEST
		{"Australia/Sydney", 2026, 10, 4, 2, 30, "2026-10-03T16:30:00Z"},   // gap: 03:30 AEDT
		{"Australia/Sydney", 2026, 4, 5, 2, 30, "2026-04-04T15:30:00Z"},    // twice: 02:30 AEDT
		{"America/Santiago", 2026, 9, 6, 0, 30, "2026-09-06T04:30:00Z"},    // gap at midnight: 01:30 -03
		{"America/Santiago", 2026, 4, 4, 23, 30, "2026-04-05T02:30:00Z"},   // twice: 23:30 -03
		{"Asia/Kolkata", 2026, 11, 24, 9, 0, "2026-11-24T03:30:00Z"},       // +05:30
		{"Asia/Kathmandu", 2026, 11, 24, 9, 0, "2026-11-24T03:15:00Z"},     // +05:45
		{"Australia/Eucla", 2026, 11, 24, 9, 0, "2026-11-24T00:15:00Z"},    // +08:45
		{"Australia/Adelaide", 2026, 11, 24, 9, 0, "2026-11-23T22:30:00Z"}, // +10:30 (summer)
		{"Pacific/Kiritimati", 2026, 11, 24, 9, 0, "2026-11-23T19:00:00Z"}, // +14:00
		{"UTC", 2026, 12, 32, 9, 0, "2027-01-01T09:00:00Z"},                // day overflow
	} {
		loc, ok := Load(tc.zone)
		if !ok {
			t.Fatalf("load %s", tc.zone)
		}
		got := WallTime(tc.y, tc.m, tc.d, tc.hh, tc.mm, loc).UTC().Format(time.RFC3339)
		if got != tc.want {
			t.Errorf("%s %d-%02d-%02d %02d:%02d = %s, want %s", tc.zone, tc.y, tc.m, tc.d, tc.hh, tc.mm, got, tc.want)
		}
	}
}

func TestBase(t *testing.T) {
	t.Parallel()
	seoul, _ := Load("Asia/Seoul")
	kiri, _ := Load("Pacific/Kiritimati")
	ref := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC) // 09:00 in Seoul, 14:00 in Kiritimati
	for _, tc := range []struct {
		loc     *time.Location
		hh, mm  int
		nextDay bool
		want    string
		passed  bool
	}{
		{seoul, 9, 0, true, "2026-11-24T00:00:00Z", false}, // equal is not passed
		{seoul, 8, 59, true, "2026-11-24T23:59:00Z", true}, // passed: the next day
		{seoul, 8, 59, false, "2026-11-23T23:59:00Z", true},
		{kiri, 9, 0, true, "2026-11-24T19:00:00Z", true}, // the 25th there
		{kiri, 15, 0, false, "2026-11-24T01:00:00Z", false},
	} {
		at, passed := Base(ref, tc.hh, tc.mm, tc.loc, tc.nextDay)
		if got := at.UTC().Format(time.RFC3339); got != tc.want || passed != tc.passed {
			t.Errorf("%s %02d:%02d next %v: %s %v, want %s %v", tc.loc, tc.hh, tc.mm, tc.nextDay, got, passed, tc.want, tc.passed)
		}
	}
}

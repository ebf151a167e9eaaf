// Package tz resolves IANA time zone names and wall-clock times in them for
// per-recipient delivery times (docs/delivery.md).
//
// Names come from user data, so they are checked before Go's
// time.LoadLocation sees them: LoadLocation also accepts "Local" and "",
// reads whatever file a name leads to under the zone directory (a name with
// ".." leads out of it), and on a case-insensitive file system accepts
// "asia/seoul". A name is a zone only when it has the shape of an IANA name
// (components of [A-Za-z0-9_+-], each starting with a capital letter, at
// most MaxNameBytes) and then loads.
//
// The rules come from the host's zone database where it has one, else from
// the copy of the IANA database linked into the binary (time/tzdata,
// imported by cmd/segpub): Go's own order. The release image (distroless)
// has no zone database, so production always uses the linked copy, which is
// the Go release's; docs/delivery.md says so.
package tz

import (
	"sync"
	"time"
)

// MaxNameBytes bounds a zone name (the longest IANA name has 32 bytes).
const MaxNameBytes = 64

// ValidName reports whether name has the shape of an IANA zone name. It is
// what keeps LoadLocation from reading anything but the zone database.
func ValidName(name string) bool {
	if name == "" || len(name) > MaxNameBytes || name == "Local" {
		return false
	}
	start := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case start:
			if c < 'A' || c > 'Z' {
				return false
			}
			start = false
		case c == '/':
			start = true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '+', c == '-':
		default:
			return false
		}
	}
	return !start
}

// Load returns the zone of an IANA name, or false when name is not one.
func Load(name string) (*time.Location, bool) {
	if !ValidName(name) {
		return nil, false
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, false
	}
	return loc, true
}

// DefaultCacheSize is how many names a Cache keeps (the IANA database has
// about 600).
const DefaultCacheSize = 2048

// Cache remembers the zones of names (LoadLocation reads and parses a file
// each time). Names that are not zones are remembered too, so bad data
// costs no more than good. It holds at most its size; past that, names are
// loaded without being kept. Safe for concurrent use.
type Cache struct {
	mu   sync.RWMutex
	m    map[string]*time.Location
	size int
}

// NewCache returns a cache of at most size names (DefaultCacheSize when
// size <= 0).
func NewCache(size int) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Cache{m: map[string]*time.Location{}, size: size}
}

// Load is the package's Load, cached.
func (c *Cache) Load(name string) (*time.Location, bool) {
	c.mu.RLock()
	loc, ok := c.m[name]
	c.mu.RUnlock()
	if ok {
		return loc, loc != nil
	}
	loc, valid := Load(name)
	c.mu.Lock()
	if len(c.m) < c.size {
		c.m[name] = loc
	}
	c.mu.Unlock()
	return loc, valid
}

// WallTime is the instant of the wall-clock time y-m-d hh:mm in loc
// (d may overflow the month; it is normalized). A wall time that does not
// exist that day (clocks jump forward over it) is read with the UTC offset
// in force before the jump: 02:30 in a gap from 02:00 to 03:00 is 03:30
// after it. A wall time that occurs twice (clocks fall back) is the earlier
// instant. Go's time.Date leaves both cases unspecified, so they are
// resolved here.
func WallTime(y int, m time.Month, d, hh, mm int, loc *time.Location) time.Time {
	// w is the wall time's seconds as if it were UTC; an instant u shows
	// that wall time when u + offset(u) = w.
	w := time.Date(y, m, d, hh, mm, 0, 0, time.UTC).Unix()
	// Offsets in use are within ±26 hours, so a day either side of w is
	// before and after any transition that touches this wall time.
	before := offset(w-86400, loc)
	after := offset(w+86400, loc)
	best, found := int64(0), false
	for _, o := range [...]int64{before, after, offset(w, loc)} {
		u := w - o
		if offset(u, loc) != o {
			continue
		}
		if !found || u < best {
			best, found = u, true
		}
	}
	if !found {
		// In a gap: the offset before the jump.
		best = w - before
	}
	return time.Unix(best, 0).In(loc)
}

func offset(unix int64, loc *time.Location) int64 {
	_, off := time.Unix(unix, 0).In(loc).Zone()
	return int64(off)
}

// Base is a recipient's base time (docs/delivery.md): hh:mm on the
// reference time's date in loc, and whether that instant is earlier than
// ref (passed). With nextDay, a passed time moves to hh:mm on the next day.
func Base(ref time.Time, hh, mm int, loc *time.Location, nextDay bool) (at time.Time, passed bool) {
	y, mo, d := ref.In(loc).Date()
	at = WallTime(y, mo, d, hh, mm, loc)
	if !at.Before(ref) {
		return at, false
	}
	if !nextDay {
		return at, true
	}
	return WallTime(y, mo, d+1, hh, mm, loc), true
}

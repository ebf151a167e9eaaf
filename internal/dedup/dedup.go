// Package dedup remembers which destinations a run has published, in 8 bytes
// per destination: an open-addressing set of 64-bit fingerprints. A Go map
// of strings would cost ten times that on a campaign of millions.
package dedup

// Set is a set of non-zero 64-bit fingerprints. Its zero value is ready to
// use. It is not safe for concurrent use.
type Set struct {
	slots []uint64
	n     int
}

// New returns a set sized for about n fingerprints, so a run whose audience
// size is known does not rehash as it grows.
func New(n int) *Set {
	s := &Set{}
	if n > 0 {
		s.slots = make([]uint64, capacityFor(n))
	}
	return s
}

func capacityFor(n int) int {
	c := 1024
	for c*3/4 < n {
		c <<= 1
	}
	return c
}

// Len returns the number of fingerprints in the set.
func (s *Set) Len() int { return s.n }

// Add inserts fp and reports whether it was absent. Zero marks an empty slot,
// so a zero fingerprint is stored as 1; the extra collision chance is 2^-64.
func (s *Set) Add(fp uint64) bool {
	if fp == 0 {
		fp = 1
	}
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	if !insert(s.slots, fp) {
		return false
	}
	s.n++
	return true
}

// Has reports whether fp is in the set.
func (s *Set) Has(fp uint64) bool {
	if fp == 0 {
		fp = 1
	}
	if len(s.slots) == 0 {
		return false
	}
	mask := uint64(len(s.slots) - 1)
	for i := mix(fp) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			return false
		case fp:
			return true
		}
	}
}

func insert(slots []uint64, fp uint64) bool {
	mask := uint64(len(slots) - 1)
	for i := mix(fp) & mask; ; i = (i + 1) & mask {
		switch slots[i] {
		case 0:
			slots[i] = fp
			return true
		case fp:
			return false
		}
	}
}

func (s *Set) grow() {
	next := make([]uint64, max(1024, len(s.slots)*2))
	for _, fp := range s.slots {
		if fp != 0 {
			insert(next, fp)
		}
	}
	s.slots = next
}

// mix spreads fingerprints that are not uniformly random (callers may pass
// any 64-bit value) over the table; SHA-256 prefixes pass through unharmed.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

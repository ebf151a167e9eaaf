// Package dedup remembers which destinations a run has published, in about
// 10 bytes per destination: an open-addressing set of 64-bit fingerprints
// filled to 85%. A Go map of strings would cost ten times that on a
// campaign of millions. The table's size is any number of slots (a
// fingerprint's home slot is a multiply-shift of its hash), so it grows by
// half rather than doubling, and a set sized from the audience estimate
// never grows at all.
package dedup

import "math/bits"

// Set is a set of non-zero 64-bit fingerprints. Its zero value is ready to
// use. It is not safe for concurrent use.
type Set struct {
	slots []uint64
	free  func()
	n     int
}

// New returns a set sized for about n fingerprints, so a run whose audience
// size is known does not rehash as it grows.
func New(n int) *Set {
	s := &Set{}
	if n > 0 {
		s.slots, s.free = allocSlots(capacityFor(n))
	}
	return s
}

// Release returns the set's memory at once; the set is empty afterwards.
// A set dropped without Release gives its memory back when the garbage
// collector finds it unreachable.
func (s *Set) Release() {
	if s.free != nil {
		s.free()
	}
	s.slots, s.free, s.n = nil, nil, 0
}

// Load factor 17/20.
func capacityFor(n int) int { return max(1024, n/17*20+20) }

func full(n, slots int) bool { return n*20 > slots*17 }

// Len returns the number of fingerprints in the set.
func (s *Set) Len() int { return s.n }

// Add inserts fp and reports whether it was absent. Zero marks an empty slot,
// so a zero fingerprint is stored as 1; the extra collision chance is 2^-64.
func (s *Set) Add(fp uint64) bool {
	if fp == 0 {
		fp = 1
	}
	if full(s.n+1, len(s.slots)) {
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
	for i := home(fp, len(s.slots)); ; i = next(i, len(s.slots)) {
		switch s.slots[i] {
		case 0:
			return false
		case fp:
			return true
		}
	}
}

// home maps a fingerprint to a slot in [0, n) without a division.
func home(fp uint64, n int) int {
	hi, _ := bits.Mul64(mix(fp), uint64(n))
	return int(hi)
}

func next(i, n int) int {
	if i++; i == n {
		return 0
	}
	return i
}

func insert(slots []uint64, fp uint64) bool {
	for i := home(fp, len(slots)); ; i = next(i, len(slots)) {
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
	grown, free := allocSlots(max(1024, len(s.slots)*3/2))
	for _, fp := range s.slots {
		if fp != 0 {
			insert(grown, fp)
		}
	}
	if s.free != nil {
		s.free()
	}
	s.slots, s.free = grown, free
}

// mix spreads fingerprints that are not uniformly random (callers may pass
// any 64-bit value) over the table; SHA-256 prefixes pass through unharmed.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

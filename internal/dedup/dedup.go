// Package dedup remembers which destinations a run has published, in about
// 10 bytes per destination: open-addressing tables of 64-bit fingerprints
// filled to 85%. A Go map of strings would cost ten times that on a
// campaign of millions. A set sized from the audience estimate never grows;
// a large one the estimate undercounts grows by a table of half its size,
// and the tables it has stay as they are: growing never holds a large
// table and its rehashed copy at once (two and a half times the memory,
// at the moment the set is largest).
package dedup

import "math/bits"

// Set is a set of non-zero 64-bit fingerprints. Its zero value is ready to
// use. It is not safe for concurrent use.
type Set struct {
	// tables: the last takes new fingerprints, the others are full.
	tables []table
	n      int
}

type table struct {
	slots []uint64
	free  func()
	n     int
}

// New returns a set sized for about n fingerprints, so a run whose audience
// size is known does not grow it.
func New(n int) *Set {
	s := &Set{}
	if n > 0 {
		s.add(capacityFor(n))
	}
	return s
}

func (s *Set) add(slots int) {
	t := table{}
	t.slots, t.free = allocSlots(slots)
	s.tables = append(s.tables, t)
}

// Release returns the set's memory at once; the set is empty afterwards.
// A set dropped without Release gives its memory back when the garbage
// collector finds it unreachable.
func (s *Set) Release() {
	for _, t := range s.tables {
		if t.free != nil {
			t.free()
		}
	}
	s.tables, s.n = nil, 0
}

// Load factor 17/20.
func capacityFor(n int) int { return max(1024, n/17*20+20) }

func full(n, slots int) bool { return n*20 > slots*17 }

// Len returns the number of fingerprints in the set.
func (s *Set) Len() int { return s.n }

// Slots returns the number of slots of all the set's tables (8 bytes each).
func (s *Set) Slots() int {
	n := 0
	for _, t := range s.tables {
		n += len(t.slots)
	}
	return n
}

// Add inserts fp and reports whether it was absent. Zero marks an empty slot,
// so a zero fingerprint is stored as 1; the extra collision chance is 2^-64.
func (s *Set) Add(fp uint64) bool {
	if fp == 0 {
		fp = 1
	}
	if len(s.tables) == 0 {
		s.add(1024)
	} else if last := &s.tables[len(s.tables)-1]; full(last.n+1, len(last.slots)) {
		s.grow()
	}
	k := len(s.tables) - 1
	for _, t := range s.tables[:k] {
		if has(t.slots, fp) {
			return false
		}
	}
	if !insert(s.tables[k].slots, fp) {
		return false
	}
	s.tables[k].n++
	s.n++
	return true
}

// Has reports whether fp is in the set.
func (s *Set) Has(fp uint64) bool {
	if fp == 0 {
		fp = 1
	}
	for _, t := range s.tables {
		if has(t.slots, fp) {
			return true
		}
	}
	return false
}

func has(slots []uint64, fp uint64) bool {
	for i := home(fp, len(slots)); ; i = next(i, len(slots)) {
		switch slots[i] {
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

// rehashBelow is the size under which a set grows by rehashing into one
// table half again as large (a few megabytes held twice, briefly), so
// that a set started small does not end as dozens of tables to probe.
const rehashBelow = 1 << 20

// grow makes room for more fingerprints: a small set rehashes into one
// larger table; a large one adds a table of half its slots.
func (s *Set) grow() {
	total := s.Slots()
	if total >= rehashBelow {
		s.add(total / 2)
		return
	}
	old := s.tables
	s.tables = nil
	s.add(max(1024, total*3/2))
	for _, t := range old {
		for _, fp := range t.slots {
			if fp != 0 {
				insert(s.tables[0].slots, fp)
			}
		}
		s.tables[0].n += t.n
		if t.free != nil {
			t.free()
		}
	}
}

// mix spreads fingerprints that are not uniformly random (callers may pass
// any 64-bit value) over the table; SHA-256 prefixes pass through unharmed.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

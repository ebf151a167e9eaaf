package dedup

import (
	"math/rand/v2"
	"testing"
)

func TestSet(t *testing.T) {
	t.Parallel()
	s := New(0)
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[uint64]bool{}
	for i := 0; i < 200_000; i++ {
		// Few distinct values, so many re-adds; includes 0 and 1, which
		// share a slot by design.
		fp := r.Uint64N(150_000)
		if fp == 0 {
			fp = 1
		}
		if got := s.Add(fp); got == seen[fp] {
			t.Fatalf("Add(%d) = %v after %d adds, want %v", fp, got, i, !seen[fp])
		}
		seen[fp] = true
	}
	if s.Len() != len(seen) {
		t.Fatalf("Len %d, want %d", s.Len(), len(seen))
	}
	for fp := range seen {
		if !s.Has(fp) {
			t.Fatalf("lost %d", fp)
		}
	}
	if s.Has(1 << 40) {
		t.Fatal("has a value never added")
	}
}

func TestZeroFingerprint(t *testing.T) {
	t.Parallel()
	var s Set
	if !s.Add(0) || s.Add(1) || !s.Has(0) {
		t.Fatal("0 is stored as 1")
	}
}

func BenchmarkAdd(b *testing.B) {
	s := New(b.N)
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		s.Add(r.Uint64())
	}
}

// A set sized for its audience never grows, and costs under 10 bytes per
// destination; a large one that outgrows its size adds a table of half its
// slots and keeps the one it has (no rehash holding both); a small one
// rehashes into one table half again as large.
func TestSizedSetDoesNotGrow(t *testing.T) {
	t.Parallel()
	const n = 1_000_000
	s := New(n)
	slots := s.Slots()
	r := rand.New(rand.NewPCG(3, 4))
	for s.Len() < n {
		s.Add(r.Uint64())
	}
	if s.Slots() != slots || len(s.tables) != 1 {
		t.Fatalf("grew from %d to %d slots", slots, s.Slots())
	}
	if perDest := float64(s.Slots()*8) / n; perDest > 10 {
		t.Fatalf("%.1f bytes per destination", perDest)
	}
	first := &s.tables[0].slots[0]
	for s.Len() < n*3/2 {
		s.Add(r.Uint64())
	}
	if len(s.tables) != 2 || s.Slots() != slots+slots/2 || &s.tables[0].slots[0] != first {
		t.Fatalf("outgrown: %d tables, %d slots, first table moved %v; want the first kept and half as many slots added",
			len(s.tables), s.Slots(), &s.tables[0].slots[0] != first)
	}
	var g Set
	g.Add(1)
	before := g.Slots()
	for i := uint64(2); g.Len() < before; i++ {
		g.Add(i)
	}
	if len(g.tables) != 1 || g.Slots() != before*3/2 {
		t.Fatalf("small set: %d tables of %d slots from %d, want one half again as large", len(g.tables), g.Slots(), before)
	}
}

// A large set (mapped outside the heap) works across growth and release.
func TestLargeSetRelease(t *testing.T) {
	t.Parallel()
	s := New(200_000)
	for i := uint64(1); i <= 400_000; i++ { // grows past its size twice
		if !s.Add(i * 0x9e3779b97f4a7c15) {
			t.Fatalf("Add %d reported a duplicate", i)
		}
	}
	for i := uint64(1); i <= 400_000; i++ {
		if !s.Has(i * 0x9e3779b97f4a7c15) {
			t.Fatalf("lost %d", i)
		}
	}
	s.Release()
	if s.Len() != 0 || s.Has(0x9e3779b97f4a7c15) {
		t.Fatal("released set still holds fingerprints")
	}
	if !s.Add(7) || !s.Has(7) {
		t.Fatal("a released set is not reusable")
	}
}

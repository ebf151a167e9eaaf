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
// destination (the zero set grows by half, never doubling).
func TestSizedSetDoesNotGrow(t *testing.T) {
	t.Parallel()
	const n = 1_000_000
	s := New(n)
	slots := len(s.slots)
	r := rand.New(rand.NewPCG(3, 4))
	for s.Len() < n {
		s.Add(r.Uint64())
	}
	if len(s.slots) != slots {
		t.Fatalf("grew from %d to %d slots", slots, len(s.slots))
	}
	if perDest := float64(len(s.slots)*8) / n; perDest > 10 {
		t.Fatalf("%.1f bytes per destination", perDest)
	}
	var g Set
	g.Add(1)
	before := len(g.slots)
	for i := uint64(2); g.Len() < before; i++ {
		g.Add(i)
	}
	if len(g.slots) != before*3/2 {
		t.Fatalf("grew from %d to %d slots, want half again", before, len(g.slots))
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

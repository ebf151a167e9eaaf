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

//go:build unix

package flock

import (
	"path/filepath"
	"testing"
)

// A held lock keeps every other open of the file out, in this process as in
// another, until it is released.
func TestTryLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.lock")
	a, err := TryLock(path)
	if err != nil || a == nil {
		t.Fatalf("first lock: %v %v", a, err)
	}
	if b, err := TryLock(path); err != nil || b != nil {
		t.Fatalf("second lock while held: %v %v", b, err)
	}
	a.Release()
	b, err := Acquire(path)
	if err != nil || b == nil {
		t.Fatalf("lock after release: %v %v", b, err)
	}
	b.Release()
	b.Release() // twice is harmless
}

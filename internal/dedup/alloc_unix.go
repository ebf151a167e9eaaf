//go:build linux || darwin || freebsd

package dedup

import (
	"runtime"
	"syscall"
	"unsafe"
)

// allocSlots maps the table outside the Go heap. A table of millions of
// slots allocated with make would count as live heap, and the garbage
// collector lets the heap grow to twice its live size before collecting:
// an 100 MB table would let another 100 MB of garbage pile up. Mapped
// memory is also zeroed by the kernel and returned to it at once.
func allocSlots(n int) (slots []uint64, free func()) {
	if n < 1<<16 {
		return make([]uint64, n), func() {}
	}
	b, err := syscall.Mmap(-1, 0, n*8, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]uint64, n), func() {}
	}
	// A set dropped without Release is unmapped when the collector finds
	// its anchor unreachable; free is the only thing that holds it.
	anchor := new(int)
	cleanup := runtime.AddCleanup(anchor, func(b []byte) { _ = syscall.Munmap(b) }, b)
	free = func() {
		cleanup.Stop()
		_ = syscall.Munmap(b)
		runtime.KeepAlive(anchor)
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), n), free
}

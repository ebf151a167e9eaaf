//go:build !(linux || darwin || freebsd)

package dedup

func allocSlots(n int) (slots []uint64, free func()) { return make([]uint64, n), func() {} }

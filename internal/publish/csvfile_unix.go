//go:build unix

package publish

import "syscall"

// nonBlock opens a FIFO without waiting for a writer, so it can be refused
// after fstat instead of blocking the worker.
const nonBlock = syscall.O_NONBLOCK

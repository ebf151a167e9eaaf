//go:build !unix

// Package flock takes exclusive advisory locks on files. This platform has
// no flock(2): every lock is granted, so processes sharing a file are not
// kept apart.
package flock

// Lock is a held lock.
type Lock struct{}

// TryLock grants the lock.
func TryLock(string) (*Lock, error) { return &Lock{}, nil }

// Acquire grants the lock.
func Acquire(string) (*Lock, error) { return &Lock{}, nil }

// Release does nothing.
func (*Lock) Release() {}

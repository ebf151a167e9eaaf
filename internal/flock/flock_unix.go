//go:build unix

// Package flock takes exclusive advisory locks on files (flock(2)), for
// what several segpub processes of one machine share: an embedded
// JetStream's data directory, a file:// output. The kernel drops a lock
// when its process dies, so a crash never leaves a lock behind.
package flock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Lock is a held lock.
type Lock struct{ f *os.File }

// TryLock takes the lock on path (creating the file) without waiting; nil,
// nil means another holder has it: another process, or another open of the
// file in this one.
func TryLock(path string) (*Lock, error) {
	return lock(path, syscall.LOCK_EX|syscall.LOCK_NB)
}

// Acquire takes the lock on path (creating the file), waiting for it.
func Acquire(path string) (*Lock, error) {
	return lock(path, syscall.LOCK_EX)
}

func lock(path string, how int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock; a nil Lock is fine.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}

// Package lifecycle is the start and stop of segpub's background services
// (scheduler, cleaner): one goroutine started once, stopped by cancelling
// its context, and waited for until the caller's deadline.
package lifecycle

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrStarted is returned by a second Start.
var ErrStarted = errors.New("already started")

// Loop runs one goroutine between Start and Stop. The zero value is ready.
type Loop struct {
	mu   sync.Mutex
	stop context.CancelFunc
	done chan struct{}
}

// Start runs fn in a goroutine with a context that Stop cancels.
func (l *Loop) Start(ctx context.Context, fn func(ctx context.Context)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return ErrStarted
	}
	ctx, l.stop = context.WithCancel(ctx)
	l.done = make(chan struct{})
	done := l.done
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return nil
}

// Stop cancels the goroutine's context and waits for it to return, until
// ctx ends. Stopping a loop never started does nothing.
func (l *Loop) Stop(ctx context.Context) error {
	l.mu.Lock()
	done, stop := l.done, l.stop
	l.mu.Unlock()
	if done == nil {
		return nil
	}
	stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Every calls fn now and then every interval until ctx ends.
func Every(ctx context.Context, interval time.Duration, fn func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

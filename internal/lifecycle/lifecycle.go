// Package lifecycle is the start and stop of segpub's background services
// (scheduler, cleaner, the worker's job loops): work started once in a
// goroutine, stopped in two steps. A soft stop asks it to take no more
// work and waits for it until the caller's deadline; a hard stop then
// cancels the work still running and, for a service that hands its work
// back, waits a bounded while more.
package lifecycle

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrStarted is returned by a second Start.
var ErrStarted = errors.New("already started")

// ErrAbandoned is returned by Shutdown when the work did not return within
// its grace after the hard stop.
var ErrAbandoned = errors.New("work ignored cancellation and was abandoned")

// Loop runs one goroutine between Start and Stop. The zero value is ready.
type Loop struct {
	mu   sync.Mutex
	soft context.CancelFunc
	hard context.CancelFunc
	done chan struct{}
}

// Start runs fn in a goroutine with a context that Stop cancels.
func (l *Loop) Start(ctx context.Context, fn func(ctx context.Context)) error {
	return l.StartWork(ctx, func(soft, _ context.Context) { fn(soft) })
}

// StartWork runs fn in a goroutine with two contexts: soft ends at the soft
// stop (take no more work), or when ctx ends; hard ends only at the hard
// stop (give up the work in hand), so work runs on after ctx ends until
// the caller's Shutdown deadline.
func (l *Loop) StartWork(ctx context.Context, fn func(soft, hard context.Context)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return ErrStarted
	}
	soft, cancelSoft := context.WithCancel(ctx)
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	l.soft, l.hard = cancelSoft, cancelHard
	l.done = make(chan struct{})
	done := l.done
	go func() {
		defer close(done)
		fn(soft, hard)
	}()
	return nil
}

// Stop stops softly and waits for the goroutine to return, until ctx ends.
// Stopping a loop never started does nothing.
func (l *Loop) Stop(ctx context.Context) error {
	done, soft, _ := l.get()
	if done == nil {
		return nil
	}
	soft()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops softly and waits for the goroutine to return until ctx
// ends; then it stops hard and waits at most grace more. It returns nil
// when the goroutine returned before ctx ended, ctx.Err() when it returned
// after the hard stop, and ErrAbandoned when it had not returned within
// grace: the caller can exit, leaving it behind.
func (l *Loop) Shutdown(ctx context.Context, grace time.Duration) error {
	err := l.Stop(ctx)
	if err == nil {
		return nil
	}
	done, _, hard := l.get()
	hard()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return err
	case <-t.C:
		return ErrAbandoned
	}
}

func (l *Loop) get() (chan struct{}, context.CancelFunc, context.CancelFunc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done, l.soft, l.hard
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

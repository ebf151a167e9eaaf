package lifecycle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// Start runs the function once; a second Start is refused; Stop cancels
// it and waits for it, or gives up when its own context ends first.
func TestLoop(t *testing.T) {
	t.Parallel()
	var l Loop
	if err := l.Stop(context.Background()); err != nil {
		t.Fatalf("stop before start: %v", err)
	}
	var ticks atomic.Int64
	release := make(chan struct{})
	err := l.Start(context.Background(), func(ctx context.Context) {
		Every(ctx, time.Millisecond, func(context.Context) { ticks.Add(1) })
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background(), func(context.Context) {}); !errors.Is(err, ErrStarted) {
		t.Fatalf("second start: %v", err)
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Stop(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop while the loop still runs: %v", err)
	}
	close(release)
	if err := l.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if ticks.Load() == 0 {
		t.Fatal("Every never called its function")
	}
}

// Shutdown stops softly, then hard when its context ends; work that
// returns on the hard stop is waited for, work that ignores it is
// abandoned after the grace.
func TestShutdown(t *testing.T) {
	t.Parallel()
	var l Loop
	if err := l.Shutdown(context.Background(), time.Second); err != nil {
		t.Fatalf("shutdown before start: %v", err)
	}
	softEnded := make(chan struct{})
	err := l.StartWork(context.Background(), func(soft, hard context.Context) {
		<-soft.Done()
		close(softEnded)
		<-hard.Done()
	})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Shutdown(short, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown of work that returns when stopped hard: %v", err)
	}
	select {
	case <-softEnded:
	default:
		t.Fatal("the soft stop never reached the work")
	}

	var stuck Loop
	release := make(chan struct{})
	defer close(release)
	if err := stuck.StartWork(context.Background(), func(_, _ context.Context) { <-release }); err != nil {
		t.Fatal(err)
	}
	short2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := stuck.Shutdown(short2, 10*time.Millisecond); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("shutdown of work that ignores it: %v", err)
	}

	// Work done before the deadline: nil.
	var quick Loop
	if err := quick.StartWork(context.Background(), func(soft, _ context.Context) { <-soft.Done() }); err != nil {
		t.Fatal(err)
	}
	if err := quick.Shutdown(context.Background(), 0); err != nil {
		t.Fatalf("shutdown of work that returns when stopped softly: %v", err)
	}
}

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

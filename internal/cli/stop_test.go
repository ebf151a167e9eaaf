package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/flock"
)

// SIGTERM stops serve within its grace whatever a job is doing: here the
// job is blocked in a system call (waiting for a file lock another process
// holds on its channel output), which no cancellation reaches. serve abandons it and
// exits; the job's message is redelivered to the next worker.
func TestServeStopsWithStuckJob(t *testing.T) {
	t.Parallel()
	requestID, jobPath := seededJob(t)
	suffix := strings.TrimPrefix(requestID, "e2e-")
	out := t.TempDir()
	// Another process holds the output's manifest lock: the job's output
	// waits in flock(2), which no cancellation ends.
	held, err := flock.TryLock(filepath.Join(out, "email.ndjson.runs"))
	if err != nil || held == nil {
		t.Fatalf("lock: %v", err)
	}
	t.Cleanup(held.Release)
	env := serviceEnv(map[string]string{
		"SEGPUB_JOB_QUEUE_URL":  "embedded:?stream=ST_" + suffix + "&subject=st." + suffix,
		"SEGPUB_CHANNEL_URL":    "file://" + out + "/{channel}.ndjson",
		"SEGPUB_DATA_DIR":       t.TempDir(),
		"SEGPUB_SHUTDOWN_GRACE": "1s",
	})
	if code := Main(context.Background(), []string{"submit", "--job", string(jobPath)}, env); code != ExitOK {
		t.Fatalf("submit: %s", env.Stderr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"serve", "--listen", "", "--scheduler=false"}, env) }()
	// Wait until the job is inside the output's open.
	deadline := time.Now().Add(60 * time.Second)
	buf := make([]byte, 1<<20)
	for !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("filesink.withManifest")) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the job never reached its output: %s", env.Stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel() // SIGTERM
	select {
	case code := <-done:
		if code != ExitFailure || !strings.Contains(env.Stderr.(*syncBuffer).String(), "exiting with jobs still running") {
			t.Fatalf("serve exited %d: %s", code, env.Stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop with a job stuck in a system call")
	}
}

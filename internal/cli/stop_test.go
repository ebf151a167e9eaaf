package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGTERM stops serve within its grace whatever a job is doing: here the
// job is blocked in a system call (opening a FIFO nobody reads, as its
// channel output), which no cancellation reaches. serve abandons it and
// exits; the job's message is redelivered to the next worker.
func TestServeStopsWithStuckJob(t *testing.T) {
	t.Parallel()
	requestID, jobPath := seededJob(t)
	suffix := strings.TrimPrefix(requestID, "e2e-")
	out := t.TempDir()
	fifo := filepath.Join(out, "email.ndjson")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A reader lets the abandoned job go on (and end).
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			go func() { _, _ = io.Copy(io.Discard, f); f.Close() }()
		}
	})
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
	for !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("filesink.(*Sink).file")) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the job never reached its output: %s", env.Stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel() // SIGTERM
	select {
	case code := <-done:
		if code != ExitFailure || !strings.Contains(env.Stderr.(*bytes.Buffer).String(), "exiting with jobs still running") {
			t.Fatalf("serve exited %d: %s", code, env.Stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop with a job stuck in a system call")
	}
}

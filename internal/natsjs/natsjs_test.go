package natsjs

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/segpub/segpub/internal/flock"
)

type connected struct {
	nc  *nats.Conn
	err error
}

// connectAsync runs c.Connect in the background, as a second process's
// submit would while serve starts.
func connectAsync(c *Connector, dir string) <-chan connected {
	done := make(chan connected, 1)
	go func() {
		conn, err := c.Connect(context.Background(), "embedded://"+dir)
		if err != nil {
			done <- connected{err: err}
			return
		}
		done <- connected{nc: conn.NC}
	}()
	return done
}

// startServer starts a standalone JetStream server, standing for the one a
// serve process is starting on dir.
func startServer(t *testing.T, token string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		Authorization: token})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("test server did not start")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// While another process holds the directory's lock but has not yet
// published its URL (its server is still recovering), Connect waits and
// joins that server: it never starts a second server on the directory.
// This is how `segpub submit` lost a job submitted while `serve` started.
func TestJoinsServerThatIsStarting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	held, err := flock.TryLock(filepath.Join(dir, lockFile))
	if err != nil || held == nil {
		t.Fatalf("lock: %v %v", held, err)
	}
	defer held.Release()

	c := &Connector{}
	defer c.Close()
	done := connectAsync(c, dir)
	// The other process is still starting: give Connect the time it took
	// submit to start its own server before (this is a window, not an
	// assertion on speed).
	time.Sleep(300 * time.Millisecond)
	srv := startServer(t, "t0ken")
	if err := os.WriteFile(filepath.Join(dir, tokenFile), []byte("t0ken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, urlFile), []byte(srv.ClientURL()), 0o600); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	if id := got.nc.ConnectedServerId(); id != srv.ID() {
		t.Fatalf("connected to server %s, want the serving process's %s", id, srv.ID())
	}
	c.mu.Lock()
	own := len(c.embedded)
	c.mu.Unlock()
	if own != 0 {
		t.Fatalf("started %d embedded servers of its own on a served directory", own)
	}
}

// The process that serves a directory holds its lock until Close, and a
// server.url left by a process that died is not joined.
func TestServerHoldsDirectoryLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, urlFile), []byte("nats://127.0.0.1:1"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	c := &Connector{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	conn, err := c.Connect(context.Background(), "embedded://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	if !conn.Embedded {
		t.Error("an embedded: connection is not marked Embedded")
	}
	if l, err := flock.TryLock(filepath.Join(dir, lockFile)); err != nil || l != nil {
		l.Release()
		t.Fatalf("lock of a served directory was free (%v)", err)
	}
	// A second connector (another process) joins the first one's server.
	c2 := &Connector{}
	defer c2.Close()
	conn2, err := c2.Connect(context.Background(), "embedded://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := conn.NC.ConnectedServerId(), conn2.NC.ConnectedServerId(); a != b {
		t.Fatalf("second process on server %s, first on %s", b, a)
	}
	// Start-up says what it does before the (possibly long) recovery.
	text := logs.String()
	if i, j := strings.Index(text, "starting embedded JetStream"), strings.Index(text, "embedded JetStream started"); i < 0 || j < i || !strings.Contains(text, "stored_bytes=") {
		t.Errorf("start-up logs:\n%s", text)
	}
	c.Close()
	l, err := flock.TryLock(filepath.Join(dir, lockFile))
	if err != nil || l == nil {
		t.Fatalf("lock still held after Close (%v)", err)
	}
	l.Release()
}

// When the process holding the lock goes away without serving, a waiting
// Connect serves the directory itself.
func TestServesWhenHolderLeaves(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	held, err := flock.TryLock(filepath.Join(dir, lockFile))
	if err != nil || held == nil {
		t.Fatalf("lock: %v %v", held, err)
	}
	c := &Connector{}
	defer c.Close()
	done := connectAsync(c, dir)
	held.Release()
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	c.mu.Lock()
	own := len(c.embedded)
	c.mu.Unlock()
	if own != 1 {
		t.Fatalf("%d embedded servers, want this process's own", own)
	}
}

func TestJoinTimeoutValidated(t *testing.T) {
	t.Parallel()
	c := &Connector{JoinTimeout: -time.Second}
	if _, err := c.Connect(context.Background(), "embedded://"+t.TempDir()); err == nil || !strings.Contains(err.Error(), "JoinTimeout") {
		t.Fatalf("got %v, want an error naming JoinTimeout", err)
	}
}

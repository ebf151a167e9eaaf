package pgtimeout

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/dbtest"
)

func connect(t *testing.T, url string, timeout time.Duration) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	Apply(&cfg.Config, timeout)
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err == nil {
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
	}
	return conn, err
}

// A server that thinks longer than the timeout before answering ends the
// call with ErrStalled and a closed connection, not a hang.
func TestSilentServer(t *testing.T) {
	t.Parallel()
	conn, err := connect(t, dbtest.URL(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var one int
	err = conn.QueryRow(context.Background(), `SELECT 1 FROM pg_sleep(3)`).Scan(&one)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("got %v, want ErrStalled", err)
	}
	if !conn.IsClosed() {
		t.Fatal("a stalled connection stays open")
	}
}

// A peer that accepts the connection and then says nothing (a hung proxy)
// fails the connect with ErrStalled.
func TestSilentPeer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	_, err = connect(t, "postgres://u@"+ln.Addr().String()+"/db?sslmode=disable", 300*time.Millisecond)
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("got %v, want ErrStalled", err)
	}
}

// The bound is on each wait, not on the connection's life: calls that
// each answer within it succeed however long they add up to, and an idle
// connection is not a stalled one.
func TestBoundIsPerWait(t *testing.T) {
	t.Parallel()
	conn, err := connect(t, dbtest.URL(), 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := conn.Exec(context.Background(), `SELECT pg_sleep(0.2)`); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(700 * time.Millisecond)
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM generate_series(1, 100000)`).Scan(&n); err != nil || n != 100000 {
		t.Fatalf("after idling: %d, %v", n, err)
	}
}

// A call whose context ends first fails with the context's error, not
// ErrStalled: the caller's deadline wins when it is the earlier.
func TestContextDeadlineWins(t *testing.T) {
	t.Parallel()
	conn, err := connect(t, dbtest.URL(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = conn.Exec(ctx, `SELECT pg_sleep(3)`)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrStalled) {
		t.Fatalf("got %v, want the context's deadline", err)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("the context's deadline did not interrupt the call (waited %s)", waited)
	}
}

// Zero leaves the dialer alone.
func TestZeroIsOff(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig(dbtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	Apply(&cfg.Config, 0)
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, ok := conn.PgConn().Conn().(*timedConn); ok {
		t.Fatal("a zero timeout wrapped the connection")
	}
}

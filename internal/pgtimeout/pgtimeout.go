// Package pgtimeout ends database calls that stall. A PostgreSQL server or
// a network path that stops answering without closing the connection (a
// hung proxy, a half-open TCP connection, a frozen replica) leaves pgx
// waiting in a read for ever, and with it the run, its lease and its job.
// pgx bounds reads only by context deadlines; segpub's audience stream is
// legitimately long, so no context deadline fits it. What fits is a bound
// on silence: a connection on which nothing arrives for the timeout while
// segpub waits for it is closed, and the call fails like any other
// connection error, to be retried from the run's checkpoint.
//
// Session is the server's side of the same: a statement timeout, and the
// server's check that its client is still there, so that no statement runs
// on for a client that has gone.
package pgtimeout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrStalled is the cause of a call ended because its connection was
// silent for longer than the timeout.
var ErrStalled = errors.New("database connection stalled")

// Apply makes every connection cfg dials fail a read or write that waits
// longer than timeout. Zero or less leaves cfg unchanged. The timeout must
// exceed the longest a query may think before its first row (a large sort),
// since PostgreSQL sends nothing while it does.
func Apply(cfg *pgconn.Config, timeout time.Duration) {
	if timeout <= 0 {
		return
	}
	dial := cfg.DialFunc
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &timedConn{Conn: c, timeout: timeout}, nil
	}
}

// timedConn bounds each read and write by the timeout, without overriding the
// deadlines pgx sets itself to interrupt a call whose context ended: the
// earlier of the two applies, and only the expiry of its own bound turns
// into ErrStalled.
type timedConn struct {
	net.Conn
	timeout time.Duration

	mu            sync.Mutex
	readDeadline  time.Time // set by pgx; zero: none
	writeDeadline time.Time
}

func (c *timedConn) Read(b []byte) (int, error) {
	own, err := c.bound(&c.readDeadline, c.Conn.SetReadDeadline)
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	return n, c.stalled("read", err, own, &c.readDeadline)
}

func (c *timedConn) Write(b []byte) (int, error) {
	own, err := c.bound(&c.writeDeadline, c.Conn.SetWriteDeadline)
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(b)
	return n, c.stalled("write", err, own, &c.writeDeadline)
}

// bound sets the deadline of the next read or write: the caller's, or now
// plus the timeout when that comes first. It reports whether the bound is
// its own.
func (c *timedConn) bound(caller *time.Time, set func(time.Time) error) (bool, error) {
	c.mu.Lock()
	d := *caller
	c.mu.Unlock()
	own := time.Now().Add(c.timeout)
	if !d.IsZero() && d.Before(own) {
		return false, set(d)
	}
	return true, set(own)
}

// stalled turns the expiry of the connection's own bound into ErrStalled
// and closes the connection, since a reply may still arrive on it. A
// timeout pgx asked for (its context ended meanwhile) passes through.
func (c *timedConn) stalled(op string, err error, own bool, caller *time.Time) error {
	if err == nil || !own || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	c.mu.Lock()
	d := *caller
	c.mu.Unlock()
	if !d.IsZero() && !d.After(time.Now()) {
		return err
	}
	_ = c.Conn.Close()
	// Not a net.Error timeout: pgx closes the connection on any other error.
	return fmt.Errorf("%s %s: nothing for %s: %w", op, c.RemoteAddr(), c.timeout, ErrStalled)
}

func (c *timedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline, c.writeDeadline = t, t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *timedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *timedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDeadline = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

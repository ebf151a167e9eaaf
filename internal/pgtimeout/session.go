package pgtimeout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The bounds above end calls the client waits on. The settings below end
// the server's side of them: a statement that runs longer than anything
// segpub runs, and a statement whose client has gone (a killed worker, a
// cancelled run), which PostgreSQL otherwise runs to its end, however long,
// with nobody to read the result.

const (
	// DefaultStatementTimeout bounds an audience statement. A run streams
	// its audience in one statement for as long as the run publishes, so
	// the bound is far above the longest run: a 10M-user push to the
	// embedded JetStream streams for under 3 minutes, and even at a slow
	// channel's 1,000 messages/s its 8.8M messages take about 2.5 hours.
	DefaultStatementTimeout = 6 * time.Hour
	// DefaultStateStatementTimeout bounds a statement on segpub's own
	// tables (run ledger, scheduler, message store). The longest, a
	// partition's share of a 10M-user run copied in or grouped, takes
	// seconds.
	DefaultStateStatementTimeout = 5 * time.Minute
	// DefaultCheckInterval is how often the server checks, while it runs a
	// statement, that the client is still connected
	// (client_connection_check_interval, PostgreSQL 14 and later).
	DefaultCheckInterval = 2 * time.Second
)

// Session is what every connection segpub opens sets on the server.
type Session struct {
	// StatementTimeout is the server's statement_timeout; zero: none.
	StatementTimeout time.Duration
	// CheckInterval is client_connection_check_interval; zero: off. It is
	// set only on servers that have it (PostgreSQL 14 and later) and
	// skipped where the server's platform refuses it.
	CheckInterval time.Duration
}

// maxServerDuration is the largest millisecond count the two settings take
// (a 32-bit integer).
const maxServerDuration = time.Duration(math.MaxInt32) * time.Millisecond

// CheckSetting reports why d cannot be one of Session's durations, or nil.
// Callers name the setting in front of it.
func CheckSetting(d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%s is negative", d)
	case d > 0 && d < time.Millisecond:
		return fmt.Errorf("%s is under the server's unit of 1ms (0 turns it off)", d)
	case d > maxServerDuration:
		return fmt.Errorf("%s exceeds the server's limit of %s", d, maxServerDuration)
	}
	return nil
}

// Apply makes every connection cfg opens set the session's settings. A
// setting given in the URL's options gives way to the session's: these are
// segpub's validated settings.
//
// A call whose context ends (a stopped run) needs nothing here: pgx closes
// its connection and sends the server a cancel request for the statement
// (pgconn's asyncClose), for a query, a streamed query and a COPY alike;
// TestCancelStopsServerStatement and TestCancelStopsStreamAndCopy hold it to
// that. What pgx cannot do is cancel from a process that was killed: the
// connection check is for that.
func (s Session) Apply(cfg *pgconn.Config) error {
	if err := CheckSetting(s.StatementTimeout); err != nil {
		return fmt.Errorf("statement timeout: %w", err)
	}
	if err := CheckSetting(s.CheckInterval); err != nil {
		return fmt.Errorf("connection check interval: %w", err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	// A startup parameter costs no round trip and holds on every server.
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(s.StatementTimeout.Milliseconds(), 10)
	if s.CheckInterval > 0 {
		after := cfg.AfterConnect
		interval := strconv.FormatInt(s.CheckInterval.Milliseconds(), 10)
		// Not a startup parameter: a server before 14 would refuse the
		// connection for an unknown setting.
		cfg.AfterConnect = func(ctx context.Context, c *pgconn.PgConn) error {
			if after != nil {
				if err := after(ctx, c); err != nil {
					return err
				}
			}
			if ServerMajor(c) < 14 {
				return nil
			}
			err := c.Exec(ctx, "SET client_connection_check_interval = "+interval).Close()
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				// The server's platform has no way to poll the socket
				// (22023): the session runs without the check.
				return nil
			}
			return err
		}
	}
	return nil
}

// ServerMajor returns the server's major version, 0 when it does not say.
func ServerMajor(c *pgconn.PgConn) int {
	v := c.ParameterStatus("server_version")
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

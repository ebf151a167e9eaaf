package pgtimeout

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/dbtest"
)

// connectSession connects with s applied, under an application_name of the
// test's own, so that pg_stat_activity tells its backends apart.
func connectSession(t *testing.T, s Session) (*pgx.Conn, string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	name := "pgtimeout-" + dbtest.NewProjectID()
	cfg.RuntimeParams["application_name"] = name
	if err := s.Apply(&cfg.Config); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn, name
}

// active counts the backends of application name that run a statement.
func active(t *testing.T, name string) int {
	t.Helper()
	var n int
	if err := dbtest.Pool(t).QueryRow(context.Background(),
		`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitActive polls until the count of name's active backends is want, for
// at most bound; it reports the last count.
func waitActive(t *testing.T, name string, want int, bound time.Duration) int {
	t.Helper()
	end := time.Now().Add(bound)
	for {
		n := active(t, name)
		if n == want || time.Now().After(end) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func show(t *testing.T, conn *pgx.Conn, setting string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(context.Background(), "SHOW "+setting).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Every connection carries the statement timeout and, on PostgreSQL 14 and
// later, the connection check.
func TestSessionSettings(t *testing.T) {
	t.Parallel()
	conn, _ := connectSession(t, Session{StatementTimeout: 90 * time.Minute, CheckInterval: 2 * time.Second})
	if got := show(t, conn, "statement_timeout"); got != "90min" {
		t.Errorf("statement_timeout %q, want 90min", got)
	}
	if ServerMajor(conn.PgConn()) < 14 {
		t.Skipf("server %s has no client_connection_check_interval", conn.PgConn().ParameterStatus("server_version"))
	}
	if got := show(t, conn, "client_connection_check_interval"); got != "2s" {
		t.Errorf("client_connection_check_interval %q, want 2s", got)
	}
}

// The statement timeout is the server's: a statement past it fails with
// the server's cancel, on a connection that stays usable.
func TestStatementTimeoutEndsStatement(t *testing.T) {
	t.Parallel()
	conn, _ := connectSession(t, Session{StatementTimeout: 200 * time.Millisecond})
	_, err := conn.Exec(context.Background(), `SELECT pg_sleep(30)`)
	if err == nil || !strings.Contains(err.Error(), "statement timeout") {
		t.Fatalf("got %v, want the server's statement timeout", err)
	}
	if _, err := conn.Exec(context.Background(), `SELECT 1`); err != nil {
		t.Fatalf("connection unusable after the timeout: %v", err)
	}
}

func TestCheckSetting(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{-time.Second, time.Microsecond, 25 * 24 * time.Hour} {
		if CheckSetting(d) == nil {
			t.Errorf("%s accepted", d)
		}
	}
	for _, d := range []time.Duration{0, time.Millisecond, DefaultStatementTimeout, DefaultStateStatementTimeout, DefaultCheckInterval} {
		if err := CheckSetting(d); err != nil {
			t.Errorf("%s refused: %v", d, err)
		}
	}
}

// A call whose context ends stops its statement on the server, not only on
// the client: a statement that sends nothing while it works (a sleep here;
// a large sort or a quadratic join in life) would otherwise run on. The
// connection check is off, so only the cancel can end it.
func TestCancelStopsServerStatement(t *testing.T) {
	t.Parallel()
	conn, name := connectSession(t, Session{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, `SELECT pg_sleep(120)`)
		done <- err
	}()
	if n := waitActive(t, name, 1, 10*time.Second); n != 1 {
		t.Fatalf("%d active statements, want the sleep", n)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if n := waitActive(t, name, 0, 10*time.Second); n != 0 {
		t.Fatalf("%d statements still active on the server after the cancel", n)
	}
}

// The same holds for a statement streaming rows and for a COPY in.
func TestCancelStopsStreamAndCopy(t *testing.T) {
	t.Parallel()
	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		conn, name := connectSession(t, Session{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rows, err := conn.Query(ctx, `SELECT generate_series(1, 1000000000), repeat('x', 200)`)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1000 && rows.Next(); i++ {
		}
		cancel()
		for rows.Next() {
		}
		rows.Close()
		if !errors.Is(rows.Err(), context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", rows.Err())
		}
		if n := waitActive(t, name, 0, 10*time.Second); n != 0 {
			t.Fatalf("%d statements still active on the server after the cancel", n)
		}
	})
	t.Run("copy", func(t *testing.T) {
		t.Parallel()
		conn, name := connectSession(t, Session{})
		if _, err := conn.Exec(context.Background(), `CREATE TEMP TABLE copied (n bigint)`); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sent := 0
		src := pgx.CopyFromFunc(func() ([]any, error) {
			sent++
			if sent > 1000 {
				// The run has no more rows yet when it stops.
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return []any{int64(sent)}, nil
		})
		done := make(chan error, 1)
		go func() {
			_, err := conn.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"n"}, src)
			done <- err
		}()
		if n := waitActive(t, name, 1, 10*time.Second); n != 1 {
			t.Fatalf("%d active statements, want the COPY", n)
		}
		cancel()
		if err := <-done; err == nil {
			t.Fatal("a cancelled COPY succeeded")
		}
		if n := waitActive(t, name, 0, 10*time.Second); n != 0 {
			t.Fatalf("%d statements still active on the server after the cancel", n)
		}
	})
}

// A worker that is killed sends no cancel: the kernel closes its socket,
// and only the server's connection check ends the statement it left.
func TestKilledClientStatementEnds(t *testing.T) {
	t.Parallel()
	if os.Getenv(helperEnv) != "" {
		t.Skip("in the helper process")
	}
	name := "pgtimeout-killed-" + dbtest.NewProjectID()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledClientHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+name)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// Whatever happened, leave no sleeper behind.
		_, _ = dbtest.Pool(t).Exec(context.Background(),
			`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, name)
	})
	if n := waitActive(t, name, 1, 30*time.Second); n != 1 {
		t.Fatalf("%d active statements from the helper, want its sleep", n)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n := waitActive(t, name, 0, 15*time.Second); n != 0 {
		t.Fatalf("%d statements of a killed client still active on the server", n)
	}
}

const helperEnv = "PGTIMEOUT_KILLED_CLIENT"

// TestKilledClientHelper is the process TestKilledClientStatementEnds
// kills: it connects as segpub does and sleeps on the server.
func TestKilledClientHelper(t *testing.T) {
	name := os.Getenv(helperEnv)
	if name == "" {
		t.Skip("run by TestKilledClientStatementEnds")
	}
	cfg, err := pgx.ParseConfig(dbtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = name
	if err := (Session{StatementTimeout: DefaultStatementTimeout, CheckInterval: time.Second}).Apply(&cfg.Config); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Exec(context.Background(), `SELECT pg_sleep(120)`)
}

// Package dbtest gives tests a real PostgreSQL: a shared pool and, per test,
// a project of its own (fresh tables under a unique project id) that is
// dropped when the test ends, so tests run in parallel without seeing each
// other's rows.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/pgdb"
	"github.com/segpub/segpub/internal/schema"
)

// DefaultServerURL is the server used when SEGPUB_TEST_DATABASE_URL is not
// set; it matches a stock local server with trust authentication.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// URL returns the test database URL: SEGPUB_TEST_DATABASE_URL when it names
// a database; otherwise database segpub_test on that server (or on
// DefaultServerURL), created on first use. Tests never write into the
// server's postgres database, nor share a run ledger with the demo.
func URL() string {
	urlOnce.Do(func() { testURL, urlErr = resolveURL() })
	return testURL
}

func resolveURL() (string, error) {
	u := os.Getenv("SEGPUB_TEST_DATABASE_URL")
	if u != "" {
		if name, err := pgdb.Name(u); err != nil || name != "" {
			return u, nil
		}
	} else {
		u = DefaultServerURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := pgdb.Ensure(ctx, u, pgdb.Test)
	if err != nil {
		named, _ := pgdb.WithName(u, pgdb.Test)
		return named, err
	}
	return got, nil
}

var (
	urlOnce sync.Once
	testURL string
	urlErr  error

	poolOnce sync.Once
	pool     *pgxpool.Pool
	poolErr  error
)

// Pool returns a pool shared by all tests of the package. A test fails (it
// is not skipped) when the database is unreachable: these suites exist to
// run against a real server.
func Pool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	poolOnce.Do(func() {
		if URL(); urlErr != nil {
			poolErr = urlErr
			return
		}
		cfg, err := pgxpool.ParseConfig(URL())
		if err != nil {
			poolErr = err
			return
		}
		cfg.MaxConns = 16
		pool, poolErr = pgxpool.NewWithConfig(context.Background(), cfg)
		if poolErr == nil {
			poolErr = pool.Ping(context.Background())
		}
	})
	if poolErr != nil {
		tb.Fatalf("connect to test database %s: %v (set SEGPUB_TEST_DATABASE_URL, or run .ci/run which starts one)", URL(), poolErr)
	}
	return pool
}

// NewProjectID returns a project id no other test uses.
func NewProjectID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "t_" + hex.EncodeToString(b[:])
}

// Project creates the contract's tables for a fresh project and drops them
// when the test ends. It returns the project's tables.
func Project(tb testing.TB) schema.Tables {
	tb.Helper()
	p := Pool(tb)
	tables, err := schema.For(NewProjectID())
	if err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	for _, stmt := range tables.CreateStatements(true) {
		if _, err := p.Exec(ctx, stmt); err != nil {
			tb.Fatalf("create tables: %v", err)
		}
	}
	tb.Cleanup(func() {
		for _, stmt := range tables.DropStatements() {
			_, _ = p.Exec(context.Background(), stmt)
		}
	})
	return tables
}

// Exec runs statements and fails the test on the first error.
func Exec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	if _, err := Pool(tb).Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("exec %q: %v", sql, err)
	}
}

// IsolatedURL returns a database URL whose search_path is a schema of the
// test's own, dropped when the test ends: for tests that run segpub as a
// separate process.
func IsolatedURL(tb testing.TB) string {
	tb.Helper()
	name := NewProjectID()
	Exec(tb, `CREATE SCHEMA "`+name+`"`)
	tb.Cleanup(func() {
		_, _ = Pool(tb).Exec(context.Background(), `DROP SCHEMA "`+name+`" CASCADE`)
	})
	u, err := url.Parse(URL())
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// IsolatedPool returns a pool whose search_path is a schema of the test's
// own, dropped when the test ends: for segpub's own tables (ledger,
// scheduler), which every test would otherwise share.
func IsolatedPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	name := NewProjectID()
	Exec(tb, `CREATE SCHEMA "`+name+`"`)
	cfg, err := pgxpool.ParseConfig(URL())
	if err != nil {
		tb.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = name
	cfg.MaxConns = 8
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.Close()
		_, _ = Pool(tb).Exec(context.Background(), `DROP SCHEMA "`+name+`" CASCADE`)
	})
	return p
}

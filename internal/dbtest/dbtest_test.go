package dbtest

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/pgdb"
)

// A test database URL that names no database gets segpub_test on that
// server, created when missing: tests never write into database postgres.
func TestURLWithoutDatabase(t *testing.T) {
	u, err := url.Parse(URL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = ""
	t.Setenv("SEGPUB_TEST_DATABASE_URL", u.String())
	got, err := resolveURL()
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := pgdb.Name(got); name != pgdb.Test {
		t.Fatalf("resolved %s, want database %s", got, pgdb.Test)
	}
	conn, err := pgx.Connect(context.Background(), got)
	if err != nil {
		t.Fatalf("connect to %s: %v", got, err)
	}
	conn.Close(context.Background())
	// A URL that names a database is taken as it is.
	t.Setenv("SEGPUB_TEST_DATABASE_URL", "postgres://x@h:1/mine")
	if got, err := resolveURL(); err != nil || got != "postgres://x@h:1/mine" {
		t.Fatalf("named database: %s, %v", got, err)
	}
}

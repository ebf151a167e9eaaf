package pgdb

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestWithName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable": "postgres://postgres@127.0.0.1:5432/segpub_demo?sslmode=disable",
		"postgres://u:p@db:5432?sslmode=disable":                      "postgres://u:p@db:5432/segpub_demo?sslmode=disable",
	} {
		got, err := WithName(in, Demo)
		if err != nil || got != want {
			t.Errorf("WithName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if n, _ := Name("postgres://u@h:1?x=y"); n != "" {
		t.Errorf("Name of a URL without a database: %q", n)
	}
}

// Ensure creates a database once, however many callers race for it, and
// refuses a name that would need quoting.
func TestEnsure(t *testing.T) {
	t.Parallel()
	server := os.Getenv("SEGPUB_TEST_DATABASE_URL")
	if server == "" {
		t.Skip("SEGPUB_TEST_DATABASE_URL is not set")
	}
	ctx := context.Background()
	name := fmt.Sprintf("segpub_pgdb_%d", time.Now().UnixNano())
	var wg sync.WaitGroup
	urls := make([]string, 4)
	errs := make([]error, 4)
	for i := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			urls[i], errs[i] = Ensure(ctx, server, name)
		}()
	}
	wg.Wait()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), `DROP DATABASE IF EXISTS "`+name+`"`)
		conn.Close(context.Background())
	})
	for i := range urls {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if got, _ := Name(urls[i]); got != name {
			t.Fatalf("caller %d: URL %s names %q", i, urls[i], got)
		}
	}
	c2, err := pgx.Connect(ctx, urls[0])
	if err != nil {
		t.Fatalf("connect to the created database: %v", err)
	}
	var db string
	_ = c2.QueryRow(ctx, `SELECT current_database()`).Scan(&db)
	c2.Close(ctx)
	if db != name {
		t.Fatalf("connected to %q", db)
	}
	if _, err := Ensure(ctx, server, `x"; DROP`); err == nil {
		t.Fatal("a name that needs quoting was accepted")
	}
}

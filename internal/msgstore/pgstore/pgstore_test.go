package pgstore

import (
	"context"
	"errors"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/msgstore"
)

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	table := dbtest.NewProjectID() + "_messages"
	s, err := New(ctx, dbtest.Pool(t), table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbtest.Exec(t, `DROP TABLE "`+table+`"`) })
	if _, err := s.Get(ctx, "m-1", 1<<20); !errors.Is(err, msgstore.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	for _, body := range []string{`{"a":1}`, `{"a":"'; DROP TABLE x; --"}`} {
		if err := s.Put(ctx, "m-1", []byte(body)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "m-1", 1<<20)
		if err != nil || string(got) != body {
			t.Fatalf("got %q %v, want %q", got, err, body)
		}
		// Over the job size cap: refused, not returned.
		if got, err := s.Get(ctx, "m-1", int64(len(body))-1); !errors.Is(err, msgstore.ErrTooLarge) || got != nil {
			t.Fatalf("over the cap: got %d bytes, %v", len(got), err)
		}
		if _, err := s.Get(ctx, "m-1", int64(len(body))); err != nil {
			t.Fatalf("at the cap: %v", err)
		}
	}
	if _, err := New(ctx, dbtest.Pool(t), `x"; DROP`); err == nil {
		t.Fatal("bad table name accepted")
	}
}

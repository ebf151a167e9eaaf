// Package msgstoretest is the suite every claim-check message store must
// pass (PostgreSQL, DynamoDB): what is put is got back whole, a second put
// replaces the first, a missing id is ErrNotFound, a body over the caller's
// limit is ErrTooLarge and never returned, and an item that holds no job
// body is ErrMalformed.
package msgstoretest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/msgstore"
)

// Harness is what a store implementation gives the suite.
type Harness struct {
	// Store is a fresh, empty store, used by this subtest alone.
	Store msgstore.Store
	// Malformed plants, under id, items that exist but hold no job body,
	// one function per kind (say, "no body attribute"). Empty when the
	// store cannot hold such an item (a NOT NULL text column).
	Malformed map[string]func(ctx context.Context, id string) error
}

// Run runs the suite. setup makes a fresh store per subtest.
func Run(t *testing.T, setup func(t *testing.T) Harness) {
	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		got, err := h.Store.Get(context.Background(), "m-missing", 1<<20)
		if !errors.Is(err, msgstore.ErrNotFound) || got != nil {
			t.Fatalf("missing item: %q, %v; want msgstore.ErrNotFound", got, err)
		}
	})
	t.Run("PutGet", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		bodies := map[string]string{
			"m-json":    `{"version":1,"request_id":"r","campaign":{"audience":{"user_ids":["a","b"]}}}`,
			"m-quotes":  `{"a":"'; DROP TABLE x; --"}`,
			"m-unicode": `{"title":"Grüße, 世界 🎉","nul":"\u0000"}`,
			"m-large":   `{"pad":"` + strings.Repeat("x", 200<<10) + `"}`,
		}
		for id, body := range bodies {
			if err := h.Store.Put(ctx, id, []byte(body)); err != nil {
				t.Fatalf("put %s: %v", id, err)
			}
		}
		for id, body := range bodies {
			got, err := h.Store.Get(ctx, id, 1<<20)
			if err != nil || string(got) != body {
				t.Fatalf("get %s: %d bytes, %v; want the %d bytes put", id, len(got), err, len(body))
			}
		}
	})
	t.Run("PutReplaces", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		for i := range 3 {
			body := fmt.Sprintf(`{"v":%d}`, i)
			if err := h.Store.Put(ctx, "m-1", []byte(body)); err != nil {
				t.Fatal(err)
			}
			if got, err := h.Store.Get(ctx, "m-1", 1<<20); err != nil || string(got) != body {
				t.Fatalf("after put %d: %q, %v", i, got, err)
			}
		}
	})
	t.Run("SizeLimit", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		ctx := context.Background()
		body := `{"version":1,"request_id":"r","campaign":{}}`
		if err := h.Store.Put(ctx, "m-1", []byte(body)); err != nil {
			t.Fatal(err)
		}
		// Over the job size cap: refused, not returned.
		if got, err := h.Store.Get(ctx, "m-1", int64(len(body))-1); !errors.Is(err, msgstore.ErrTooLarge) || got != nil {
			t.Fatalf("one byte over the cap: got %d bytes, %v; want msgstore.ErrTooLarge", len(got), err)
		}
		if got, err := h.Store.Get(ctx, "m-1", int64(len(body))); err != nil || string(got) != body {
			t.Fatalf("at the cap: %q, %v", got, err)
		}
	})
	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		h := setup(t)
		if len(h.Malformed) == 0 {
			t.Skip("the store cannot hold an item without a body")
		}
		ctx := context.Background()
		i := 0
		for kind, plant := range h.Malformed {
			i++
			id := fmt.Sprintf("m-malformed-%d", i)
			if err := plant(ctx, id); err != nil {
				t.Fatalf("%s: plant: %v", kind, err)
			}
			if got, err := h.Store.Get(ctx, id, 1<<20); !errors.Is(err, msgstore.ErrMalformed) || got != nil {
				t.Errorf("%s: %q, %v; want msgstore.ErrMalformed", kind, got, err)
			}
		}
	})
}

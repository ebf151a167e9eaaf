package claimcheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/msgstore/pgstore"
)

// sent keeps what was sent, as a queue with a size limit would.
type sent struct {
	max    int
	bodies [][]byte
	dedup  []string
}

func (s *sent) MaxMessageBytes() int { return s.max }
func (s *sent) Send(_ context.Context, body []byte, dedupID string) error {
	if len(body) > s.max {
		return fmt.Errorf("%d bytes over %d", len(body), s.max)
	}
	s.bodies, s.dedup = append(s.bodies, body), append(s.dedup, dedupID)
	return nil
}

func jobText(pad int) []byte {
	return fmt.Appendf(nil, `{"version":1,"action":"publish","request_id":"r-1","project_id":"p","scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"cmp","channel":"push_notification","audience":{"type":"all"},"message":{"title":%q}}}`, strings.Repeat("x", pad))
}

func TestSendAndResolve(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.IsolatedPool(t)
	store, err := pgstore.New(ctx, pool, "")
	if err != nil {
		t.Fatal(err)
	}
	q := &sent{max: 1000}

	// Fits: inline, no store needed.
	small := jobText(10)
	if id, err := Send(ctx, q, nil, small, "r-1"); err != nil || id != "" {
		t.Fatalf("inline: %q %v", id, err)
	}
	// Over the limit: stored, and the envelope sent with the dedup id.
	big := jobText(5000)
	id, err := Send(ctx, q, store, big, "r-1")
	if err != nil || id != ID(big) || !strings.HasPrefix(id, "m-") || len(id) != 2+24 {
		t.Fatalf("claim check: %q %v", id, err)
	}
	if string(q.bodies[1]) != `{"version":1,"message_id":"`+id+`"}` || q.dedup[1] != "r-1" {
		t.Fatalf("envelope %s, dedup %q", q.bodies[1], q.dedup[1])
	}
	for i, want := range [][]byte{small, big} {
		j, raw, err := Resolve(ctx, store, q.bodies[i], 1<<20)
		if err != nil || j.RequestID != "r-1" || string(raw) != string(want) {
			t.Fatalf("resolve message %d: %+v %v", i, j, err)
		}
	}
	// Over the limit with no store: a clear error, nothing sent.
	if _, err := Send(ctx, q, nil, big, "r-1"); !errors.Is(err, ErrNoStore) || !strings.Contains(err.Error(), "--message-store-url") {
		t.Fatalf("no store: %v", err)
	}
	if len(q.bodies) != 2 {
		t.Fatalf("sent %d messages", len(q.bodies))
	}

	// Claim checks that can never resolve are rejections, not retries.
	for name, c := range map[string]struct {
		body  []byte
		store bool
		max   int64
	}{
		"no store":     {Envelope(id), false, 1 << 20},
		"missing":      {Envelope("m-missing"), true, 1 << 20},
		"over the cap": {Envelope(id), true, int64(len(big)) - 1},
	} {
		var s msgstore.Store
		if c.store {
			s = store
		}
		_, _, err := Resolve(ctx, s, c.body, c.max)
		if !job.IsRejection(err) {
			t.Errorf("%s: %v, want a rejection", name, err)
		}
	}
}

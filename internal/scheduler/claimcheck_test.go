package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/msgstore/pgstore"
)

// addSized adds an immediate campaign whose message pads the job to about
// pad bytes.
func addSized(t *testing.T, s *Store, id string, pad int) {
	t.Helper()
	err := s.Add(context.Background(), Campaign{ProjectID: "p1", Schedule: json.RawMessage(`{"kind":"immediate"}`),
		Campaign: json.RawMessage(fmt.Sprintf(`{"id":%q,"channel":"email","audience":{"type":"all"},"message":{"s":%q}}`, id, strings.Repeat("x", pad)))})
	if err != nil {
		t.Fatal(err)
	}
}

// A job over the queue's size limit is stored and enqueued as a claim
// check, which resolves to the job.
func TestOversizedJobSentAsClaimCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.IsolatedPool(t)
	store, err := NewStore(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	messages, err := pgstore.New(ctx, pool, "")
	if err != nil {
		t.Fatal(err)
	}
	addSized(t, store, "big", 4000)
	q := &recorder{max: 1000}
	s, _ := New(Config{Store: store, Queue: q, Messages: messages, CatchUp: time.Hour})
	rep, err := s.Tick(ctx)
	if err != nil || len(rep.Enqueued) != 1 || len(rep.Failed) != 0 {
		t.Fatalf("wake: %+v %v", rep, err)
	}
	if len(q.jobs) != 1 || len(q.jobs[0]) > q.max || q.sent[rep.Enqueued[0]] != 1 {
		t.Fatalf("sent %d messages (%v)", len(q.jobs), q.sent)
	}
	j, full, err := claimcheck.Resolve(ctx, messages, q.jobs[0], 1<<20)
	if err != nil || j.RequestID != rep.Enqueued[0] || len(full) <= q.max {
		t.Fatalf("claim check %s resolves to %+v (%d bytes), %v", q.jobs[0], j, len(full), err)
	}
}

// Without a message store a job over the queue's limit can never be
// enqueued: its occurrence fails once, clearly, and the wake goes on to
// the other campaigns instead of failing at every wake.
func TestOversizedJobWithoutStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := NewStore(ctx, dbtest.IsolatedPool(t))
	if err != nil {
		t.Fatal(err)
	}
	addSized(t, store, "a-big", 4000)
	addSized(t, store, "b-small", 10)
	q := &recorder{max: 1000}
	var logs strings.Builder
	s, _ := New(Config{Store: store, Queue: q, CatchUp: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	rep, err := s.Tick(ctx)
	if err != nil {
		t.Fatalf("wake failed: %v", err)
	}
	if len(rep.Failed) != 1 || !strings.HasPrefix(rep.Failed[0], "sched:a-big@") || len(rep.Enqueued) != 1 || !strings.HasPrefix(rep.Enqueued[0], "sched:b-small@") {
		t.Fatalf("wake: %+v", rep)
	}
	if !strings.Contains(logs.String(), "no message store is configured") || !strings.Contains(logs.String(), "--message-store-url") {
		t.Fatalf("log does not say why:\n%s", logs.String())
	}
	rep, err = s.Tick(ctx)
	if err != nil || len(rep.Failed)+len(rep.Enqueued) != 0 {
		t.Fatalf("second wake: %+v %v", rep, err)
	}
	if got := slices.Sorted(maps.Keys(q.sent)); len(got) != 1 || !strings.HasPrefix(got[0], "sched:b-small@") {
		t.Fatalf("sent %v", got)
	}
}

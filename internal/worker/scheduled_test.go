package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/queue/jsqueue"
	"github.com/segpub/segpub/internal/scheduler"
)

// A scheduled job over the job queue's size limit is enqueued as a claim
// check and runs, instead of failing at every wake.
func TestScheduledJobOverQueueLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, 300)
	b.worker(Config{})
	ctx := context.Background()
	// The scheduler's handle on the worker's job queue, with a limit the
	// campaign's job is over.
	const limit = 400
	small, err := jsqueue.New(ctx, jsqueue.Config{Conn: b.conn, Stream: fmt.Sprintf("J%d", b.n), Subject: fmt.Sprintf("jobs.%d", b.n),
		AckWait: 3 * time.Second, MaxMessageBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	campaigns, err := scheduler.NewStore(ctx, dbtest.IsolatedPool(t))
	if err != nil {
		t.Fatal(err)
	}
	id := "big-" + b.tables.Project
	title := strings.Repeat("x", 2*limit)
	err = campaigns.Add(ctx, scheduler.Campaign{ProjectID: b.tables.Project, Schedule: json.RawMessage(`{"kind":"immediate"}`),
		Campaign: json.RawMessage(fmt.Sprintf(`{"id":%q,"channel":"push_notification","audience":{"type":"all"},"message":{"title":%q}}`, id, title))})
	if err != nil {
		t.Fatal(err)
	}
	sch, err := scheduler.New(scheduler.Config{Store: campaigns, Queue: small, Messages: b.store})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := sch.Tick(ctx)
	if err != nil || len(rep.Enqueued) != 1 {
		t.Fatalf("wake: %+v %v", rep, err)
	}
	requestID := rep.Enqueued[0]
	deadline := time.Now().Add(60 * time.Second)
	var run *ledger.Run
	for time.Now().Before(deadline) {
		if run, err = b.ledger.Get(ctx, requestID); err == nil && run.Status == ledger.Completed {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if run == nil {
		t.Fatalf("scheduled run %s: %v", requestID, err)
	}
	if run.Status != ledger.Completed || run.Published == 0 {
		t.Fatalf("scheduled run %s: status %v, published %d, error %q (%v)", requestID, run.Status, run.Published, run.Error, err)
	}
	msgs := b.channelMessages()
	if len(msgs) != int(run.Published) || !strings.Contains(string(msgs[0]), title) {
		t.Fatalf("%d channel messages, want %d with the campaign's title", len(msgs), run.Published)
	}
}

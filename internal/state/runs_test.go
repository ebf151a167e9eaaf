package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
)

// A partitioned run paused as a whole keeps its phase in the table (its
// ranges still advance it) but reads as paused once none of its ranges
// runs: in Pause's answer, Get (`segpub status`, `segpub run pause`) and
// List (the console). The worker's claim sees the phase.
func TestPausedPartitionedRunReadsPaused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.IsolatedPool(t)
	runs, err := NewRuns(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`INSERT INTO segpub_runs (request_id, project_id, campaign_id, action, status, reference_time, job, plan)
VALUES ('r', 'p', 'c', 'publish', 'publishing', now(), '{}', '{"bounds":["","m",""]}')`)
	exec(`INSERT INTO segpub_runs (request_id, project_id, campaign_id, action, status, attempts, owner, lease_until, reference_time, parent, published)
VALUES ('r#publish-0000', 'p', 'c', 'publish', 'running', 1, 'w1', now() + interval '1 minute', now(), 'r', 5),
       ('r#publish-0001', 'p', 'c', 'publish', 'retrying', 1, NULL, NULL, now(), 'r', 2)`)
	shown := func(want Status) {
		t.Helper()
		r, err := runs.Get(ctx, "r")
		if err != nil || r.Status != want {
			t.Fatalf("Get: %+v %v, want %s", r, err, want)
		}
		listed, err := runs.List(ctx, []Status{want}, 10)
		if err != nil || !slices.ContainsFunc(listed, func(r *Run) bool { return r.RequestID == "r" }) {
			t.Fatalf("List(%s) has no run r: %v", want, err)
		}
	}
	c, err := runs.Pause(ctx, "r")
	if err != nil || c.Status != Publishing || !slices.Equal(c.Waiting, []string{"r#publish-0000"}) {
		t.Fatalf("pause while a range runs: %+v %v", c, err)
	}
	// Its range still runs: publishing, with the pause requested.
	shown(Publishing)
	if stop, err := runs.StopRequested(ctx, "r"); err != nil || stop != "pause" {
		t.Fatalf("stop requested: %q %v", stop, err)
	}
	if err := runs.Stopped(ctx, "r#publish-0000", "w1", Paused, 9, 7, []byte(`{"segpub_part":{}}`), nil); err != nil {
		t.Fatal(err)
	}
	shown(Paused)
	if r, _ := runs.Get(ctx, "r"); r.Published != 9 {
		t.Fatalf("paused run shows %d published, its ranges 7+2", r.Published)
	}
	// Pausing it again answers paused at once.
	if c, err := runs.Pause(ctx, "r"); err != nil || c.Status != Paused || len(c.Waiting) != 0 {
		t.Fatalf("pause of a paused partitioned run: %+v %v", c, err)
	}
	// A copy of its job claimed by a worker sees the phase, not paused.
	cl, err := runs.Claim(ctx, Start{RequestID: "r", ProjectID: "p", CampaignID: "c", Action: "publish", Reference: time.Now()}, "w2", time.Minute)
	if err != nil || cl.Granted || cl.Run.Status != Publishing {
		t.Fatalf("claim of a paused partitioned run: %+v %v", cl, err)
	}
	// The paused range's kept job goes back to the queue; the other's
	// message is still there (handed back between attempts).
	c, err = runs.Resume(ctx, "r")
	if err != nil || len(c.Requeue) != 1 {
		t.Fatalf("resume: %+v %v", c, err)
	}
	shown(Publishing)
}

// A range first claimed after its partitioned run was paused or cancelled
// (its worker read no pause just before) is told to stop at its first
// heartbeat or checkpoint.
func TestRangeClaimedAfterStopIsTold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.IsolatedPool(t)
	runs, err := NewRuns(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO segpub_runs (request_id, project_id, campaign_id, action, status, reference_time, job, plan)
VALUES ('r', 'p', 'c', 'publish', 'publishing', now(), '{}', '{"bounds":["","m",""]}')`); err != nil {
		t.Fatal(err)
	}
	part := func(n int) Start {
		return Start{RequestID: fmt.Sprintf("r#publish-%04d", n), Parent: "r", ProjectID: "p", CampaignID: "c", Action: "publish", Reference: time.Now()}
	}
	if _, err := runs.Pause(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if c, err := runs.Claim(ctx, part(0), "w1", time.Minute); err != nil || !c.Granted {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := runs.Renew(ctx, part(0).RequestID, "w1", time.Minute, 1, 0); !errors.Is(err, ErrPauseRequested) {
		t.Fatalf("renew of a range of a paused run: %v", err)
	}
	if err := runs.Checkpoint(ctx, part(0).RequestID, "w1", []byte(`{}`), 0); !errors.Is(err, ErrPauseRequested) {
		t.Fatalf("checkpoint of a range of a paused run: %v", err)
	}
	if _, err := runs.Cancel(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if c, err := runs.Claim(ctx, part(1), "w2", time.Minute); err != nil || !c.Granted {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := runs.Renew(ctx, part(1).RequestID, "w2", time.Minute, 1, 0); !errors.Is(err, ErrCancelRequested) {
		t.Fatalf("renew of a range of a cancelled run: %v", err)
	}
	// A whole run has no partitioned run to ask.
	if c, err := runs.Claim(ctx, Start{RequestID: "whole", ProjectID: "p", CampaignID: "c", Action: "publish", Reference: time.Now()}, "w1", time.Minute); err != nil || !c.Granted {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := runs.Renew(ctx, "whole", "w1", time.Minute, 1, 0); err != nil {
		t.Fatalf("renew of a whole run: %v", err)
	}
}

package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
)

func setup(t *testing.T) (*Ledger, Start) {
	t.Helper()
	l, err := New(context.Background(), dbtest.Pool(t))
	if err != nil {
		t.Fatal(err)
	}
	id := "r-" + dbtest.NewProjectID()
	return l, Start{RequestID: id, ProjectID: "p", CampaignID: "c", Action: "publish", Reference: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}
}

func TestClaimLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, s := setup(t)
	c, err := l.Claim(ctx, s, "w1", time.Minute)
	if err != nil || !c.Granted || c.Run.Attempts != 1 || c.Run.Status != Running {
		t.Fatalf("first claim: %+v %v", c, err)
	}
	// A second copy of the job, on another worker, while w1 holds the lease.
	c2, err := l.Claim(ctx, s, "w2", time.Minute)
	if err != nil || c2.Granted || c2.Run.Owner != "w1" {
		t.Fatalf("concurrent claim: %+v %v", c2, err)
	}
	if err := l.Renew(ctx, s.RequestID, "w1", time.Minute, 10, 5); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx, s.RequestID, "w2", time.Minute, 1, 1); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew by a non-owner: %v", err)
	}
	res := json.RawMessage(`{"published":5}`)
	if err := l.Finish(ctx, s.RequestID, "w1", Outcome{Status: Completed, Candidates: 10, Published: 5, Result: res}); err != nil {
		t.Fatal(err)
	}
	// A late copy, days later: not run again, and the stored result is there.
	later := s
	later.Reference = time.Now()
	c3, err := l.Claim(ctx, later, "w3", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c3.Granted || c3.Run.Status != Completed || string(c3.Run.Result) != `{"published": 5}` {
		t.Fatalf("claim after completion: %+v %v", c3.Run, err)
	}
}

// An expired lease (a worker that died) lets another worker take the run,
// with the first run's reference time.
func TestExpiredLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, s := setup(t)
	if _, err := l.Claim(ctx, s, "dead", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	other := s
	other.Reference = s.Reference.Add(time.Hour)
	c, err := l.Claim(ctx, other, "alive", time.Minute)
	if err != nil || !c.Granted || c.Run.Attempts != 2 || !c.Run.Reference.Equal(s.Reference) {
		t.Fatalf("takeover: %+v %v", c, err)
	}
	if err := l.Renew(ctx, s.RequestID, "dead", time.Minute, 0, 0); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the dead owner must learn it lost the run: %v", err)
	}
}

func TestRetryingThenRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, s := setup(t)
	if _, err := l.Claim(ctx, s, "w1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Finish(ctx, s.RequestID, "w1", Outcome{Status: Retrying, Error: "database down"}); err != nil {
		t.Fatal(err)
	}
	c, err := l.Claim(ctx, s, "w2", time.Minute)
	if err != nil || !c.Granted || c.Run.Attempts != 2 {
		t.Fatalf("retry claim: %+v %v", c, err)
	}
	// A rejected copy never touches a run that exists: w2 still holds it.
	if wrote, err := l.Reject(ctx, s, "campaign.channel: unknown channel"); err != nil || wrote {
		t.Fatalf("reject over a held run: wrote %v, %v", wrote, err)
	}
	if r, err := l.Get(ctx, s.RequestID); err != nil || r.Status != Running || r.Owner != "w2" || r.Error != "" {
		t.Fatalf("held run after a rejected copy: %+v %v", r, err)
	}
	rs := s
	rs.RequestID += "-rejected"
	if wrote, err := l.Reject(ctx, rs, "campaign.channel: unknown channel"); err != nil || !wrote {
		t.Fatalf("reject: wrote %v, %v", wrote, err)
	}
	r, err := l.Get(ctx, rs.RequestID)
	if err != nil || r.Status != Rejected || r.Error == "" || r.FinishedAt == nil {
		t.Fatalf("rejected run: %+v %v", r, err)
	}
	if _, err := l.Get(ctx, "no-such-request"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown run: %v", err)
	}
}

// A run whose attempt ends without a result keeps the counts its
// checkpoints recorded; a handed-back run can be claimed at once.
func TestReleaseKeepsCountsAndHandedBackIsClaimable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, s := setup(t)
	if _, err := l.Claim(ctx, s, "w1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx, s.RequestID, "w1", time.Minute, 500, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Checkpoint(ctx, s.RequestID, "w1", []byte(`{"after":"u9","published":300}`), 300); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx, s.RequestID, "w1", Retrying, "queue unavailable"); err != nil {
		t.Fatal(err)
	}
	r, err := l.Get(ctx, s.RequestID)
	if err != nil || r.Status != Retrying || r.Candidates != 500 || r.Published != 300 || r.Error != "queue unavailable" || r.Owner != "" {
		t.Fatalf("released run: %+v %v", r, err)
	}
	c, err := l.Claim(ctx, s, "w2", time.Minute)
	if err != nil || !c.Granted {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := l.Finish(ctx, s.RequestID, "w2", Outcome{Status: HandedBack, Candidates: 800, Published: 600}); err != nil {
		t.Fatal(err)
	}
	c, err = l.Claim(ctx, s, "w3", time.Minute)
	if err != nil || !c.Granted || c.Run.Attempts != 3 || c.Run.Published != 600 {
		t.Fatalf("claim of a handed-back run: %+v %v", c, err)
	}
}

// A partitioned run shows the candidates its scan counted while it
// scans and while it publishes (the publish partitions count none), and
// the messages its publish partitions published: never 0 candidates
// beside 126,040 published.
func TestPartitionedRunCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, s := setup(t)
	pool := dbtest.Pool(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	insert := `INSERT INTO segpub_runs (request_id, project_id, campaign_id, action, status, reference_time, candidates, published, parent)
VALUES ($1, 'p', 'c', 'publish', $2, now(), $3, $4, nullif($5, ''))`
	exec(insert, s.RequestID, "scanning", 0, 0, "")
	exec(insert, s.RequestID+"#scan-0000", "completed", 100000, 0, s.RequestID)
	exec(insert, s.RequestID+"#scan-0001", "running", 60000, 0, s.RequestID)
	r, err := l.Get(ctx, s.RequestID)
	if err != nil || r.Candidates != 160000 || r.Published != 0 {
		t.Fatalf("scanning: %+v %v", r, err)
	}
	exec(`UPDATE segpub_runs SET status = 'publishing' WHERE request_id = $1`, s.RequestID)
	exec(insert, s.RequestID+"#publish-0000", "completed", 0, 100000, s.RequestID)
	exec(insert, s.RequestID+"#publish-0001", "running", 0, 26040, s.RequestID)
	if r, err = l.Get(ctx, s.RequestID); err != nil || r.Candidates != 160000 || r.Published != 126040 {
		t.Fatalf("publishing: %+v %v", r, err)
	}
}

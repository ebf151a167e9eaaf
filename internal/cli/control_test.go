package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
)

// `segpub run` records the request in the ledger, where the worker holding
// the run finds it at its next checkpoint or heartbeat; pause and cancel
// wait for the worker and say when it has not stopped yet; resume
// withdraws a pause not yet carried out; unknown runs are refused.
func TestRunControl(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	led, err := ledger.New(ctx, dbtest.Pool(t))
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("ctl-%d", time.Now().UnixNano())
	if r := run(t, "", "run", "cancel", id, "--wait", "0"); r.code != ExitFailure || !strings.Contains(r.stderr, "no run") {
		t.Fatalf("unknown run: exit %d %q", r.code, r.stderr)
	}
	claim, err := led.Claim(ctx, ledger.Start{RequestID: id, ProjectID: "p", CampaignID: "c", Action: "publish", Reference: time.Now()}, "w1", time.Minute)
	if err != nil || !claim.Granted {
		t.Fatalf("claim: %+v %v", claim, err)
	}
	if r := run(t, "", "run", "pause", id, "--wait", "0"); r.code != ExitOK || !strings.Contains(r.stdout, `"status":"running"`) {
		t.Fatalf("pause: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if err := led.Renew(ctx, id, "w1", time.Minute, 10, 5); !errors.Is(err, ledger.ErrPauseRequested) {
		t.Fatalf("worker's heartbeat after pause: %v", err)
	}
	if r := run(t, "", "run", "resume", id); r.code != ExitOK {
		t.Fatalf("resume: exit %d %q", r.code, r.stderr)
	}
	if err := led.Renew(ctx, id, "w1", time.Minute, 10, 5); err != nil {
		t.Fatalf("worker's heartbeat after the pause was withdrawn: %v", err)
	}
	r := run(t, "", "run", "cancel", id, "--wait", "300ms")
	if r.code != ExitFailure || !strings.Contains(r.stderr, "has not stopped yet") {
		t.Fatalf("cancel of a run whose worker has not stopped: exit %d %q", r.code, r.stderr)
	}
	if err := led.Checkpoint(ctx, id, "w1", []byte(`{"published":7}`), 7); !errors.Is(err, ledger.ErrCancelRequested) {
		t.Fatalf("worker's checkpoint after cancel: %v", err)
	}
	if err := led.Stopped(ctx, id, "w1", ledger.Cancelled, 10, 7, nil, []byte(`{"status":"cancelled"}`)); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "status", id); !strings.Contains(r.stdout, `"status":"cancelled"`) || !strings.Contains(r.stdout, `"published":7`) {
		t.Fatalf("status: %q", r.stdout)
	}
	if r := run(t, "", "run", "resume", id); r.code != ExitFailure || !strings.Contains(r.stderr, "finished") {
		t.Fatalf("resume of a cancelled run: exit %d %q", r.code, r.stderr)
	}
}

// A run whose job exhausted its attempts is resumed from its checkpoint by
// `run resume --job` with its dead letter's job, not by hand-written SQL;
// resume says the run is queued, not "retrying".
func TestResumeFailedRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	led, err := ledger.New(ctx, dbtest.Pool(t))
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("failed-%d", time.Now().UnixNano())
	start := ledger.Start{RequestID: id, ProjectID: "p", CampaignID: "c", Action: "publish", Reference: time.Now()}
	if c, err := led.Claim(ctx, start, "w1", time.Minute); err != nil || !c.Granted {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := led.Checkpoint(ctx, id, "w1", []byte(`{"published":40}`), 40); err != nil {
		t.Fatal(err)
	}
	if err := led.Finish(ctx, id, "w1", ledger.Outcome{Status: ledger.Failed, Candidates: 100, Published: 40, Error: "database unreachable"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Without the job: nothing changes, and the message says what to give.
	r := run(t, "", "run", "resume", id, "--data-dir", dir)
	if r.code != ExitFailure || !strings.Contains(r.stderr, "dead letter's job (--job FILE)") || !strings.Contains(r.stderr, "Run 'segpub run resume -h'") {
		t.Fatalf("no job: exit %d %q", r.code, r.stderr)
	}
	// Another request_id is another run.
	other := `{"version":1,"action":"publish","request_id":"someone-else"}`
	if r := run(t, other, "run", "resume", id, "--job", "-", "--data-dir", dir); r.code != ExitFailure || !strings.Contains(r.stderr, `request_id is "someone-else"`) {
		t.Fatalf("other job: exit %d %q", r.code, r.stderr)
	}
	if got, _ := led.Get(ctx, id); got.Status != ledger.Failed {
		t.Fatalf("refused resumes changed the run: %+v", got)
	}
	job := fmt.Sprintf(`{"version":1,"action":"publish","request_id":%q}`, id)
	r = run(t, job, "run", "resume", id, "--job", "-", "--data-dir", dir)
	if r.code != ExitOK || !strings.Contains(r.stdout, `"status":"queued"`) || !strings.Contains(r.stdout, `"requeued_jobs":1`) ||
		strings.Contains(r.stdout, "retrying") || !strings.Contains(r.stdout, `"published":40`) {
		t.Fatalf("resume: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	// A worker takes it again, from its checkpoint.
	c, err := led.Claim(ctx, start, "w2", time.Minute)
	if err != nil || !c.Granted || c.Run.Attempts != 2 || !strings.Contains(string(c.Run.Checkpoint), "40") {
		t.Fatalf("claim after resume: %+v %v", c.Run, err)
	}
	// A completed, rejected or cancelled run is never reopened.
	if _, err := led.Reopen(ctx, id, true); !errors.Is(err, ledger.ErrNotFailed) {
		t.Fatalf("reopen of a running run: %v", err)
	}
}

// A partitioned run paused as a whole: `segpub run pause` waits for its
// running ranges and prints it paused, and `segpub status` says so; the
// ranges not started yet are paused at once.
func TestRunPausePartitioned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	led, err := ledger.New(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("ctl-parted-%d", time.Now().UnixNano())
	start := func(runID, parent string) ledger.Start {
		return ledger.Start{RequestID: runID, Parent: parent, ProjectID: "p", CampaignID: "c", Action: "publish", Reference: time.Now()}
	}
	if c, err := led.Claim(ctx, start(id, ""), "w1", time.Minute); err != nil || !c.Granted {
		t.Fatalf("claim: %+v %v", c, err)
	}
	// Split as the partition package splits a run, in its publish phase:
	// one range running, one between attempts.
	if _, err := pool.Exec(ctx, `UPDATE segpub_runs SET status = 'publishing', job = '{}', plan = '{"bounds":["","m",""]}', owner = NULL, lease_until = NULL
WHERE request_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	running := id + "#publish-0000"
	if c, err := led.Claim(ctx, start(running, id), "w2", time.Minute); err != nil || !c.Granted {
		t.Fatalf("claim: %+v %v", c, err)
	}
	other := id + "#publish-0001"
	if c, err := led.Claim(ctx, start(other, id), "w3", time.Minute); err != nil || !c.Granted {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if err := led.Release(ctx, other, "w3", ledger.Retrying, "a failed attempt"); err != nil {
		t.Fatal(err)
	}
	// The running range's worker stops at its next heartbeat.
	stopped := make(chan error, 1)
	go func() {
		for {
			err := led.Renew(ctx, running, "w2", time.Minute, 10, 4)
			if errors.Is(err, ledger.ErrPauseRequested) {
				stopped <- led.Stopped(ctx, running, "w2", ledger.Paused, 10, 4, []byte(`{}`), nil)
				return
			}
			if err != nil {
				stopped <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	r := run(t, "", "run", "pause", id, "--wait", "30s")
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if r.code != ExitOK || !strings.Contains(r.stdout, `"status":"paused"`) || !strings.Contains(r.stdout, `"published":4`) {
		t.Fatalf("pause: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "", "status", id); !strings.Contains(r.stdout, `"status":"paused"`) {
		t.Fatalf("status: %q", r.stdout)
	}
	if r := run(t, "", "status", other); !strings.Contains(r.stdout, `"status":"paused"`) {
		t.Fatalf("status of the range between attempts: %q", r.stdout)
	}
}

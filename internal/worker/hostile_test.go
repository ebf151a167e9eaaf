package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
)

// deadLetterOf waits for the next dead letter on b's dead-letter queue.
func (b *bundle) deadLetterOf(t *testing.T, within time.Duration) DeadLetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	d, err := b.dead.Receive(ctx)
	if err != nil {
		t.Fatalf("no dead letter within %s: %v\n%s", within, err, b.logs.String())
	}
	var dl DeadLetter
	if err := json.Unmarshal(d.Body(), &dl); err != nil {
		t.Fatal(err)
	}
	_ = d.Ack(context.Background())
	return dl
}

// keptJob is what the ledger keeps of a run: its row as the worker and a
// resume would read it.
type keptJob struct {
	status, owner, project, fingerprint string
	job                                 []byte
	published                           int64
	result                              []byte
}

func (b *bundle) kept(t *testing.T, requestID string) keptJob {
	t.Helper()
	var k keptJob
	err := dbtest.Pool(t).QueryRow(context.Background(), `SELECT status, coalesce(owner, ''), project_id, coalesce(job_fingerprint, ''),
  convert_to(coalesce(job::text, ''), 'UTF8'), published, convert_to(coalesce(result::text, ''), 'UTF8') FROM segpub_runs WHERE request_id = $1`, b.id(requestID)).
		Scan(&k.status, &k.owner, &k.project, &k.fingerprint, &k.job, &k.published, &k.result)
	if errors.Is(err, pgx.ErrNoRows) {
		return keptJob{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Hostile copies of a job put straight on the job queue, sharing the
// request_id of a run that exists: another job under it is a conflict,
// dead-lettered, and changes nothing of the run (running, paused or
// finished); a malformed copy never turns a run another worker holds
// rejected; a paused run's kept job is never replaced, so its resume
// publishes the job it paused.
func TestHostileJobCopies(t *testing.T) {
	t.Parallel()
	b, counter, _ := controlWorld(t, 0)
	ctx := context.Background()
	send := func(body []byte) {
		t.Helper()
		if err := b.jobs.Send(ctx, body, ""); err != nil {
			t.Fatal(err)
		}
	}
	// other is the same request_id with another message: what a second
	// system reusing ids, or an attacker, would send.
	other := func(text []byte) []byte {
		return bytes.Replace(text, []byte(`"message":{"title":"hi"}`), []byte(`"message":{"title":"another campaign's message"}`), 1)
	}

	t.Run("running", func(t *testing.T) {
		text := b.jobText("r-hostile-running")
		send(text)
		waitFor(t, "publishing to start", func() bool { return b.kept(t, "r-hostile-running").published > 0 })
		before := b.kept(t, "r-hostile-running")
		// A malformed copy (unknown channel) and another job, under the
		// running run's request_id.
		send(bytes.Replace(text, []byte(`"push_notification"`), []byte(`"fax"`), 1))
		send(other(text))
		kinds := map[string]string{}
		for range 2 {
			dl := b.deadLetterOf(t, 30*time.Second)
			kinds[dl.Kind] = dl.Reason
		}
		if !strings.Contains(kinds["rejected"], "unknown channel") || !strings.Contains(kinds["conflict"], "another job") {
			t.Fatalf("dead letters: %v", kinds)
		}
		// Still held by its worker, or finished by it meanwhile: never
		// rejected, never another job's.
		now := b.kept(t, "r-hostile-running")
		if (now.status != string(ledger.Running) || now.owner != before.owner) && now.status != string(ledger.Completed) ||
			now.fingerprint != before.fingerprint {
			t.Fatalf("the running run changed: %+v, was %+v", now, before)
		}
		run := b.waitStatus("r-hostile-running", ledger.Completed)
		var res publish.Result
		if err := json.Unmarshal(run.Result, &res); err != nil || res.Published != int64(len(b.fileOutput(text))) {
			t.Fatalf("the run did not finish whole: %s %v", run.Result, err)
		}
	})

	t.Run("paused", func(t *testing.T) {
		text := b.jobText("r-hostile-paused")
		send(text)
		waitFor(t, "publishing to start", func() bool { return b.kept(t, "r-hostile-paused").published > 0 })
		c, err := b.ledger.Pause(ctx, b.id("r-hostile-paused"))
		if err != nil {
			t.Fatal(err)
		}
		stopped(t, b, c)
		b.waitStatus("r-hostile-paused", ledger.Paused)
		before := b.kept(t, "r-hostile-paused")
		if len(before.job) == 0 {
			t.Fatal("the paused run keeps no job")
		}
		at := counter.n.Load()
		send(other(text))
		if dl := b.deadLetterOf(t, 30*time.Second); dl.Kind != "conflict" || dl.RequestID != b.id("r-hostile-paused") {
			t.Fatalf("dead letter: %+v", dl)
		}
		// A copy of its own job is kept for the resume, the kept job as it
		// was.
		send(text)
		time.Sleep(500 * time.Millisecond)
		now := b.kept(t, "r-hostile-paused")
		if now.status != string(ledger.Paused) || !bytes.Equal(now.job, before.job) || counter.n.Load() != at {
			t.Fatalf("the paused run changed: %+v (published %d, was %d)", now, counter.n.Load(), at)
		}
		if bytes.Contains(now.job, []byte("another campaign's message")) {
			t.Fatal("the paused run keeps the other job")
		}
		resume(t, b, b.id("r-hostile-paused"))
		b.waitStatus("r-hostile-paused", ledger.Completed)
	})

	t.Run("finished", func(t *testing.T) {
		text := b.jobText("r-hostile-done")
		send(text)
		b.waitStatus("r-hostile-done", ledger.Completed)
		before := b.kept(t, "r-hostile-done")
		otherProject := bytes.Replace(text, []byte(`"project_id":"`+b.tables.Project+`"`), []byte(`"project_id":"p_someone_else"`), 1)
		send(otherProject)
		if dl := b.deadLetterOf(t, 30*time.Second); dl.Kind != "conflict" || !strings.Contains(dl.Reason, "completed") {
			t.Fatalf("dead letter: %+v", dl)
		}
		// A malformed copy: dead-lettered, the finished run as it was.
		send([]byte(fmt.Sprintf(`{"version":1,"request_id":%q}`, b.id("r-hostile-done"))))
		if dl := b.deadLetterOf(t, 30*time.Second); dl.Kind != "rejected" {
			t.Fatalf("dead letter: %+v", dl)
		}
		if now := b.kept(t, "r-hostile-done"); now.status != before.status || now.project != before.project ||
			now.published != before.published || !bytes.Equal(now.result, before.result) {
			t.Fatalf("the finished run changed: %+v, was %+v", now, before)
		}
	})
}

// Copies of one job in another layout (keys reordered, spaces) are the
// same job.
func TestJobFingerprintIsTheJobs(t *testing.T) {
	t.Parallel()
	a := ledger.JobFingerprint([]byte(`{"version":1,"request_id":"r","campaign":{"id":"c","n":1.50}}`))
	b := ledger.JobFingerprint([]byte("{ \"campaign\": {\"n\":1.50, \"id\":\"c\"},\n \"request_id\":\"r\", \"version\":1 }"))
	c := ledger.JobFingerprint([]byte(`{"version":1,"request_id":"r","campaign":{"id":"c","n":1.5}}`))
	if a != b || a == c {
		t.Fatalf("fingerprints %s %s %s", a, b, c)
	}
}

// Forged and stale sub-jobs put straight on the job queue (no such
// partitioned run, a run that is not partitioned, a range it does not
// have, an unknown phase) are dead-lettered after the attempt limit like
// any failing job, never redelivered forever.
func TestHostileSubJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, 200)
	b.worker(Config{MaxAttempts: 2})
	ctx := context.Background()
	send := func(body string) {
		t.Helper()
		if err := b.jobs.Send(ctx, []byte(body), ""); err != nil {
			t.Fatal(err)
		}
	}
	whole := b.jobText("r-sub-whole")
	send(string(whole))
	b.waitStatus("r-sub-whole", ledger.Completed)
	forged := []string{
		`{"segpub_part":{"parent":"no-such-run","phase":"scan","index":0}}`,
		fmt.Sprintf(`{"segpub_part":{"parent":%q,"phase":"publish","index":0}}`, b.id("r-sub-whole")),
		fmt.Sprintf(`{"segpub_part":{"parent":%q,"phase":"evil","index":0}}`, b.id("r-sub-whole")),
		fmt.Sprintf(`{"segpub_part":{"parent":%q,"phase":"scan","index":-1}}`, b.id("r-sub-whole")),
		`{"segpub_part":{"parent":"a\u0000b","phase":"scan","index":0}}`,
	}
	for _, f := range forged {
		send(f)
	}
	got := map[string]DeadLetter{}
	for range forged {
		dl := b.deadLetterOf(t, 60*time.Second)
		got[string(dl.Job)] = dl
	}
	for _, f := range forged {
		dl, ok := got[f]
		if !ok {
			t.Errorf("sub-job %s was not dead-lettered: %v", f, got)
			continue
		}
		if dl.Kind != "exhausted" || dl.Attempts != 2 || !strings.Contains(dl.Reason, "sub-job") {
			t.Errorf("dead letter of %s: %+v", f, dl)
		}
	}
	// The run the forged sub-jobs named is as it was.
	if run := b.waitStatus("r-sub-whole", ledger.Completed); run.Published == 0 {
		t.Fatalf("run %+v", run)
	}
}

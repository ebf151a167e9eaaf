package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/events"
	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/msgstore/pgstore"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/partition"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue/jsqueue"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
	"github.com/segpub/segpub/internal/sink/filesink"
	"github.com/segpub/segpub/internal/sink/jssink"
)

var seq atomic.Int64

// bundle is a worker's world: a seeded project, JetStream streams of the
// test's own, a ledger and a message store.
type bundle struct {
	t        *testing.T
	tables   schema.Tables
	conn     *natsjs.Conn
	jobs     *jsqueue.Queue
	dead     *jsqueue.Queue
	sink     *jssink.Sink
	stream   string
	ledger   *ledger.Ledger
	store    *pgstore.Store
	runner   *publish.Runner
	natsURL  string
	nextName string
	users    int
	n        int64 // names the test's streams
	// logs holds what the bundle's workers log, shown when a run is stuck.
	logs *lockedWriter
}

// faultScale is the size of the fault-injection cases: 3,000 users
// (partitioned in ranges of 400) in make test, more under make
// reliability, which sets SEGPUB_RELIABILITY_USERS.
func faultScale() (users, partitionRows int) {
	users = 3000
	if n, err := strconv.Atoi(os.Getenv("SEGPUB_RELIABILITY_USERS")); err == nil && n > users {
		users = n
	}
	return users, users * 2 / 15
}

func setup(t *testing.T, users int) *bundle {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	tables, _ := schema.For(dbtest.NewProjectID())
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(ctx, pool, seed.Config{ProjectID: tables.Project, Users: users}); err != nil {
		t.Fatal(err)
	}
	c := &natsjs.Connector{DefaultDir: t.TempDir()}
	t.Cleanup(c.Close)
	conn, err := c.Connect(ctx, "embedded:")
	if err != nil {
		t.Fatal(err)
	}
	n := seq.Add(1)
	b := &bundle{t: t, tables: tables, conn: conn, stream: fmt.Sprintf("CH%d", n), users: users, n: n,
		logs: &lockedWriter{w: &bytes.Buffer{}}}
	if b.jobs, err = jsqueue.New(ctx, jsqueue.Config{Conn: conn, Stream: fmt.Sprintf("J%d", n), Subject: fmt.Sprintf("jobs.%d", n), AckWait: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if b.dead, err = jsqueue.New(ctx, jsqueue.Config{Conn: conn, Stream: fmt.Sprintf("D%d", n), Subject: fmt.Sprintf("dead.%d", n)}); err != nil {
		t.Fatal(err)
	}
	if b.sink, err = jssink.New(ctx, jssink.Config{Conn: conn, Stream: b.stream, Subject: fmt.Sprintf("ch.%d.{channel}", n)}); err != nil {
		t.Fatal(err)
	}
	if b.ledger, err = ledger.New(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if b.store, err = pgstore.New(ctx, pool, "segpub_test_messages"); err != nil {
		t.Fatal(err)
	}
	if b.runner, err = publish.New(publish.Config{Pool: pool}); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bundle) worker(cfg Config) *Worker {
	b.t.Helper()
	cfg.Queue, cfg.DeadLetter, cfg.Store, cfg.Ledger, cfg.Sink = b.jobs, b.dead, b.store, b.ledger, cmpSink(cfg.Sink, b.sink)
	if cfg.Runner == nil {
		cfg.Runner = b.runner
	}
	if cfg.Partitions == nil {
		// As in serve: sub-jobs run, and jobs are not split.
		cfg.Partitions = b.partitions(0, nil, nil, nil)
	}
	cfg.Lease = 3 * time.Second
	cfg.Backoff = func(int) time.Duration { return 100 * time.Millisecond }
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(b.logs, nil)).With("worker", cfg.Owner)
	}
	w, err := New(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// partitions splits jobs over rows users (0: never), planned by engine
// (default: b's engine) on pool (default: the test database, which also
// holds the ledger), with the failpoints fp.
func (b *bundle) partitions(rows int, engine partition.Engine, pool *pgxpool.Pool, fp *failpoint.Set) *partition.Coordinator {
	b.t.Helper()
	if engine == nil {
		engine = b.runner
	}
	if pool == nil {
		pool = dbtest.Pool(b.t)
	}
	c, err := partition.New(partition.Config{Audience: pool, State: pool, Queue: b.jobs, Engine: engine, Rows: rows, Failpoints: fp})
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

func cmpSink(a, b publish.Sink) publish.Sink {
	if a != nil {
		return a
	}
	return b
}

// jobText is a push job; request ids are made unique per test because the
// ledger table outlives test runs.
func (b *bundle) jobText(requestID string) []byte {
	requestID = b.id(requestID)
	return fmt.Appendf(nil, `{"version":1,"action":"publish","request_id":%q,"project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"cmp","channel":"push_notification","audience":{"type":"all"},"message":{"title":"hi"}}}`, requestID, b.tables.Project)
}

func (b *bundle) id(requestID string) string { return requestID + "-" + b.tables.Project }

// waitStatus polls the ledger until the run reaches status. The deadline
// only ends a stuck run: a fault case on a loaded 2-core machine (every
// package's tests at once, retries waiting out 3 s leases) runs several
// times longer than alone.
func (b *bundle) waitStatus(requestID string, status ledger.Status) *ledger.Run {
	b.t.Helper()
	requestID = b.id(requestID)
	deadline := time.Now().Add(2*time.Minute + time.Duration(b.users)*time.Millisecond)
	for time.Now().Before(deadline) {
		r, err := b.ledger.Get(context.Background(), requestID)
		if err == nil && r.Status == status {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	r, err := b.ledger.Get(context.Background(), requestID)
	b.t.Fatalf("run %s did not reach %s: %+v %v\n%s", requestID, status, r, err, b.diagnose(requestID))
	return nil
}

// diagnose describes a stuck run: its ranges' runs, and the end of what
// the workers logged.
func (b *bundle) diagnose(requestID string) string {
	var out strings.Builder
	rows, err := dbtest.Pool(b.t).Query(context.Background(),
		`SELECT request_id, status, attempts, coalesce(owner, ''), coalesce(error, '') FROM segpub_runs WHERE parent = $1 ORDER BY request_id`, requestID)
	if err == nil {
		for rows.Next() {
			var id, status, owner, errText string
			var attempts int
			if rows.Scan(&id, &status, &attempts, &owner, &errText) == nil {
				fmt.Fprintf(&out, "range %s: %s, %d attempts, owner %q, error %q\n", id, status, attempts, owner, errText)
			}
		}
		rows.Close()
	}
	lines := strings.Split(b.logs.String(), "\n")
	out.WriteString("workers' last log lines:\n")
	out.WriteString(strings.Join(lines[max(0, len(lines)-80):], "\n"))
	return out.String()
}

// channelMessages drains the channel stream's messages.
func (b *bundle) channelMessages() [][]byte {
	b.t.Helper()
	cons, err := b.conn.JS.OrderedConsumer(context.Background(), b.stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.t.Fatal(err)
	}
	info, err := b.conn.JS.Stream(context.Background(), b.stream)
	if err != nil {
		b.t.Fatal(err)
	}
	total := int(info.CachedInfo().State.Msgs)
	var out [][]byte
	for len(out) < total {
		batch, err := cons.Fetch(total-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			b.t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m.Data())
		}
	}
	return out
}

// fileOutput is what `segpub publish` of the same job writes.
func (b *bundle) fileOutput(jobText []byte) [][]byte {
	b.t.Helper()
	dir := b.t.TempDir()
	s, err := filesink.New("file://" + dir + "/{channel}.ndjson")
	if err != nil {
		b.t.Fatal(err)
	}
	j, err := job.Parse(jobText)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.runner.Run(context.Background(), j, s); err != nil {
		b.t.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(filepath.Join(dir, "push_notification.ndjson"))
	if err != nil {
		b.t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func sameMessages(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("message %d differs:\n got  %s\n want %s", i, got[i], want[i])
		}
	}
}

// A job from the queue yields exactly the messages `segpub publish` writes;
// a second copy of it (a redelivery, a replay) publishes nothing.
func TestServeMatchesPublish(t *testing.T) {
	t.Parallel()
	b := setup(t, 3000)
	b.worker(Config{Concurrency: 2})
	text := b.jobText("r-serve")
	if err := b.jobs.Send(context.Background(), text, ""); err != nil {
		t.Fatal(err)
	}
	run := b.waitStatus("r-serve", ledger.Completed)
	want := b.fileOutput(text)
	sameMessages(t, b.channelMessages(), want)
	var res publish.Result
	if err := json.Unmarshal(run.Result, &res); err != nil || res.Published != int64(len(want)) {
		t.Fatalf("stored result %s: %v", run.Result, err)
	}
	// The same job again, with no queue-level de-duplication id. The job
	// stream is a work queue: once the copy is handled (acknowledged), it
	// holds nothing.
	if err := b.jobs.Send(context.Background(), text, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := b.conn.JS.Stream(context.Background(), fmt.Sprintf("J%d", b.n))
		if err == nil && info.CachedInfo().State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the copy was never handled: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r, _ := b.ledger.Get(context.Background(), b.id("r-serve")); r.Attempts != 1 {
		t.Fatalf("the copy ran again: attempts %d", r.Attempts)
	}
	sameMessages(t, b.channelMessages(), want)
}

// Claim checks are resolved from the message store; a missing item is a
// rejected job, dead-lettered with its reason.
func TestClaimChecksAndRejections(t *testing.T) {
	t.Parallel()
	b := setup(t, 500)
	b.worker(Config{})
	ctx := context.Background()
	if err := b.store.Put(ctx, "m-ok-"+b.tables.Project, b.jobText("r-claim")); err != nil {
		t.Fatal(err)
	}
	send := func(body string) {
		if err := b.jobs.Send(ctx, []byte(body), ""); err != nil {
			t.Fatal(err)
		}
	}
	send(`{"version":1,"message_id":"m-ok-` + b.tables.Project + `"}`)
	b.waitStatus("r-claim", ledger.Completed)
	send(`{"version":1,"message_id":"m-missing"}`)
	send(strings.Replace(string(b.jobText("r-bad")), `"push_notification"`, `"fax"`, 1))
	send(`not json`)
	var reasons []string
	for range 3 {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		d, err := b.dead.Receive(rctx)
		cancel()
		if err != nil {
			t.Fatalf("dead letter: %v", err)
		}
		var dl DeadLetter
		if err := json.Unmarshal(d.Body(), &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Kind != "rejected" || dl.Attempts != 1 {
			t.Fatalf("dead letter %+v", dl)
		}
		reasons = append(reasons, dl.Reason)
		_ = d.Ack(ctx)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{`message_id: no item "m-missing"`, `campaign.channel: unknown channel "fax"`, "malformed JSON"} {
		if !strings.Contains(all, want) {
			t.Errorf("no dead letter says %q:\n%s", want, all)
		}
	}
	if r := b.waitStatus("r-bad", ledger.Rejected); !strings.Contains(r.Error, "unknown channel") {
		t.Fatalf("ledger: %+v", r)
	}
}

// A job over MaxJobBytes, inline or behind a claim check, is rejected before
// it is parsed: dead-lettered at once with the limit, never run, and not
// copied into the dead letter.
func TestOversizedJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, 50)
	const limit = 4096
	b.worker(Config{MaxJobBytes: limit})
	ctx := context.Background()
	// Valid jobs, padded past the limit with JSON white space.
	big := func(requestID string) []byte {
		return append(b.jobText(requestID), bytes.Repeat([]byte(" "), limit)...)
	}
	claim := "m-big-" + b.tables.Project
	if err := b.store.Put(ctx, claim, big("r-big-claim")); err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{big("r-big-inline"), []byte(`{"version":1,"message_id":"` + claim + `"}`)} {
		if err := b.jobs.Send(ctx, body, ""); err != nil {
			t.Fatal(err)
		}
	}
	var reasons []string
	for range 2 {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		d, err := b.dead.Receive(rctx)
		cancel()
		if err != nil {
			t.Fatalf("dead letter: %v", err)
		}
		var dl DeadLetter
		if err := json.Unmarshal(d.Body(), &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Kind != "rejected" || dl.Attempts != 1 {
			t.Fatalf("dead letter %+v", dl)
		}
		if len(d.Body()) > limit {
			t.Errorf("dead letter of %d bytes copies the oversized job", len(d.Body()))
		}
		reasons = append(reasons, dl.Reason)
		_ = d.Ack(ctx)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{
		fmt.Sprintf("the job is %d bytes, over the limit of %d (SEGPUB_MAX_JOB_BYTES)", len(big("r-big-inline")), limit),
		fmt.Sprintf("message_id: item %q in the message store is over the limit of %d bytes (SEGPUB_MAX_JOB_BYTES)", claim, limit),
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no dead letter says %q:\n%s", want, all)
		}
	}
	for _, id := range []string{"r-big-inline", "r-big-claim"} {
		if r, err := b.ledger.Get(ctx, b.id(id)); err == nil {
			t.Errorf("%s ran: %+v", id, r)
		}
	}
}

type panicRunner struct{ calls atomic.Int64 }

func (p *panicRunner) RunWith(context.Context, *job.Job, *publish.Range, publish.Sink, publish.Checkpoint, publish.Hooks) (*publish.Result, error) {
	p.calls.Add(1)
	panic("boom")
}

// A job that panics is retried with backoff, then dead-lettered after its
// attempts; the worker keeps serving other jobs.
func TestPoisonJob(t *testing.T) {
	t.Parallel()
	b := setup(t, 200)
	pr := &panicRunner{}
	b.worker(Config{Runner: pr, MaxAttempts: 3})
	ctx := context.Background()
	if err := b.jobs.Send(ctx, b.jobText("r-poison"), ""); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d, err := b.dead.Receive(rctx)
	if err != nil {
		t.Fatal(err)
	}
	var dl DeadLetter
	_ = json.Unmarshal(d.Body(), &dl)
	if dl.Kind != "exhausted" || dl.Attempts != 3 || !strings.Contains(dl.Reason, "panic: boom") || pr.calls.Load() != 3 {
		t.Fatalf("dead letter %+v after %d calls", dl, pr.calls.Load())
	}
	if r := b.waitStatus("r-poison", ledger.Failed); r.Attempts != 3 {
		t.Fatalf("ledger %+v", r)
	}
}

// slowSink makes each batch take a while, so a job is mid-way when its
// worker is stopped.
type slowSink struct {
	publish.Sink
	delay time.Duration
}

func (s *slowSink) Publish(ctx context.Context, b *publish.Batch) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Sink.Publish(ctx, b)
}

// A worker stopped in the middle of a job (SIGTERM) hands it back; the next
// worker completes it and the channel stream holds every message once.
func TestStopHandsJobBack(t *testing.T) {
	t.Parallel()
	b := setup(t, 3000)
	w1, err := New(Config{Queue: b.jobs, DeadLetter: b.dead, Ledger: b.ledger, Runner: b.runner,
		Sink: &slowSink{Sink: b.sink, delay: 300 * time.Millisecond}, Lease: 3 * time.Second, Owner: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := w1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	text := b.jobText("r-stop")
	if err := b.jobs.Send(ctx, text, ""); err != nil {
		t.Fatal(err)
	}
	// Wait until w1 has published part of the job: a batch acknowledged
	// and checkpointed (messages in the stream alone can be a batch still
	// being sent, which the stop may cut short on a slow machine).
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := b.ledger.Get(ctx, b.id("r-stop")); err == nil && len(r.Checkpoint) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	if err := w1.Stop(stopCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop: %v (the job should still have been running)", err)
	}
	cancel()
	partial, _ := b.ledger.Get(ctx, b.id("r-stop"))
	if partial.Status != ledger.HandedBack || len(partial.Checkpoint) == 0 || partial.Error != "" {
		t.Fatalf("after stop: %+v", partial)
	}
	var cp publish.Checkpoint
	if err := json.Unmarshal(partial.Checkpoint, &cp); err != nil || cp.Published == 0 {
		t.Fatalf("checkpoint %s: %v", partial.Checkpoint, err)
	}
	// The handed-back run shows what was published: the acknowledged
	// messages, at least those of its checkpoint, never more than the
	// stream holds (a batch cut short may have stored part of itself).
	if stored := len(b.channelMessages()); partial.Published < cp.Published || partial.Published > int64(stored) || partial.Candidates == 0 {
		t.Fatalf("handed back with published %d, candidates %d; checkpoint %d, stream %d", partial.Published, partial.Candidates, cp.Published, stored)
	}
	counter := &countSink{Sink: b.sink}
	b.worker(Config{Owner: "w2", Sink: counter})
	run := b.waitStatus("r-stop", ledger.Completed)
	// The attempt handed back by the graceful stop is not counted.
	if run.Attempts != 1 {
		t.Fatalf("attempts %d", run.Attempts)
	}
	want := b.fileOutput(text)
	sameMessages(t, b.channelMessages(), want)
	// The second worker published only what came after the checkpoint.
	if got, left := counter.n.Load(), int64(len(want))-cp.Published; got != left {
		t.Fatalf("second worker published %d messages; %d were left after the checkpoint", got, left)
	}
}

type countSink struct {
	publish.Sink
	n atomic.Int64
}

func (s *countSink) Publish(ctx context.Context, b *publish.Batch) error {
	if err := s.Sink.Publish(ctx, b); err != nil {
		return err
	}
	s.n.Add(int64(len(b.Messages)))
	return nil
}

// A large job is split into ranges that all workers share; with two and
// with four workers, the channel stream holds exactly the messages of one
// `segpub publish` of the job (same bodies: same variants, same throttle
// waves), and the run's result has the same counts.
func TestPartitionedRun(t *testing.T) {
	t.Parallel()
	for _, workers := range []int{2, 4} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			t.Parallel()
			b := setup(t, 3000)
			for i := 0; i < workers; i++ {
				b.worker(Config{Owner: fmt.Sprintf("w%d", i), Partitions: b.partitions(400, nil, nil, nil)})
			}
			text := []byte(strings.Replace(string(b.jobText("r-part")), `"message":{"title":"hi"}`,
				`"message":{"title":"hi"},"experiment_id":"exp_ab","throttle":{"max_per_interval":250,"interval_minutes":10}`, 1))
			if err := b.jobs.Send(context.Background(), text, ""); err != nil {
				t.Fatal(err)
			}
			run := b.waitStatus("r-part", ledger.Completed)
			want := b.fileOutput(text)
			got := b.channelMessages()
			sortBytes(got)
			sortBytes(want)
			if len(got) != len(want) {
				in := map[string]int{}
				for _, w := range want {
					in[string(w)]++
				}
				for _, g := range got {
					if in[string(g)] == 0 {
						t.Logf("extra: %.600s", g)
					}
					in[string(g)]--
				}
			}
			sameMessages(t, got, want)
			var res publish.Result
			if err := json.Unmarshal(run.Result, &res); err != nil {
				t.Fatal(err)
			}
			j, _ := job.Parse(text)
			single, err := b.runner.Run(context.Background(), j, &countSink{Sink: discard{}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Candidates != single.Candidates || res.Published != single.Published || res.Skipped != single.Skipped ||
				fmt.Sprint(res.Variants) != fmt.Sprint(single.Variants) {
				t.Fatalf("partitioned result %+v, single run %+v", res, single)
			}
			// It was split: scan and publish runs of several ranges.
			var parts int
			if err := dbtest.Pool(t).QueryRow(context.Background(), `SELECT count(*) FROM segpub_runs WHERE parent = $1`, b.id("r-part")).Scan(&parts); err != nil || parts < 4 {
				t.Fatalf("%d partition runs (%v)", parts, err)
			}
		})
	}
}

// A run that published before it could be split (an earlier attempt ran
// it whole, as when planning failed) goes on whole: ranges would publish
// its first part again.
func TestResumedRunIsNotSplit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3000)
	text := b.jobText("r-resumed")
	j, err := job.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	// The earlier attempt: claimed, 100 messages published, then failed.
	if claim, err := b.ledger.Claim(ctx, startOf(j, j.ScheduledAt), "earlier", time.Minute); err != nil || !claim.Granted {
		t.Fatalf("claim: %+v %v", claim, err)
	}
	if err := b.ledger.Renew(ctx, j.RequestID, "earlier", time.Minute, 3000, 100); err != nil {
		t.Fatal(err)
	}
	if err := b.ledger.Release(ctx, j.RequestID, "earlier", ledger.Retrying, "connection reset"); err != nil {
		t.Fatal(err)
	}
	b.worker(Config{Owner: "w0", Partitions: b.partitions(400, nil, nil, nil)})
	if err := b.jobs.Send(ctx, text, ""); err != nil {
		t.Fatal(err)
	}
	b.waitStatus("r-resumed", ledger.Completed)
	var parts int
	if err := dbtest.Pool(t).QueryRow(ctx, `SELECT count(*) FROM segpub_runs WHERE parent = $1`, j.RequestID).Scan(&parts); err != nil || parts != 0 {
		t.Fatalf("%d partition runs (%v), want the run whole", parts, err)
	}
	got, want := b.channelMessages(), b.fileOutput(text)
	sortBytes(got)
	sortBytes(want)
	sameMessages(t, got, want)
}

type discard struct{ publish.Plain }

func (discard) Publish(context.Context, *publish.Batch) error { return nil }

func sortBytes(s [][]byte) {
	sort.Slice(s, func(i, j int) bool { return bytes.Compare(s[i], s[j]) < 0 })
}

// A large job does not starve small ones: its ranges are sub-jobs on the
// same queue, so a small job sent while a partitioned run is under way is
// taken between ranges and completes long before the large one, even on a
// worker that runs one job at a time.
func TestPartitionsInterleaveWithOtherJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, 3000)
	b.worker(Config{Owner: "w0", Concurrency: 1, Partitions: b.partitions(400, nil, nil, nil),
		Sink: &slowSink{Sink: b.sink, delay: 300 * time.Millisecond}})
	ctx := context.Background()
	if err := b.jobs.Send(ctx, b.jobText("r-large"), ""); err != nil {
		t.Fatal(err)
	}
	// Wait until the large job has been planned into ranges.
	pool := dbtest.Pool(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var parts int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM segpub_runs WHERE parent = $1`, b.id("r-large")).Scan(&parts); err != nil {
			t.Fatal(err)
		}
		if parts > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the large job was never split")
		}
		time.Sleep(20 * time.Millisecond)
	}
	small := []byte(strings.Replace(string(b.jobText("r-small")), `{"type":"all"}`, `{"type":"user_ids","user_ids":["a","b"]}`, 1))
	if err := b.jobs.Send(ctx, small, ""); err != nil {
		t.Fatal(err)
	}
	smallRun := b.waitStatus("r-small", ledger.Completed)
	largeRun := b.waitStatus("r-large", ledger.Completed)
	if !smallRun.FinishedAt.Before(*largeRun.FinishedAt) {
		t.Fatalf("small job finished at %v, after the large one (%v)", smallRun.FinishedAt, largeRun.FinishedAt)
	}
	var after int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM segpub_runs WHERE parent = $1 AND finished_at > $2`,
		b.id("r-large"), *smallRun.FinishedAt).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after == 0 {
		t.Fatal("no range of the large job ran after the small job: it waited for the whole large job")
	}
}

// eventLog keeps the events emitted to it.
type eventLog struct {
	mu     sync.Mutex
	events []events.Event
}

func (l *eventLog) Emit(_ context.Context, e events.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	return nil
}

// Every event and log line of a partitioned run carries the run's
// request_id, never a range's ledger id, even when a range fails and is
// retried; a range's own events and lines name it in phase and part.
func TestPartitionedRunOneRequestID(t *testing.T) {
	t.Parallel()
	b := setup(t, 3000)
	fp := &failpoint.Set{}
	fp.Arm(failpoint.AfterFetch, 3, 1)
	runner, err := publish.New(publish.Config{Pool: dbtest.Pool(t), Failpoints: fp})
	if err != nil {
		t.Fatal(err)
	}
	// One writer for both workers: its lock is what keeps their lines whole.
	logs := &lockedWriter{w: &bytes.Buffer{}}
	evs := &eventLog{}
	var workers []*Worker
	for i := range 2 {
		workers = append(workers, b.worker(Config{Owner: fmt.Sprintf("w%d", i), Runner: runner, Partitions: b.partitions(400, runner, nil, fp),
			Events: evs, Logger: slog.New(slog.NewJSONHandler(logs, nil))}))
	}
	if err := b.jobs.Send(context.Background(), b.jobText("r-one-id"), ""); err != nil {
		t.Fatal(err)
	}
	b.waitStatus("r-one-id", ledger.Completed)
	for _, w := range workers {
		if err := w.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	id := b.id("r-one-id")
	retried := false
	evs.mu.Lock()
	defer evs.mu.Unlock()
	for _, e := range evs.events {
		if e.RequestID != id {
			t.Errorf("%s event with request_id %q", e.Type, e.RequestID)
		}
		if e.Type == "retrying" {
			retried = true
			if e.Part == nil || e.Phase == "" {
				t.Errorf("a range's retrying event does not name the range: %+v", e)
			}
		}
		switch e.Type {
		case "started", "partitioned", "completed":
			if e.Part != nil || e.Phase != "" {
				t.Errorf("the run's own %s event names a range: %s %v", e.Type, e.Phase, *e.Part)
			}
		}
	}
	var completed int
	lines := 0
	for _, line := range bytes.Split(bytes.TrimSpace([]byte(logs.String())), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		rid, ok := rec["request_id"]
		if !ok {
			continue
		}
		lines++
		if rid != id {
			t.Errorf("log line with request_id %v: %s", rid, line)
		}
		if rec["msg"] == "partition completed" {
			completed++
			if _, ok := rec["part"]; !ok || (rec["phase"] != "scan" && rec["phase"] != "publish") {
				t.Errorf("a range's line without its phase and part: %s", line)
			}
		}
	}
	if !retried || completed < 4 || lines == 0 {
		t.Fatalf("retried %v; %d ranges completed in %d log lines with a request_id", retried, completed, lines)
	}
}

// lockedWriter lets several workers' handlers write to one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// String returns what was written so far.
func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

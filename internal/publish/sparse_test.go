package publish

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/reliability"
)

func byteStrings(s []string) [][]byte {
	out := make([][]byte, len(s))
	for i, v := range s {
		out[i] = []byte(v)
	}
	return out
}

// mutatingSink changes the audience tables while the run streams: on its
// first batch it deletes some users the query has not reached yet and adds
// new ones there.
type mutatingSink struct {
	captureSink
	b    *testBundle
	done bool
}

func (s *mutatingSink) Publish(ctx context.Context, batch *Batch) error {
	if !s.done {
		s.done = true
		s.b.exec(`DELETE FROM ` + s.b.tables.User + ` WHERE notifly_user_id >= 'u3-00000' AND notifly_user_id < 'u3-00100'`)
		s.b.exec(`INSERT INTO ` + s.b.tables.User + ` (notifly_user_id, email, random_bucket_number)
SELECT 'u3-' || lpad(i::text, 5, '0') || 'x', 'late' || i || '@x.com', 1 FROM generate_series(1, 100) i`)
	}
	return s.captureSink.Publish(ctx, batch)
}

// users inserts n users with ids prefix-00001.. and the email expression
// (of i, the row number).
func (b *testBundle) users(prefix string, n int, email string) {
	b.t.Helper()
	b.exec(`INSERT INTO ` + b.tables.User + ` (notifly_user_id, email, random_bucket_number)
SELECT '` + prefix + `-' || lpad(i::text, 5, '0'), ` + email + `, 1 FROM generate_series(1, ` + fmt.Sprint(n) + `) i`)
}

// smallBatchEmailRun is a runner publishing batches of 100 and a
// project-wide email job.
func (b *testBundle) smallBatchEmailRun() (*Runner, *job.Job) {
	b.t.Helper()
	runner, err := New(Config{Pool: b.pool, BatchSize: 100})
	if err != nil {
		b.t.Fatal(err)
	}
	j, err := job.Parse([]byte(b.jobJSON(`"channel":"email","audience":{"type":"all"}`)))
	if err != nil {
		b.t.Fatal(err)
	}
	return runner, j
}

// Sparse audiences: a first stretch of valid users, then 12,000 users who
// fail every check (more than ten batches of rows that publish nothing),
// then a gap in the id space, then more valid users, while users are
// deleted and added ahead of the stream. The run publishes exactly the
// audience as it stood when its query started (one statement, one
// snapshot), and does not end before its last row (listmonk #1931 ended
// campaigns at the first empty batch).
func TestSparseAudience(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// u1: 500 valid; u2: 12,000 without a usable email; u3: 900 valid
	// after a gap in the id space.
	b.users("u1", 500, `'a' || i || '@x.com'`)
	b.users("u2", 12000, `CASE WHEN i % 3 = 0 THEN NULL WHEN i % 3 = 1 THEN '  ' ELSE 'not-an-email' END`)
	b.exec(`INSERT INTO ` + b.tables.User + ` (notifly_user_id, email, random_bucket_number)
SELECT 'u3-' || lpad((i * 37)::text, 5, '0'), 'c' || i || '@x.com', 1 FROM generate_series(0, 899) i`)
	var want []string
	for i := 1; i <= 500; i++ {
		want = append(want, fmt.Sprintf("a%d@x.com", i))
	}
	for i := 0; i < 900; i++ {
		want = append(want, fmt.Sprintf("c%d@x.com", i))
	}

	runner, j := b.smallBatchEmailRun()
	sink := &mutatingSink{b: b}
	start := time.Now()
	res, err := runner.Run(context.Background(), j, sink)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariant(t, res)
	reliability.Check(t, reliability.Classify(byteStrings(want), byteStrings(destinations(&sink.captureSink))), time.Since(start),
		reliability.Field{Name: "rows", Value: strconv.FormatInt(res.Candidates, 10)})
	if res.Status != StatusCompleted || res.Candidates != 500+12000+900 || res.Skipped.NoContact != 8000 || res.Skipped.InvalidContact != 4000 {
		t.Fatalf("result %+v", res)
	}
	// The deleted users (u3-00000, u3-00037, u3-00074) and the 100 added
	// count on the next run, not this one.
	res, err = runner.Run(context.Background(), j, &captureSink{})
	if err != nil || res.Published != 1400-3+100 {
		t.Fatalf("next run: %+v %v", res, err)
	}
}

// failAfter accepts n batches, then fails: a run that dies mid-way.
type failAfter struct {
	captureSink
	n int
}

func (s *failAfter) Publish(ctx context.Context, b *Batch) error {
	if s.batches >= s.n {
		return fmt.Errorf("injected: channel queue down")
	}
	return s.captureSink.Publish(ctx, b)
}

// A sparse run that dies after its first batches and resumes from its
// last checkpoint publishes every remaining message once: the checkpoint
// sits before the long empty stretch, the resumed run crosses it.
func TestSparseAudienceResume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.users("u1", 250, `'a' || i || '@x.com'`)
	b.users("u2", 12000, `NULL`)
	b.users("u3", 250, `'c' || i || '@x.com'`)
	runner, j := b.smallBatchEmailRun()
	var cp Checkpoint
	first := &failAfter{n: 2}
	start := time.Now()
	if _, err := runner.Resume(context.Background(), j, first, Checkpoint{}, func(c Checkpoint) error { cp = c; return nil }); err == nil {
		t.Fatal("the failing run succeeded")
	}
	if cp.Published != 200 {
		t.Fatalf("checkpoint %+v, want after 200 messages", cp)
	}
	second := &captureSink{}
	res, err := runner.Resume(context.Background(), j, second, cp, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariant(t, res)
	got := append(destinations(&first.captureSink), destinations(second)...)
	var want []string
	for i := 1; i <= 250; i++ {
		want = append(want, fmt.Sprintf("a%d@x.com", i))
	}
	for i := 1; i <= 250; i++ {
		want = append(want, fmt.Sprintf("c%d@x.com", i))
	}
	reliability.Check(t, reliability.Classify(byteStrings(want), byteStrings(got)), time.Since(start),
		reliability.Field{Name: "rows", Value: strconv.FormatInt(res.Candidates, 10)})
	if res.Published != 500 || res.Candidates != 12500 {
		t.Fatalf("resumed result %+v", res)
	}
}

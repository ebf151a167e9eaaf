package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/segpub/segpub/internal/job"
)

// limitSink is a destination with a message size limit, like a NATS server
// (max_payload) or SQS: a batch holding a larger message fails whole.
type limitSink struct {
	captureSink
	limit int
	// failAfter, when positive, fails every batch after that many.
	failAfter int
	calls     int
}

func (s *limitSink) Capabilities() Capabilities { return Capabilities{MaxMessageBytes: s.limit} }

func (s *limitSink) Publish(ctx context.Context, b *Batch) error {
	for _, m := range b.Messages {
		if len(m.Body) > s.limit {
			return errors.New("maximum payload exceeded")
		}
	}
	s.calls++
	if s.failAfter > 0 && s.calls > s.failAfter {
		return errors.New("queue unavailable")
	}
	return s.captureSink.Publish(ctx, b)
}

// One candidate whose message is over the destination's limit is skipped
// before it is sent and counted under unpublishable.message_too_large; the
// run goes on. It keeps its throttle place, and a resumed run skips it
// again even when it lies before the checkpoint.
func TestOversizedMessageSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := 1; i <= 8; i++ {
		id := fmt.Sprintf("u%d", i)
		b.user(id, nil, nil, nil, "", 0)
		token := "tok-" + id
		if i == 2 {
			token = strings.Repeat("t", 5000)
		}
		b.device("d"+id, id, token, "ios")
	}
	text := b.jobJSON(`"channel":"push_notification","audience":{"type":"all"},"throttle":{"max_per_interval":2,"interval_minutes":10}`)
	j, err := job.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var traced atomic.Int64
	runner, err := New(Config{Pool: b.pool, BatchSize: 3, Trace: func(o Outcome) {
		if o.Reason == ReasonMessageTooLarge && o.UserID == "u2" {
			traced.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	sink := &limitSink{limit: 4000}
	res, err := runner.Run(context.Background(), j, sink)
	if err != nil {
		t.Fatalf("one oversized message failed the run: %v", err)
	}
	checkInvariant(t, res)
	if res.Status != StatusCompleted || res.Candidates != 8 || res.Published != 7 || res.Unpublishable.MessageTooLarge != 1 || traced.Load() != 1 {
		t.Fatalf("result %+v, traced %d", res, traced.Load())
	}
	equalStrings(t, "users", userIDs(&sink.captureSink), []string{"u1", "u3", "u4", "u5", "u6", "u7", "u8"})
	// u2 held message 1 of wave 0: u3 is message 2, in wave 1.
	sendAt := func(i int) string { return sink.msgs[i]["send_at"].(string) }
	if sendAt(0) != "2026-11-24T09:00:00Z" || sendAt(1) != "2026-11-24T09:10:00Z" || sendAt(2) != "2026-11-24T09:10:00Z" {
		t.Fatalf("send_at %s %s %s", sendAt(0), sendAt(1), sendAt(2))
	}
	body, _ := json.Marshal(res)
	if !strings.Contains(string(body), `"unpublishable":{"message_too_large":1}`) {
		t.Fatalf("result JSON %s", body)
	}

	// A first attempt that stops after one batch (u1, u3, u4: u2 was
	// skipped in it), resumed from its checkpoint.
	first := &limitSink{limit: 4000, failAfter: 1}
	var cp Checkpoint
	if _, err := runner.Resume(context.Background(), j, first, Checkpoint{}, func(c Checkpoint) error { cp = c; return nil }); err == nil {
		t.Fatal("first attempt did not fail")
	}
	if cp.After != "u4" || cp.Published != 3 {
		t.Fatalf("checkpoint %+v", cp)
	}
	second := &limitSink{limit: 4000}
	again, err := runner.Resume(context.Background(), j, second, cp, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := append(append([]string(nil), first.raw...), second.raw...)
	equalStrings(t, "messages over both attempts", got, sink.raw)
	if again.Published != res.Published || again.Unpublishable != res.Unpublishable || again.Candidates != res.Candidates {
		t.Fatalf("resumed %+v, uninterrupted %+v", again, res)
	}

	// Without a limit, nothing is unpublishable and the field is absent.
	plain, _ := b.run(text)
	if body, _ := json.Marshal(plain); plain.Published != 8 || strings.Contains(string(body), "unpublishable") {
		t.Fatalf("no limit: %s", body)
	}
}

// cancelSink accepts `ok` batches, then cancels the run's context (an
// operator's SIGINT) and reports it, as a sink interrupted mid-batch does.
type cancelSink struct {
	captureSink
	ok     int
	cancel context.CancelFunc
}

func (s *cancelSink) Publish(ctx context.Context, b *Batch) error {
	if s.ok == 0 {
		s.cancel()
		return ctx.Err()
	}
	s.ok--
	return s.captureSink.Publish(ctx, b)
}

// A failed run's result counts exactly the messages the destination
// acknowledged, in all and by variant: not those encoded and queued for the
// sink. So does a resumed run that fails again.
func TestFailedRunCountsAcknowledged(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(`INSERT INTO ` + b.tables.Variants + ` VALUES ('va', 'x', 'c', 'A', 1), ('vb', 'x', 'c', 'B', 1)`)
	for i := 0; i < 60; i++ {
		b.user(fmt.Sprintf("u%02d", i), nil, fmt.Sprintf("user%d@x.com", i), nil, "", (i*1777)%10000)
	}
	text := b.jobJSON(`"channel":"email","experiment_id":"x","audience":{"type":"all"}`)
	j, err := job.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	// variantsOf counts the captured messages by variant.
	variantsOf := func(s *captureSink) map[string]int64 {
		out := map[string]int64{"va": 0, "vb": 0}
		for _, m := range s.msgs {
			out[m["variant_id"].(string)]++
		}
		return out
	}
	same := func(what string, res *Result, s *captureSink, before int64, beforeVariants map[string]int64) {
		t.Helper()
		want := variantsOf(s)
		for k, v := range beforeVariants {
			want[k] += v
		}
		if res.Status != StatusFailed || res.Published != before+int64(len(s.raw)) || fmt.Sprint(res.Variants) != fmt.Sprint(want) {
			t.Fatalf("%s: result published %d variants %v; the destination acknowledged %d (%v)",
				what, res.Published, res.Variants, before+int64(len(s.raw)), want)
		}
	}

	failing := &failingSink{ok: 2}
	var cp Checkpoint
	res, err := b.runner.Resume(context.Background(), j, failing, Checkpoint{}, func(c Checkpoint) error { cp = c; return nil })
	if err == nil {
		t.Fatal("no error")
	}
	same("sink failing after 2 batches", res, &failing.captureSink, 0, nil)
	if cp.Published != int64(len(failing.raw)) || fmt.Sprint(cp.Variants) != fmt.Sprint(variantsOf(&failing.captureSink)) {
		t.Fatalf("checkpoint %+v", cp)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	interrupted := &cancelSink{ok: 3, cancel: cancel}
	res, err = b.runner.Run(ctx, j, interrupted)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	same("interrupted after 3 batches", res, &interrupted.captureSink, 0, nil)

	// Resumed from the first attempt's checkpoint, failing at once and
	// after one batch.
	for _, ok := range []int{0, 1} {
		again := &failingSink{ok: ok}
		res, err = b.runner.Resume(context.Background(), j, again, cp, nil)
		if err == nil {
			t.Fatal("no error")
		}
		same(fmt.Sprintf("resumed, failing after %d batches", ok), res, &again.captureSink, cp.Published, cp.Variants)
	}
}

// A resumed run stopped before it could start (its context ended while it
// prepared) still reports what its checkpoint says was published.
func TestResumeStoppedEarlyKeepsCheckpointCount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.user("u1", nil, "a@x.com", nil, "", 0)
	j, err := job.Parse([]byte(b.jobJSON(`"channel":"email","audience":{"type":"all"}`)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := b.runner.Resume(ctx, j, &captureSink{}, Checkpoint{After: "u0", Published: 41}, nil)
	if err == nil || res.Published != 41 {
		t.Fatalf("result %+v, err %v", res, err)
	}
}

package scheduler

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/reliability"
)

func mustSchedule(t *testing.T, s string) *parsed {
	t.Helper()
	p, err := ParseSchedule(json.RawMessage(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func times(ts []time.Time) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.UTC().Format("01-02T15:04"))
	}
	return strings.Join(out, " ")
}

func TestOccurrences(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	from := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC) // Monday
	to := from.Add(72 * time.Hour)
	cases := []struct{ schedule, want string }{
		// 09:00 in Seoul is 00:00 UTC: the occurrence exactly at `from` is out, (from, to] is in.
		{`{"kind":"daily","time":"09:00"}`, "11-24T00:00 11-25T00:00 11-26T00:00"},
		{`{"kind":"daily","time":"18:30","time_zone":"UTC"}`, "11-23T18:30 11-24T18:30 11-25T18:30"},
		{`{"kind":"daily","time":"09:00","start_date":"2026-11-25","end_date":"2026-11-25"}`, "11-25T00:00"},
		{`{"kind":"weekly","time":"10:00","weekdays":["mon","wed"]}`, "11-23T01:00 11-25T01:00"},
		{`{"kind":"once","time":"12:00","date":"2026-11-24"}`, "11-24T03:00"},
		{`{"kind":"once","time":"12:00","date":"2026-12-24"}`, ""},
		{`{"kind":"daily","time":"09:00","time_zone":"America/New_York"}`, "11-23T14:00 11-24T14:00 11-25T14:00"},
	}
	for _, c := range cases {
		if got := times(mustSchedule(t, c.schedule).Occurrences(created, from, to)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.schedule, got, c.want)
		}
	}
	imm := mustSchedule(t, `{"kind":"immediate"}`)
	if got := imm.Occurrences(from.Add(time.Hour), from, to); len(got) != 1 {
		t.Errorf("immediate: %v", got)
	}
}

func TestScheduleErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`{"kind":"hourly"}`:                                                                 `schedule.kind: unknown kind "hourly"`,
		`{"kind":"daily","time":"25:00"}`:                                                   `schedule.time: want HH:MM`,
		`{"kind":"weekly","time":"09:00"}`:                                                  `schedule.weekdays: required`,
		`{"kind":"weekly","time":"09:00","weekdays":["mon","funday"]}`:                      `schedule.weekdays[1]: unknown day "funday"`,
		`{"kind":"once","time":"09:00"}`:                                                    `schedule.date: required`,
		`{"kind":"daily","time":"09:00","time_zone":"Mars/Base"}`:                           `schedule.time_zone: unknown time zone "Mars/Base"`,
		`{"kind":"daily","time":"09:00","start_date":"2026-12-01","end_date":"2026-11-01"}`: `schedule.end_date: 2026-11-01 is before start_date`,
		`{"kind":"daily","time":"09:00","every":"day"}`:                                     `unknown field "every"`,
	}
	for s, want := range cases {
		if _, err := ParseSchedule(json.RawMessage(s)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", s, err, want)
		}
	}
}

// recorder is a job queue that keeps what was sent; Send is slow, to widen
// the window in which two schedulers race.
type recorder struct {
	mu   sync.Mutex
	sent map[string]int
	jobs [][]byte
	max  int // MaxMessageBytes; 0: 1 MiB
}

func (r *recorder) MaxMessageBytes() int { return cmp.Or(r.max, 1<<20) }

func (r *recorder) Send(_ context.Context, body []byte, dedupID string) error {
	time.Sleep(5 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent == nil {
		r.sent = map[string]int{}
	}
	r.sent[dedupID]++
	r.jobs = append(r.jobs, body)
	return nil
}

func addCampaign(t *testing.T, s *Store, id, schedule string) {
	t.Helper()
	err := s.Add(context.Background(), Campaign{ProjectID: "p1", Schedule: json.RawMessage(schedule),
		Campaign: json.RawMessage(fmt.Sprintf(`{"id":%q,"channel":"email","audience":{"type":"all"},"message":{"s":"x"}}`, id))})
	if err != nil {
		t.Fatal(err)
	}
}

// Two schedulers waking at the same moments over the same campaigns send
// each occurrence once.
func TestRacingSchedulers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := NewStore(ctx, dbtest.IsolatedPool(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		addCampaign(t, store, fmt.Sprintf("c%d", i), `{"kind":"daily","time":"09:00","time_zone":"UTC"}`)
	}
	addCampaign(t, store, "now", `{"kind":"immediate"}`)
	q := &recorder{}
	clock := time.Now().UTC()
	now := func() time.Time { return clock }
	a, _ := New(Config{Store: store, Queue: q, Now: now, CatchUp: 48 * time.Hour})
	b, _ := New(Config{Store: store, Queue: q, Now: now, CatchUp: 48 * time.Hour})
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for _, s := range []*Scheduler{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Tick(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		clock = clock.Add(24 * time.Hour)
	}
	// Each daily campaign: 2 occurrences in the first wake's 48h window,
	// then one a day; the immediate one once.
	if want := 10*4 + 1; len(q.sent) != want {
		t.Fatalf("%d distinct occurrences sent, want %d", len(q.sent), want)
	}
	for id, n := range q.sent {
		if n != 1 {
			t.Fatalf("%s sent %d times", id, n)
		}
	}
	// What was sent is a valid job for its occurrence.
	j, err := job.Parse(q.jobs[0])
	if err != nil || !strings.HasPrefix(j.RequestID, "sched:") || j.ScheduledAt.IsZero() {
		t.Fatalf("sent job: %v %+v", err, j)
	}
	list, _ := store.List(ctx)
	for _, c := range list {
		if c.ID == "now" && c.Status != Ended {
			t.Fatalf("immediate campaign not ended: %s", c.Status)
		}
	}
}

// After a day down, only occurrences inside the catch-up window are sent;
// the older ones are reported as stale, once.
func TestStaleOccurrences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := NewStore(ctx, dbtest.IsolatedPool(t))
	if err != nil {
		t.Fatal(err)
	}
	addCampaign(t, store, "hourlyish", `{"kind":"daily","time":"09:00","time_zone":"UTC"}`)
	q := &recorder{}
	// Down since before yesterday's 09:00; wakes today at 09:30.
	today := time.Now().UTC().Truncate(24 * time.Hour).Add(9*time.Hour + 30*time.Minute)
	s, _ := New(Config{Store: store, Queue: q, Now: func() time.Time { return today }, CatchUp: time.Hour})
	start := time.Now()
	rep, err := s.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Enqueued) != 1 || !strings.HasSuffix(rep.Enqueued[0], today.Format("2006-01-02")+"T09:00:00Z") {
		t.Fatalf("enqueued %v", rep.Enqueued)
	}
	if len(rep.Stale) == 0 {
		t.Fatal("yesterday's occurrence not reported stale")
	}
	stale := len(rep.Stale)
	rep, _ = s.Tick(ctx)
	if len(rep.Stale) != 0 || len(rep.Enqueued) != 0 || len(q.sent) != 1 {
		t.Fatalf("second wake: %+v, sent %v", rep, q.sent)
	}
	// The messages here are the occurrences sent to the job queue.
	want := [][]byte{[]byte(RequestID("hourlyish", today.Add(-30*time.Minute)))}
	q.mu.Lock()
	defer q.mu.Unlock()
	reliability.Check(t, reliability.ClassifyCounts(want, q.sent), time.Since(start),
		reliability.Field{Name: "reported stale", Value: strconv.Itoa(stale)})
}

func TestAddValidates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := NewStore(ctx, dbtest.IsolatedPool(t))
	if err != nil {
		t.Fatal(err)
	}
	err = store.Add(ctx, Campaign{ProjectID: "p1", Schedule: json.RawMessage(`{"kind":"immediate"}`),
		Campaign: json.RawMessage(`{"id":"x","channel":"fax","audience":{"type":"all"},"message":{}}`)})
	if err == nil || !strings.Contains(err.Error(), `campaign.channel: unknown channel "fax"`) {
		t.Fatalf("bad channel: %v", err)
	}
	addCampaign(t, store, "dup", `{"kind":"immediate"}`)
	if err := store.Add(ctx, Campaign{ProjectID: "p1", Schedule: json.RawMessage(`{"kind":"immediate"}`),
		Campaign: json.RawMessage(`{"id":"dup","channel":"email","audience":{"type":"all"},"message":{}}`)}); err == nil {
		t.Fatal("duplicate id accepted")
	}
	if err := store.SetStatus(ctx, "dup", Ended); err != nil {
		t.Fatal(err)
	}
	if err := store.SetStatus(ctx, "dup", Active); err == nil {
		t.Fatal("resumed an ended campaign")
	}
}

// After the state database is restored from an old snapshot, the
// occurrences recorded since the snapshot are gone. Those older than the
// catch-up window are reported as stale, never sent again; the one inside
// the window is sent again under the same request id, which the run
// ledger (or the channel's de-duplication) recognises.
func TestRestoredSnapshot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.IsolatedPool(t)
	store, err := NewStore(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	addCampaign(t, store, "daily", `{"kind":"daily","time":"09:00","time_zone":"UTC"}`)
	q := &recorder{}
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(9*time.Hour + 30*time.Minute)
	now := day
	s, _ := New(Config{Store: store, Queue: q, Now: func() time.Time { return now }, CatchUp: time.Hour})
	for d := 0; d < 3; d++ {
		now = day.AddDate(0, 0, d)
		if _, err := s.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(q.sent) != 3 {
		t.Fatalf("before the restore: sent %v", q.sent)
	}
	// The snapshot was taken on the first day at 10:00.
	if _, err := pool.Exec(ctx, `DELETE FROM segpub_occurrences WHERE occurrence > $1`, day.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	now = day.AddDate(0, 0, 2).Add(10 * time.Minute)
	q.mu.Lock()
	before := maps.Clone(q.sent)
	q.mu.Unlock()
	start := time.Now()
	rep, err := s.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, third := day.AddDate(0, 0, 1).Add(-30*time.Minute), day.AddDate(0, 0, 2).Add(-30*time.Minute)
	if len(rep.Enqueued) != 1 || !strings.HasSuffix(rep.Enqueued[0], third.Format(time.RFC3339)) {
		t.Fatalf("enqueued after the restore: %v", rep.Enqueued)
	}
	found := false
	for _, st := range rep.Stale {
		found = found || strings.HasSuffix(st, second.Format(time.RFC3339))
		if strings.HasSuffix(st, third.Format(time.RFC3339)) {
			t.Fatalf("the occurrence inside the window was reported stale: %v", rep.Stale)
		}
	}
	if !found {
		t.Fatalf("the day-old occurrence was not reported stale: %v", rep.Stale)
	}
	// Sent again only inside the window, and under its old request id.
	q.mu.Lock()
	defer q.mu.Unlock()
	for id, n := range q.sent {
		if n > 1 && !strings.HasSuffix(id, third.Format(time.RFC3339)) {
			t.Fatalf("%s sent %d times", id, n)
		}
	}
	if len(q.sent) != 3 {
		t.Fatalf("a new request id appeared: %v", q.sent)
	}
	// The messages here are the occurrences sent after the restore: only
	// the one inside the window.
	after := map[string]int{}
	for id, n := range q.sent {
		if n > before[id] {
			after[id] = n - before[id]
		}
	}
	reliability.Check(t, reliability.ClassifyCounts([][]byte{[]byte(RequestID("daily", third))}, after),
		time.Since(start), reliability.Field{Name: "reported stale", Value: strconv.Itoa(len(rep.Stale))})
}

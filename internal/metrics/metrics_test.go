package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

type okSink struct{ publish.Plain }

func (okSink) Publish(context.Context, *publish.Batch) error { return nil }

// batchOf builds a batch of the given bodies (sinktest, which has the same
// helper, runs its suite through this package).
func batchOf(ch job.Channel, bodies ...string) *publish.Batch {
	b := &publish.Batch{Channel: ch}
	for _, body := range bodies {
		b.Messages = append(b.Messages, publish.Message{Key: []byte(body[20:84]), Body: []byte(body)})
	}
	return b
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	m := New()
	s := m.Sink(okSink{})
	b := batchOf(job.ChannelKakaoAlimtalk, `{"idempotency_key":"`+strings.Repeat("a", 64)+`"}`, `{"idempotency_key":"`+strings.Repeat("b", 64)+`"}`)
	if err := s.Publish(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	m.JobDone("completed", &publish.Result{Candidates: 10, Published: 2, Skipped: publish.Skipped{NoContact: 5, ControlGroup: 3}}, time.Second)
	m.JobDone("rejected", nil, time.Millisecond)
	// A cancelled run's skips count; a paused run's wait for its end.
	m.JobDone("cancelled", &publish.Result{Candidates: 4, Published: 1, Skipped: publish.Skipped{NoContact: 2, FrequencyCapped: 1}}, time.Second)
	m.JobDone("paused", &publish.Result{Candidates: 100, Skipped: publish.Skipped{NoContact: 50}}, time.Second)
	m.QueueLag(2 * time.Second)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`segpub_messages_published_total{channel="kakao_alimtalk"} 2`,
		`segpub_jobs_total{outcome="completed"} 1`,
		`segpub_jobs_total{outcome="rejected"} 1`,
		`segpub_candidates_skipped_total{reason="no_contact"} 7`,
		`segpub_candidates_skipped_total{reason="control_group"} 3`,
		`segpub_candidates_skipped_total{reason="frequency_capped"} 1`,
		`segpub_candidates_total 14`,
		`segpub_jobs_total{outcome="cancelled"} 1`,
		`segpub_queue_lag_seconds_count 1`,
		`segpub_publish_batch_seconds_count{channel="kakao_alimtalk"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

type fakeStaging struct{ okSink }

func (fakeStaging) Begin(context.Context, publish.RunID, job.Channel, int64) error {
	return nil
}
func (fakeStaging) Commit(context.Context, publish.RunID, job.Channel) error { return nil }

func (s fakeStaging) Capabilities() publish.Capabilities { return publish.Capabilities{Staging: s} }

// The metrics wrapper keeps a staging sink (file://) staging: without
// Begin and Commit the engine would write nothing a run could commit.
func TestSinkKeepsStaging(t *testing.T) {
	if New().Sink(fakeStaging{}).Capabilities().Staging == nil {
		t.Fatal("wrapped staging sink lost Begin and Commit")
	}
}

type limitedSink struct{ okSink }

func (limitedSink) Capabilities() publish.Capabilities {
	return publish.Capabilities{MaxMessageBytes: 1234}
}

// The metrics wrapper keeps the wrapped sink's message size limit visible
// to the engine (serve wraps every channel sink): hidden, one oversized
// message would fail the whole run again.
func TestSinkKeepsMessageLimit(t *testing.T) {
	m := New()
	for s, want := range map[publish.Sink]int{limitedSink{}: 1234, okSink{}: 0} {
		if got := m.Sink(s).Capabilities().MaxMessageBytes; got != want {
			t.Fatalf("%T: wrapped limit %d, want %d", s, got, want)
		}
	}
}

// windowSink has a window, counts duplicates and buffers until Close.
type windowSink struct {
	okSink
	closed bool
	dups   int64
}

func (s *windowSink) Capabilities() publish.Capabilities {
	return publish.Capabilities{Window: 4, Duplicates: func() int64 { return s.dups }}
}

func (s *windowSink) Close() error { s.closed = true; return nil }

// The wrapper keeps the window (without it serve published one batch at a
// time), closes the sink it wraps, and counts the duplicates it reports.
func TestSinkForwardsWindowCloseAndDuplicates(t *testing.T) {
	m := New()
	inner := &windowSink{}
	s := m.Sink(inner)
	if w := s.Capabilities().Window; w != 4 {
		t.Fatalf("wrapped window %d, want 4", w)
	}
	inner.dups = 3
	if err := s.Publish(context.Background(), batchOf(job.ChannelPush, `{"idempotency_key":"`+strings.Repeat("c", 64)+`"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil || !inner.closed {
		t.Fatalf("close: %v, wrapped sink closed %v", err, inner.closed)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if want := `segpub_messages_duplicate_total{channel="push_notification"} 3`; !strings.Contains(string(body), want) {
		t.Fatalf("metrics lack %q", want)
	}
}

// Unpublishable candidates have a metric of their own.
func TestUnpublishableMetric(t *testing.T) {
	m := New()
	m.JobDone("completed", &publish.Result{Candidates: 3, Published: 2, Unpublishable: publish.Unpublishable{MessageTooLarge: 1}}, time.Second)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if want := `segpub_candidates_unpublishable_total{reason="message_too_large"} 1`; !strings.Contains(string(body), want) {
		t.Fatalf("metrics lack %q", want)
	}
}

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
	"github.com/segpub/segpub/internal/sink/sinktest"
)

type okSink struct{}

func (okSink) Publish(context.Context, *publish.Batch) error { return nil }

func TestMetrics(t *testing.T) {
	t.Parallel()
	m := New()
	s := m.Sink(okSink{})
	b := sinktest.BatchFromLines(job.ChannelKakaoAlimtalk, []string{`{"idempotency_key":"` + strings.Repeat("a", 64) + `"}`, `{"idempotency_key":"` + strings.Repeat("b", 64) + `"}`})
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

type fakeStaging struct{}

func (fakeStaging) Publish(context.Context, *publish.Batch) error { return nil }
func (fakeStaging) Begin(context.Context, publish.RunID, job.Channel, int64) error {
	return nil
}
func (fakeStaging) Commit(context.Context, publish.RunID, job.Channel) error { return nil }

// The metrics wrapper keeps a staging sink (file://) staging: without
// Begin and Commit the engine would write nothing a run could commit.
func TestSinkKeepsStaging(t *testing.T) {
	if _, ok := New().Sink(fakeStaging{}).(publish.Staging); !ok {
		t.Fatal("wrapped staging sink lost Begin and Commit")
	}
}

type limitedSink struct{ okSink }

func (limitedSink) MaxMessageBytes(job.Channel) int { return 1234 }

// The metrics wrapper keeps the wrapped sink's message size limit visible
// to the engine (serve wraps every channel sink): hidden, one oversized
// message would fail the whole run again.
func TestSinkKeepsMessageLimit(t *testing.T) {
	m := New()
	for s, want := range map[publish.Sink]int{limitedSink{}: 1234, okSink{}: 0} {
		l, ok := m.Sink(s).(publish.MessageLimiter)
		if !ok || l.MaxMessageBytes(job.ChannelPush) != want {
			t.Fatalf("%T: wrapped limiter %v, want limit %d", s, ok, want)
		}
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

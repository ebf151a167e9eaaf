// Package metrics exposes segpub's Prometheus metrics. It observes from
// wrappers (a sink wrapper, the worker's Observer), so the engine and the
// worker carry no metrics code.
package metrics

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/segpub/segpub/internal/publish"
)

// Metrics is a registry of segpub's metrics.
type Metrics struct {
	reg            *prometheus.Registry
	jobs           *prometheus.CounterVec
	jobSeconds     *prometheus.HistogramVec
	messages       *prometheus.CounterVec
	skipped        *prometheus.CounterVec
	candidates     prometheus.Counter
	publishSeconds *prometheus.HistogramVec
	queueLag       prometheus.Histogram
	duplicates     *prometheus.CounterVec
	unpublishable  *prometheus.CounterVec
}

// New registers the metrics.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		reg: reg,
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "segpub_jobs_total",
			Help: "Jobs finished, by outcome (completed, rejected, failed, paused, cancelled)."}, []string{"outcome"}),
		jobSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "segpub_job_duration_seconds",
			Help: "Wall time of jobs, by outcome.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}, []string{"outcome"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "segpub_messages_published_total",
			Help: "Channel messages acknowledged by the channel destination, by channel."}, []string{"channel"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "segpub_candidates_skipped_total",
			Help: "Candidates not published, by reason, counted when their job completes or is cancelled."}, []string{"reason"}),
		candidates: prometheus.NewCounter(prometheus.CounterOpts{Name: "segpub_candidates_total",
			Help: "Candidates of completed and cancelled jobs."}),
		publishSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "segpub_publish_batch_seconds",
			Help: "Time for the channel destination to acknowledge a batch, by channel.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"channel"}),
		queueLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "segpub_queue_lag_seconds",
			Help: "Time from a job's enqueue to its receipt by a worker.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 18)}),
	}
	m.duplicates = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "segpub_messages_duplicate_total",
		Help: "Messages published again (a resumed run's batch in flight) that the destination dropped by idempotency key, by channel; only destinations that report it (JetStream; with fast batches only batches it held whole, so a lower bound)."}, []string{"channel"})
	reg.MustRegister(m.jobs, m.jobSeconds, m.messages, m.skipped, m.candidates, m.publishSeconds, m.queueLag, m.duplicates)
	m.unpublishable = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "segpub_candidates_unpublishable_total",
		Help: "Candidates whose message the channel destination cannot take (message_too_large), skipped without failing the run, counted when their job completes or is cancelled."}, []string{"reason"})
	reg.MustRegister(m.unpublishable)
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// JobDone records a finished job (worker.Observer).
func (m *Metrics) JobDone(outcome string, res *publish.Result, d time.Duration) {
	m.jobs.WithLabelValues(outcome).Inc()
	m.jobSeconds.WithLabelValues(outcome).Observe(d.Seconds())
	// A run's skips are counted once, when it ends for good: completed,
	// or cancelled with what it had gone through (a paused run counts
	// them when it ends).
	if (outcome != "completed" && outcome != "cancelled") || res == nil {
		return
	}
	m.candidates.Add(float64(res.Candidates))
	for _, rc := range res.Skipped.ByReason() {
		m.skipped.WithLabelValues(rc.Reason).Add(float64(rc.N))
	}
	m.unpublishable.WithLabelValues(publish.ReasonMessageTooLarge).Add(float64(res.Unpublishable.MessageTooLarge))
}

// QueueLag records how long a job waited in the queue (worker.Observer).
func (m *Metrics) QueueLag(d time.Duration) { m.queueLag.Observe(d.Seconds()) }

// Sink wraps a sink to count messages and time acknowledgements. The
// wrapper embeds the sink, so its Capabilities (window, size limit, staging)
// and Close reach the engine and the service unchanged.
func (m *Metrics) Sink(s publish.Sink) publish.Sink {
	w := &sink{Sink: s, m: m}
	w.duplicates = s.Capabilities().Duplicates
	return w
}

type sink struct {
	publish.Sink
	m *Metrics
	// duplicates is the sink's running total of dropped duplicates; nil
	// when its destination does not report them.
	duplicates func() int64
	// reported is the sink's duplicate count already added to the metric.
	reported atomic.Int64
}

func (s *sink) Publish(ctx context.Context, b *publish.Batch) error {
	start := time.Now()
	err := s.Sink.Publish(ctx, b)
	if s.duplicates != nil {
		// Advancing to the sink's running total counts every duplicate
		// once, even when jobs publish concurrently.
		now := s.duplicates()
		for {
			old := s.reported.Load()
			if now <= old {
				break
			}
			if s.reported.CompareAndSwap(old, now) {
				s.m.duplicates.WithLabelValues(string(b.Channel)).Add(float64(now - old))
				break
			}
		}
	}
	if err == nil {
		ch := string(b.Channel)
		s.m.publishSeconds.WithLabelValues(ch).Observe(time.Since(start).Seconds())
		s.m.messages.WithLabelValues(ch).Add(float64(len(b.Messages)))
	}
	return err
}

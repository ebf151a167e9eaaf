package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/segpub/segpub/internal/ledger"
)

// JobServeSQS is the service workload: the push campaign of push-all-sqs,
// submitted to the job queue and run by `segpub serve`, beside a
// `segpub publish` of the same job to the same endpoint, alternately
// (publish, serve, publish, serve …), so that both see the machine alike.
// Production runs serve: it must be as fast as the one-shot command the
// other workloads measure. It runs only when --only names it.
const JobServeSQS = "serve-sqs"

// serveRequestPrefix starts the request_id of every run of the workload.
const serveRequestPrefix = "bench-serve-"

// runServeSQS measures the service workload on project: each run times
// publish, then serve, on the same endpoint. The serve run is timed from
// the process's start (the job already queued, as publish's job is already
// written) until the run ledger says completed; publish from its start to
// its exit. VsPublish is the median of each pair's serve rate divided by
// its publish rate.
func runServeSQS(ctx context.Context, cfg Config, project, dir string) (Measurement, error) {
	name := fmt.Sprintf("serve push, all users, from the job queue -> SQS endpoint with a %v round trip", cfg.SQSRTT)
	sqs, err := StartSQSEndpoint(cfg.SQSRTT)
	if err != nil {
		return Measurement{}, err
	}
	defer sqs.Close()
	out := "sqs+" + sqs.URL + "/000000000000/bench-{channel}"
	led, err := ledger.New(ctx, cfg.Pool)
	if err != nil {
		return Measurement{}, err
	}
	jobPath := filepath.Join(dir, JobServeSQS+"-publish.json")
	if err := os.WriteFile(jobPath, PushAllJob(project), 0o644); err != nil {
		return Measurement{}, err
	}
	stamp := time.Now().UTC().Format("20060102T150405")
	var best Measurement
	var ratios []float64
	for i := 1; i <= cfg.Runs; i++ {
		pub, err := runChild(ctx, cfg, workload{job: JobPushSQS, command: "publish", out: out}, jobPath, filepath.Join(dir, "out"))
		if err != nil {
			return Measurement{}, fmt.Errorf("publish run %d: %w", i, err)
		}
		if err := exactlyOnce(sqs, pub.Messages); err != nil {
			return Measurement{}, fmt.Errorf("publish run %d: %w", i, err)
		}
		pub.PerSecond = float64(pub.Messages) / pub.Seconds
		id := fmt.Sprintf("%s%s-%s-%d", serveRequestPrefix, project, stamp, i)
		srv, err := serveOnce(ctx, cfg, led, project, id, out, filepath.Join(dir, "serve"))
		if err != nil {
			return Measurement{}, fmt.Errorf("serve run %d: %w", i, err)
		}
		if err := exactlyOnce(sqs, srv.Messages); err != nil {
			return Measurement{}, fmt.Errorf("serve run %d: %w", i, err)
		}
		srv.PerSecond = float64(srv.Messages) / srv.Seconds
		ratios = append(ratios, srv.PerSecond/pub.PerSecond)
		cfg.Logger.Info("serve against publish", "project", project, "run", i, "publish_seconds", pub.Seconds,
			"publish_per_second", pub.PerSecond, "serve_seconds", srv.Seconds, "serve_per_second", srv.PerSecond,
			"ratio", srv.PerSecond/pub.PerSecond, "messages", srv.Messages, "publish_cpu_seconds", pub.CPUSeconds, "serve_cpu_seconds", srv.CPUSeconds)
		if best.Seconds == 0 || srv.Seconds < best.Seconds {
			best = srv
			best.PublishPerSecond = pub.PerSecond
		}
	}
	best.VsPublish = median(ratios)
	best.Job = JobServeSQS
	best.Name = fmt.Sprintf("%s; %.2fx publish's rate (median of %d pairs)", name, best.VsPublish, len(ratios))
	return best, nil
}

// exactlyOnce checks that the endpoint accepted every message of a run
// once (no loss, no resend), and starts its counts afresh.
func exactlyOnce(sqs *SQSEndpoint, published int64) error {
	c := sqs.Counts()
	if c.Entries != published || c.Distinct != published {
		return fmt.Errorf("the endpoint accepted %d entries with %d distinct keys for %d published", c.Entries, c.Distinct, published)
	}
	return nil
}

// serveOnce queues the job with `segpub submit` into a fresh embedded
// JetStream, then starts `segpub serve` on it and times it until the
// ledger records the run completed. The service is then stopped (SIGTERM)
// and must exit 0.
func serveOnce(ctx context.Context, cfg Config, led *ledger.Ledger, project, requestID, out, dataDir string) (Measurement, error) {
	if err := os.RemoveAll(dataDir); err != nil {
		return Measurement{}, err
	}
	defer os.RemoveAll(dataDir)
	job := strings.Replace(string(PushAllJob(project)), `"request_id":"bench-push-all"`, fmt.Sprintf("%q:%q", "request_id", requestID), 1)
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_REGION=us-east-1",
		"SEGPUB_DATABASE_URL="+cfg.DatabaseURL, "SEGPUB_DATA_DIR="+dataDir, "SEGPUB_CHANNEL_URL="+out,
		"SEGPUB_JOB_QUEUE_URL=embedded:", "SEGPUB_SCHEDULER=off", "SEGPUB_LOG_FORMAT=text")
	submit := exec.CommandContext(ctx, cfg.Binary, "submit", "--job", "-")
	submit.Env, submit.Stdin = env, strings.NewReader(job)
	if b, err := submit.CombinedOutput(); err != nil {
		return Measurement{}, fmt.Errorf("submit: %w (%s)", err, tail(string(b), 500))
	}
	// No metrics listener: an empty variable would keep the default port.
	serve := exec.CommandContext(ctx, cfg.Binary, "serve", "--listen", "")
	serve.Env = env
	var logs strings.Builder
	serve.Stdout, serve.Stderr = &logs, &logs
	start := time.Now()
	if err := serve.Start(); err != nil {
		return Measurement{}, fmt.Errorf("start serve: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	hwm := watchPeakRSS(serve.Process.Pid)
	m, err := awaitCompleted(ctx, led, requestID, start, exited)
	peak := hwm()
	if err != nil {
		_ = serve.Process.Kill()
		<-exited
		return Measurement{}, fmt.Errorf("%w (serve: %s)", err, tail(logs.String(), 800))
	}
	m.PeakRSSMB = float64(peak) / 1024
	_ = serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			return Measurement{}, fmt.Errorf("serve on SIGTERM: %w (%s)", err, tail(logs.String(), 800))
		}
		// Its whole life, the stop included.
		m.CPUSeconds = (serve.ProcessState.UserTime() + serve.ProcessState.SystemTime()).Seconds()
	case <-time.After(time.Minute):
		_ = serve.Process.Kill()
		return Measurement{}, errors.New("serve did not stop within a minute of SIGTERM")
	}
	return m, nil
}

// awaitCompleted polls the run ledger until the run is final.
func awaitCompleted(ctx context.Context, led *ledger.Ledger, requestID string, start time.Time, exited <-chan error) (Measurement, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return Measurement{}, ctx.Err()
		case err := <-exited:
			return Measurement{}, fmt.Errorf("serve exited before the run completed: %v", err)
		case <-t.C:
		}
		run, err := led.Get(ctx, requestID)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return Measurement{}, err
		}
		if !run.Status.Final() {
			continue
		}
		if run.Status != ledger.Completed {
			return Measurement{}, fmt.Errorf("run %s ended %s: %s", requestID, run.Status, run.Error)
		}
		return Measurement{Seconds: time.Since(start).Seconds(), Messages: run.Published}, nil
	}
}

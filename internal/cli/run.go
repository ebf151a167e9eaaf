package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/segpub/segpub/internal/endpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/progress"
	"github.com/segpub/segpub/internal/publish"
)

func runSize(ctx context.Context, env *Env, args []string) int {
	return runJob(ctx, env, "size", args)
}

func runPublish(ctx context.Context, env *Env, args []string) int {
	return runJob(ctx, env, "publish", args)
}

// runJob is `segpub size` and `segpub publish`. size always counts; publish
// does what the job's action says, so a calculate-size job run with publish
// still publishes nothing.
func runJob(ctx context.Context, env *Env, name string, args []string) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var c common
	c.register(fs, env)
	jobPath := fs.String("job", "", "job file (JSON), or - for standard input")
	out := ""
	if name == "publish" {
		fs.StringVar(&out, "out", "", "destination URL, {channel} replaced by the channel name (file:///dir/{channel}.ndjson, embedded:///dir, nats://…, an SQS queue URL)")
	}
	dataDir := fs.String("data-dir", envOr(env, "SEGPUB_DATA_DIR", "segpub-data"), "embedded JetStream's data directory when --out is embedded: ($SEGPUB_DATA_DIR)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof reads it)")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return fail(env, name, err)
		}
		defer stop()
	}
	if *jobPath == "" {
		fmt.Fprintf(env.Stderr, "segpub %s: --job is required\n", name)
		return ExitFailure
	}
	log := c.logger(env)
	env2 := jobResult{env: env, name: name}
	data, err := c.readJob(*jobPath, env.Stdin)
	if err != nil && !job.IsRejection(err) {
		return fail(env, name, err)
	}
	var j *job.Job
	if err == nil {
		j, err = job.Parse(data)
	}
	if err != nil {
		return env2.report(&publish.Result{Action: actionFor(name), Status: publish.StatusRejected, Error: err.Error(), Variants: map[string]int64{}}, err)
	}
	if name == "size" {
		j.Action = job.ActionCalculateSize
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, name, err)
	}
	defer pool.Close()
	// The output opens before the run so a bad URL publishes nothing; the
	// same URLs as the service's SEGPUB_CHANNEL_URL are accepted.
	var sink publish.Sink
	closeSink := func() error { return nil }
	if j.Action == job.ActionPublish {
		if out == "" {
			fmt.Fprintf(env.Stderr, "segpub %s: --out is required\n", name)
			return ExitFailure
		}
		nc := &natsjs.Connector{DefaultDir: filepath.Join(*dataDir, "jetstream"), Logger: log}
		defer nc.Close()
		opener := &endpoint.Opener{State: pool, NATS: nc, Logger: log, AWS: newAWSOpener(log)}
		if sink, closeSink, err = opener.Sink(ctx, out); err != nil {
			return fail(env, name, fmt.Errorf("--out: %w", err))
		}
	}
	// Progress: a redrawn line on a terminal, a log line every few
	// seconds otherwise (standard output carries only the result).
	bar := progress.New(progress.Config{Label: "candidates", Out: env.Stderr, Logger: log})
	runner, err := publish.New(publish.Config{Pool: pool, Logger: log, Open: c.csvOpener(log), MaxCSVBytes: c.csvMaxBytes,
		Progress: func(p publish.Progress) { bar.Set(p.Candidates) }})
	if err != nil {
		return fail(env, name, err)
	}
	res, err := runner.Run(ctx, j, sink)
	bar.Done()
	if sink != nil {
		if cerr := closeSink(); cerr != nil && err == nil {
			err = cerr
			res.Status, res.Error = publish.StatusFailed, cerr.Error()
		}
	}
	if err == nil {
		log.Info("job done", "request_id", res.RequestID, "action", res.Action, "candidates", res.Candidates, "published", res.Published, "duration_ms", res.DurationMS)
	}
	return env2.report(res, err)
}

func actionFor(name string) job.Action {
	if name == "size" {
		return job.ActionCalculateSize
	}
	return job.ActionPublish
}

type jobResult struct {
	env  *Env
	name string
}

// report prints the result and maps the outcome to an exit code: 2 for a
// rejected job, with its reason on standard error, 1 for any other failure.
func (r jobResult) report(res *publish.Result, err error) int {
	printJSON(r.env.Stdout, res)
	switch {
	case err == nil:
		return ExitOK
	case job.IsRejection(err):
		fmt.Fprintf(r.env.Stderr, "segpub %s: rejected: %v\n", r.name, err)
		return ExitRejected
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(r.env.Stderr, "segpub %s: interrupted\n", r.name)
		return ExitFailure
	default:
		fmt.Fprintf(r.env.Stderr, "segpub %s: %v\n", r.name, err)
		return ExitFailure
	}
}

// readJob reads a job file or standard input, at most max bytes (more is a
// rejection).
func readJob(path string, stdin io.Reader, max int64) ([]byte, error) {
	if path == "-" {
		data, err := job.ReadLimited(stdin, max)
		if err != nil && !job.IsRejection(err) {
			return nil, fmt.Errorf("read job from standard input: %w", err)
		}
		return data, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read job: %w", err)
	}
	defer f.Close()
	data, err := job.ReadLimited(f, max)
	if err != nil && !job.IsRejection(err) {
		return nil, fmt.Errorf("read job %s: %w", path, err)
	}
	return data, err
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

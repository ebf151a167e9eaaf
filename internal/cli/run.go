package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/segpub/segpub/internal/endpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/natsjs"
	"github.com/segpub/segpub/internal/progress"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/redact"
)

// jobOptions are the settings of size and publish.
type jobOptions struct {
	common
	job         string
	out         string
	dataDir     string
	cpuProfile  string
	maxInFlight int
}

// Defaults shared by the commands that keep an embedded JetStream.
const DefaultDataDir = "segpub-data"

// jobCmd is `segpub size` and `segpub publish`.
func (a *App) jobCmd(name string) *cobra.Command {
	short := "print the audience size and skip reasons of a job (publishes nothing)"
	use := "size --job FILE"
	if name == "publish" {
		short = "run a job, publishing its channel messages to --out"
		use = "publish --job FILE --out URL"
	}
	cmd, d := a.newCmd(use, short)
	var o jobOptions
	d.String(&o.job, "job", "", "", "job file (JSON), or - for standard input")
	if name == "publish" {
		d.String(&o.out, "out", "", "", "destination URL, {channel} replaced by the channel name (file:///dir/{channel}.ndjson, embedded:///dir, nats://…, an SQS queue URL)")
	}
	o.common.register(d)
	d.String(&o.dataDir, "data-dir", "SEGPUB_DATA_DIR", DefaultDataDir, "embedded JetStream's data directory when --out is embedded:")
	d.String(&o.cpuProfile, "cpuprofile", "", "", "write a CPU profile of the run to this file (go tool pprof reads it)")
	d.Int(&o.maxInFlight, "max-in-flight", "SEGPUB_MAX_IN_FLIGHT", 0, "channel messages awaiting acknowledgement at once; 0: the output's default")
	if name == "size" {
		// size writes nothing: --data-dir is accepted as it always was, not shown.
		d.hideExcept("job", "database-url", "db-stall-timeout", "verbose", "cpuprofile")
	}
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runJob(ctx, a.env, name, &o) })
	return cmd
}

// runJob is `segpub size` and `segpub publish`. size always counts; publish
// does what the job's action says, so a calculate-size job run with publish
// still publishes nothing.
func runJob(ctx context.Context, env *Env, name string, o *jobOptions) int {
	c, out, dataDir := &o.common, o.out, &o.dataDir
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return fail(env, name, err)
		}
		defer stop()
	}
	if o.job == "" {
		return usageError(env, name, "--job is required")
	}
	jobPath := &o.job
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
		return env2.report(&publish.Result{RequestID: requestIDOf(data), Action: actionFor(name), Status: publish.StatusRejected, Error: err.Error(), Variants: map[string]int64{}}, err)
	}
	env2.project = j.ProjectID
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
	if j.Action == job.ActionPublish {
		if out == "" {
			return usageError(env, name, "--out is required")
		}
		nc := &natsjs.Connector{DefaultDir: filepath.Join(*dataDir, "jetstream"), Logger: log}
		defer nc.Close()
		if o.maxInFlight < 0 {
			return fail(env, name, fmt.Errorf("--max-in-flight ($SEGPUB_MAX_IN_FLIGHT): %d is negative", o.maxInFlight))
		}
		opener := &endpoint.Opener{State: pool, NATS: nc, Logger: log, AWS: endpoint.NewAWS(log), MaxInFlight: o.maxInFlight}
		if sink, err = opener.Sink(ctx, out); err != nil {
			return fail(env, name, fmt.Errorf("--out: %w", err))
		}
	}
	// Progress: a redrawn line on a terminal, a log line every few
	// seconds otherwise (standard output carries only the result).
	bar := progress.New(progress.Config{Label: "candidates", Out: env.progressOut(), Logger: log})
	reads := audienceReads(pool, log, c.operatorFiles())
	reads.Progress = func(p publish.Progress) { bar.Set(p.Candidates) }
	runner, err := publish.New(reads)
	if err != nil {
		return fail(env, name, err)
	}
	res, err := runner.Run(ctx, j, sink)
	bar.Done()
	if sink != nil {
		if cerr := sink.Close(); cerr != nil && err == nil {
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
	env     *Env
	name    string
	project string
}

// report prints the result and maps the outcome to an exit code: 2 for a
// rejected job, with its reason on standard error, 1 for any other failure.
func (r jobResult) report(res *publish.Result, err error) int {
	printJSON(r.env.Stdout, res)
	switch {
	case err == nil:
		return ExitOK
	case job.IsRejection(err):
		fmt.Fprintf(r.env.Stderr, "segpub %s: rejected: %v\n", r.name, redact.Text(err.Error()))
		return ExitRejected
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(r.env.Stderr, "segpub %s: interrupted\n", r.name)
		return ExitFailure
	default:
		fmt.Fprintf(r.env.Stderr, "segpub %s: %v\n", r.name, withHint(err, r.project))
		return ExitFailure
	}
}

// withHint says what a database error means for the operator when it has
// a usual cause: a project whose tables do not exist.
func withHint(err error, project string) error {
	var pgErr *pgconn.PgError
	if project != "" && errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return fmt.Errorf("project %q has no tables here (%s): check project_id and the database, or create them with segpub seed --project %s",
			project, pgErr.Message, project)
	}
	return err
}

// requestIDOf finds the request_id of a job that did not parse, so its
// rejection still names it; "" when even that cannot be read.
func requestIDOf(data []byte) string {
	var j struct {
		RequestID any `json:"request_id"`
	}
	if json.Unmarshal(data, &j) != nil {
		return ""
	}
	id, _ := j.RequestID.(string)
	return id
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

// readInput reads a file, or standard input for "-"; what names it in
// errors.
func readInput(what, path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read %s from standard input: %w", what, err)
		}
		return data, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return data, nil
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

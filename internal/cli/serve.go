package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/redact"
	"github.com/segpub/segpub/internal/service"
	"github.com/segpub/segpub/internal/worker"
)

func (a *App) serveCmd() *cobra.Command {
	cmd, d := a.newCmd("serve", "run the service: take jobs from the job queue and publish them")
	var s settings
	var ss schedSettings
	var cs consoleSettings
	var withScheduler bool
	s.register(d)
	ss.register(d)
	d.Bool(&withScheduler, "scheduler", "SEGPUB_SCHEDULER", true, "run the scheduler in this process too; --scheduler=false: not (the variable: on or off)", nil)
	cs.register(d, "")
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runServe(ctx, a.env, &s, &ss, &cs, withScheduler) })
	return cmd
}

// runServe is `segpub serve`: the worker and the cleaner, and the
// scheduler, the metrics listener and the console when set.
func runServe(ctx context.Context, env *Env, s *settings, ss *schedSettings, cs *consoleSettings, withScheduler bool) int {
	if err := ss.validate(); err != nil {
		return fail(env, "serve", err)
	}
	log := s.logger(env)
	con, err := cs.service(s, log)
	if err != nil {
		return fail(env, "serve", err)
	}
	svc, err := s.open(ctx, log, func(c *service.Config) {
		c.Run = []service.Module{service.Worker, service.Cleaner}
		if withScheduler {
			c.Run = append(c.Run, service.Scheduler)
		}
		c.Listen = s.listen
		c.Scheduler = ss.config()
		c.Console = con
	})
	if err != nil {
		return fail(env, "serve", err)
	}
	if err := svc.Start(ctx); err != nil {
		svc.close()
		return fail(env, "serve", err)
	}
	<-ctx.Done()
	log.Info("shutting down: no new jobs; running ones may finish", "grace", s.grace)
	if err := svc.Stop(); errors.Is(err, worker.ErrAbandoned) {
		// A job that ignored cancellation may still hold the sink and
		// connections, and closing the pools would wait for it: the
		// process exits instead.
		return ExitFailure
	}
	svc.close()
	log.Info("stopped")
	return ExitOK
}

func (a *App) submitCmd() *cobra.Command {
	cmd, d := a.newCmd("submit --job FILE", "put a job on the job queue (as a claim check when it is too large)")
	var s settings
	var jobPath string
	d.String(&jobPath, "job", "", "", "job file (JSON), or - for standard input")
	s.register(d)
	// The serve settings submit does not read stay accepted, not shown.
	d.hideExcept("job", "database-url", "state-url", "job-queue-url", "message-store-url", "data-dir", "db-stall-timeout", "verbose", "json-logs")
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runSubmit(ctx, a.env, &s, &jobPath) })
	return cmd
}

// runSubmit is `segpub submit`: it puts a job on the job queue, as a claim
// check when it is over the queue's size limit.
func runSubmit(ctx context.Context, env *Env, s *settings, jobPath *string) int {
	if *jobPath == "" {
		return usageError(env, "submit", "--job is required")
	}
	data, err := s.readJob(*jobPath, env.Stdin)
	if err != nil {
		return outcome(env, "submit", err)
	}
	// Reject here what a worker would reject: the operator sees the path
	// now rather than in the dead letters later.
	j, err := job.Parse(data)
	if err != nil {
		fmt.Fprintf(env.Stderr, "segpub submit: rejected: %v\n", redact.Text(err.Error()))
		return ExitRejected
	}
	log := s.logger(env)
	svc, err := s.open(ctx, log, nil)
	if err != nil {
		return fail(env, "submit", err)
	}
	defer svc.close()
	q, err := svc.JobQueue(ctx)
	if err != nil {
		return fail(env, "submit", err)
	}
	// The message store is opened only for a job that needs it: a
	// deployment of small jobs needs none.
	var store msgstore.Store
	if len(data) > q.MaxMessageBytes() {
		if store, err = svc.MessageStore(ctx); err != nil {
			return fail(env, "submit", err)
		}
	}
	claim, err := claimcheck.Send(ctx, q, store, data, j.RequestID)
	if err != nil {
		return fail(env, "submit", err)
	}
	printJSON(env.Stdout, map[string]any{"request_id": j.RequestID, "bytes": len(data), "claim_check": claim})
	return ExitOK
}

func (a *App) statusCmd() *cobra.Command {
	cmd, d := a.newCmd("status REQUEST_ID", "show a run's status, progress and result by request_id")
	var s settings
	s.register(d)
	d.hideExcept("database-url", "state-url", "db-stall-timeout")
	cmd.RunE = a.action(d, argsNamed("REQUEST_ID"), func(ctx context.Context, args []string) int { return runStatus(ctx, a.env, &s, args[0]) })
	return cmd
}

// runStatus is `segpub status REQUEST_ID`.
func runStatus(ctx context.Context, env *Env, s *settings, requestID string) int {
	pool, err := s.statePool(ctx)
	if err != nil {
		return fail(env, "status", err)
	}
	defer pool.Close()
	led, err := ledger.New(ctx, pool)
	if err != nil {
		return fail(env, "status", err)
	}
	run, err := led.Get(ctx, requestID)
	if err != nil {
		return fail(env, "status", err)
	}
	printJSON(env.Stdout, run)
	return ExitOK
}

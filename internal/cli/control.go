package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/segpub/segpub/internal/control"
	"github.com/segpub/segpub/internal/ledger"
)

// DefaultControlWait is how long `segpub run pause|cancel` waits for the
// worker holding a run to stop it (after the batch in hand).
const DefaultControlWait = 2 * time.Minute

// runCmd is `segpub run pause|resume|cancel REQUEST_ID`.
func (a *App) runCmd() *cobra.Command {
	sub := func(verb, short string, shown ...string) *cobra.Command {
		cmd, d := a.newCmd(verb+" REQUEST_ID", short)
		var s settings
		wait := DefaultControlWait
		var jobFile string
		if verb != "resume" {
			d.Duration(&wait, "wait", "", DefaultControlWait, "how long to wait for the worker to stop the run; 0: do not wait")
		} else {
			d.String(&jobFile, "job", "", "", "a failed run's job (its dead letter's \"job\"), or - for standard input: the run goes on from its checkpoint")
		}
		s.register(d)
		d.hideExcept(append([]string{"wait", "job", "database-url", "state-url", "db-stall-timeout", "verbose"}, shown...)...)
		cmd.RunE = a.action(d, argsNamed("REQUEST_ID"), func(ctx context.Context, args []string) int {
			return runControl(ctx, a.env, &s, verb, args[0], wait, jobFile)
		})
		return cmd
	}
	return a.group("run", "pause, resume or cancel a run in flight, whole or partitioned",
		sub("pause", "stop a run after the batch in hand, keeping its checkpoint until it is resumed"),
		sub("resume", "let a paused run, or a failed one once its cause is fixed, go on from its checkpoint, on any worker", "job-queue-url", "data-dir", "message-store-url"),
		sub("cancel", "stop a run for good after the batch in hand; it is never run again"))
}

// runControl carries out one control request and prints the run's row.
// Exit 1 when the run is unknown, finished, not paused (resume), or still
// running when the wait ends (the request stands). A failed run (its job
// exhausted its attempts) is resumed from its dead letter's job: what
// docs/operations.md once did with an UPDATE and segpub submit.
func runControl(ctx context.Context, env *Env, s *settings, verb, requestID string, wait time.Duration, jobFile string) int {
	name := "run " + verb
	if wait < 0 {
		return fail(env, name, fmt.Errorf("--wait: %s is negative", wait))
	}
	var body []byte
	if jobFile != "" {
		var err error
		if body, err = readJob(jobFile, env.Stdin, s.maxJobBytes); err != nil {
			return fail(env, name, fmt.Errorf("--job: %w", err))
		}
	}
	log := s.logger(env)
	var led *ledger.Ledger
	var send control.Sender
	if verb == "resume" {
		// The kept job goes back to the job queue.
		svc, err := s.open(ctx, log, nil)
		if err != nil {
			return fail(env, name, err)
		}
		defer svc.close()
		q, err := svc.JobQueue(ctx)
		if err != nil {
			return fail(env, name, err)
		}
		send = q
		if led, err = ledger.New(ctx, svc.state); err != nil {
			return fail(env, name, err)
		}
	} else {
		pool, err := s.statePool(ctx)
		if err != nil {
			return fail(env, name, err)
		}
		defer pool.Close()
		if led, err = ledger.New(ctx, pool); err != nil {
			return fail(env, name, err)
		}
	}
	var err error
	var c *ledger.Control
	switch verb {
	case "pause":
		_, err = control.Pause(ctx, led, requestID, wait)
	case "cancel":
		_, err = control.Cancel(ctx, led, requestID, wait)
	case "resume":
		if before, gerr := led.Get(ctx, requestID); gerr == nil && before.Status == ledger.Failed {
			c, err = control.Reopen(ctx, led, send, requestID, body)
		} else {
			c, err = control.Resume(ctx, led, send, requestID)
		}
	}
	run, gerr := led.Get(ctx, requestID)
	switch {
	case gerr != nil:
	case verb == "resume" && err == nil:
		printJSON(env.Stdout, resumedRun(run, c))
	default:
		printJSON(env.Stdout, run)
	}
	switch {
	case errors.Is(err, control.ErrStillRunning):
		return fail(env, name, fmt.Errorf("%w; the request stands and takes effect after the batch in hand", err))
	case errors.Is(err, ledger.ErrNoJob):
		return usageError(env, name, fmt.Sprintf("%v (--job FILE)", err))
	case err != nil:
		return fail(env, name, err)
	}
	return ExitOK
}

// resumed is what `run resume` prints: the run's row, with the state an
// operator reads after a resume. The ledger records a run whose job is
// back on the job queue as retrying (claimable at once); "queued" says so
// without reading as a failure being retried.
type resumed struct {
	*ledger.Run
	Status ledger.Status `json:"status"`
	// Requeued counts the job messages sent back to the job queue.
	Requeued int `json:"requeued_jobs"`
}

func resumedRun(run *ledger.Run, c *ledger.Control) resumed {
	r := resumed{Run: run, Status: run.Status}
	if c != nil {
		r.Requeued = len(c.Requeue)
	}
	if run.Status == ledger.Retrying {
		r.Status = StatusQueued
	}
	return r
}

// StatusQueued is the status `run resume` shows for a run whose job is
// back on the job queue, waiting for a worker.
const StatusQueued ledger.Status = "queued"

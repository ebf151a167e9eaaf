package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/segpub/segpub/internal/control"
	"github.com/segpub/segpub/internal/endpoint"
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
		if verb != "resume" {
			d.Duration(&wait, "wait", "", DefaultControlWait, "how long to wait for the worker to stop the run; 0: do not wait")
		}
		s.register(d)
		d.hideExcept(append([]string{"wait", "database-url", "state-url", "db-stall-timeout", "verbose"}, shown...)...)
		cmd.RunE = a.action(d, argsNamed("REQUEST_ID"), func(ctx context.Context, args []string) int {
			return runControl(ctx, a.env, &s, verb, args[0], wait)
		})
		return cmd
	}
	return a.group("run", "pause, resume or cancel a run in flight, whole or partitioned",
		sub("pause", "stop a run after the batch in hand, keeping its checkpoint until it is resumed"),
		sub("resume", "let a paused run go on from its checkpoint, on any worker", "job-queue-url", "data-dir", "message-store-url"),
		sub("cancel", "stop a run for good after the batch in hand; it is never run again"))
}

// runControl carries out one control request and prints the run's row.
// Exit 1 when the run is unknown, finished, not paused (resume), or still
// running when the wait ends (the request stands).
func runControl(ctx context.Context, env *Env, s *settings, verb, requestID string, wait time.Duration) int {
	name := "run " + verb
	if wait < 0 {
		return fail(env, name, fmt.Errorf("--wait: %s is negative", wait))
	}
	log := s.logger(env)
	var led *ledger.Ledger
	var send control.Sender
	if verb == "resume" {
		// The kept job goes back to the job queue.
		svc, err := s.open(ctx, log)
		if err != nil {
			return fail(env, name, err)
		}
		defer svc.close()
		q, err := svc.opener.Queue(ctx, s.jobQueueURL, endpoint.Jobs)
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
	switch verb {
	case "pause":
		_, err = control.Pause(ctx, led, requestID, wait)
	case "cancel":
		_, err = control.Cancel(ctx, led, requestID, wait)
	case "resume":
		_, err = control.Resume(ctx, led, send, requestID)
	}
	run, gerr := led.Get(ctx, requestID)
	if gerr == nil {
		printJSON(env.Stdout, run)
	}
	switch {
	case errors.Is(err, control.ErrStillRunning):
		return fail(env, name, fmt.Errorf("%w; the request stands and takes effect after the batch in hand", err))
	case err != nil:
		return fail(env, name, err)
	}
	return ExitOK
}

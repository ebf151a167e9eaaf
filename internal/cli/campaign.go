package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/segpub/segpub/internal/endpoint"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/scheduler"
)

// scheduler settings, shared by serve and `segpub scheduler`.
type schedSettings struct {
	interval time.Duration
	catchUp  time.Duration
}

func (s *schedSettings) register(fs *flag.FlagSet, env *Env) {
	fs.DurationVar(&s.interval, "scheduler-interval", envDuration(env, "SEGPUB_SCHEDULER_INTERVAL", 5*time.Minute), "how often the scheduler wakes ($SEGPUB_SCHEDULER_INTERVAL)")
	fs.DurationVar(&s.catchUp, "scheduler-catch-up", envDuration(env, "SEGPUB_SCHEDULER_CATCH_UP", time.Hour), "occurrences missed by more are reported, not sent ($SEGPUB_SCHEDULER_CATCH_UP)")
}

func (s *schedSettings) start(ctx context.Context, svc *service, jobQueueURL string, log *slog.Logger) (*scheduler.Scheduler, error) {
	store, err := scheduler.NewStore(ctx, svc.state)
	if err != nil {
		return nil, err
	}
	q, err := svc.opener.Queue(ctx, jobQueueURL, endpoint.Jobs)
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	sch, err := scheduler.New(scheduler.Config{Store: store, Queue: q, Interval: s.interval, CatchUp: s.catchUp, Logger: log})
	if err != nil {
		return nil, err
	}
	return sch, sch.Start(ctx)
}

// runScheduler is `segpub scheduler`: the scheduler alone.
func runScheduler(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("scheduler", flag.ContinueOnError)
	var s settings
	var ss schedSettings
	s.register(fs, env)
	ss.register(fs, env)
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	log := s.logger(env)
	svc, err := s.open(ctx, log)
	if err != nil {
		return fail(env, "scheduler", err)
	}
	defer svc.close()
	sch, err := ss.start(ctx, svc, s.jobQueueURL, log)
	if err != nil {
		return fail(env, "scheduler", err)
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), s.grace)
	defer cancel()
	_ = sch.Stop(stopCtx)
	return ExitOK
}

// runCampaign is `segpub campaign add|list|pause|resume|end`.
func runCampaign(ctx context.Context, env *Env, args []string) int {
	usage := "usage: segpub campaign add --file F | list | pause ID | resume ID | end ID"
	if len(args) == 0 {
		fmt.Fprintln(env.Stderr, usage)
		return ExitFailure
	}
	sub := args[0]
	fs := flag.NewFlagSet("campaign "+sub, flag.ContinueOnError)
	var s settings
	s.register(fs, env)
	file := ""
	if sub == "add" {
		fs.StringVar(&file, "file", "", `campaign file: {"project_id":…, "action":…, "campaign":{…}, "schedule":{…}}`)
	}
	fs.SetOutput(env.Stderr)
	if err := fs.Parse(args[1:]); err != nil || badEnv(fs, env) {
		return ExitFailure
	}
	pool, err := s.statePool(ctx)
	if err != nil {
		return fail(env, "campaign", err)
	}
	defer pool.Close()
	store, err := scheduler.NewStore(ctx, pool)
	if err != nil {
		return fail(env, "campaign", err)
	}
	switch sub {
	case "add":
		if file == "" || fs.NArg() != 0 {
			fmt.Fprintln(env.Stderr, usage)
			return ExitFailure
		}
		data, err := s.readJob(file, env.Stdin)
		if err != nil {
			return outcome(env, "campaign", err)
		}
		var camp scheduler.Campaign
		if err := json.Unmarshal(data, &camp); err != nil {
			fmt.Fprintf(env.Stderr, "segpub campaign: rejected: malformed JSON: %v\n", err)
			return ExitRejected
		}
		if err := store.Add(ctx, camp); err != nil {
			if job.IsRejection(err) {
				fmt.Fprintf(env.Stderr, "segpub campaign: rejected: %v\n", err)
				return ExitRejected
			}
			return fail(env, "campaign", err)
		}
		printJSON(env.Stdout, map[string]any{"added": true})
	case "list":
		list, err := store.List(ctx)
		if err != nil {
			return fail(env, "campaign", err)
		}
		printJSON(env.Stdout, list)
	case "pause", "resume", "end":
		if fs.NArg() != 1 {
			fmt.Fprintln(env.Stderr, usage)
			return ExitFailure
		}
		status := map[string]string{"pause": scheduler.Paused, "resume": scheduler.Active, "end": scheduler.Ended}[sub]
		if err := store.SetStatus(ctx, fs.Arg(0), status); err != nil {
			return fail(env, "campaign", err)
		}
		printJSON(env.Stdout, map[string]any{"id": fs.Arg(0), "status": status})
	default:
		return fail(env, "campaign", errors.New(usage))
	}
	return ExitOK
}

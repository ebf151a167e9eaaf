package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/redact"
	"github.com/segpub/segpub/internal/scheduler"
	"github.com/segpub/segpub/internal/service"
)

// scheduler settings, shared by serve and `segpub scheduler`.
type schedSettings struct {
	interval time.Duration
	catchUp  time.Duration
}

// Defaults of the scheduler settings.
const (
	DefaultSchedulerInterval = service.DefaultSchedulerEvery
	DefaultSchedulerCatchUp  = service.DefaultSchedulerCatch
)

func (s *schedSettings) register(d *decls) {
	d.Duration(&s.interval, "scheduler-interval", "SEGPUB_SCHEDULER_INTERVAL", DefaultSchedulerInterval, "how often the scheduler wakes")
	d.Duration(&s.catchUp, "scheduler-catch-up", "SEGPUB_SCHEDULER_CATCH_UP", DefaultSchedulerCatchUp, "occurrences missed by more are reported, not sent")
}

// validate checks the scheduler's settings; an error names the flag and
// the variable.
func (s *schedSettings) validate() error {
	switch {
	case s.interval <= 0:
		return fmt.Errorf("--scheduler-interval ($SEGPUB_SCHEDULER_INTERVAL): %s; want more than 0", s.interval)
	case s.catchUp <= 0:
		return fmt.Errorf("--scheduler-catch-up ($SEGPUB_SCHEDULER_CATCH_UP): %s; want more than 0", s.catchUp)
	}
	return nil
}

// config is the service's scheduler configuration from the settings.
func (s *schedSettings) config() service.SchedulerConfig {
	return service.SchedulerConfig{Interval: s.interval, CatchUp: s.catchUp}
}

func (a *App) schedulerCmd() *cobra.Command {
	cmd, d := a.newCmd("scheduler", "run the scheduler alone: enqueue due campaign occurrences")
	var s settings
	var ss schedSettings
	s.register(d)
	ss.register(d)
	d.hideExcept("database-url", "state-url", "job-queue-url", "message-store-url", "data-dir", "scheduler-interval", "scheduler-catch-up",
		"shutdown-grace", "db-stall-timeout", "verbose", "json-logs")
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runScheduler(ctx, a.env, &s, &ss) })
	return cmd
}

// runScheduler is `segpub scheduler`: the scheduler alone.
func runScheduler(ctx context.Context, env *Env, s *settings, ss *schedSettings) int {
	if err := ss.validate(); err != nil {
		return fail(env, "scheduler", err)
	}
	log := s.logger(env)
	svc, err := s.open(ctx, log, func(c *service.Config) {
		c.Run = []service.Module{service.Scheduler}
		c.Scheduler = ss.config()
	})
	if err != nil {
		return fail(env, "scheduler", err)
	}
	defer svc.close()
	if err := svc.Start(ctx); err != nil {
		return fail(env, "scheduler", err)
	}
	<-ctx.Done()
	_ = svc.Stop()
	return ExitOK
}

// campaignCmd is `segpub campaign add|list|pause|resume|end`.
func (a *App) campaignCmd() *cobra.Command {
	// Each subcommand reads the state database only: the other service
	// settings stay accepted, not shown.
	sub := func(use, short string, args cobra.PositionalArgs, body func(ctx context.Context, store *scheduler.Store, args []string) int) (*cobra.Command, *decls) {
		cmd, d := a.newCmd(use, short)
		var s settings
		s.register(d)
		cmd.RunE = a.action(d, args, func(ctx context.Context, args []string) int {
			pool, err := s.statePool(ctx)
			if err != nil {
				return fail(a.env, "campaign", err)
			}
			defer pool.Close()
			store, err := scheduler.NewStore(ctx, pool)
			if err != nil {
				return fail(a.env, "campaign", err)
			}
			return body(ctx, store, args)
		})
		return cmd, d
	}
	shown := []string{"database-url", "state-url", "db-stall-timeout"}

	var file string
	add, d := sub("add --file FILE", "add a scheduled campaign from a campaign file (docs/campaigns.md)", noArgs,
		func(ctx context.Context, store *scheduler.Store, _ []string) int {
			return a.campaignAdd(ctx, store, file)
		})
	d.String(&file, "file", "", "", "campaign file (JSON, docs/campaigns.md), or - for standard input")
	d.hideExcept(append([]string{"file"}, shown...)...)

	var asJSON bool
	list, d := sub("list", "list the campaigns: a table on a terminal, JSON otherwise or with --json", noArgs,
		func(ctx context.Context, store *scheduler.Store, _ []string) int {
			camps, err := store.List(ctx)
			if err != nil {
				return fail(a.env, "campaign", err)
			}
			if asJSON || !isTerminal(a.env.Stdout) {
				printJSON(a.env.Stdout, camps)
			} else {
				fmt.Fprint(a.env.Stdout, campaignTable(camps))
			}
			return ExitOK
		})
	d.fs.BoolVar(&asJSON, "json", false, "print JSON")
	d.hideExcept(append([]string{"json"}, shown...)...)

	cmds := []*cobra.Command{add, list}
	for _, st := range []struct{ verb, status, short string }{
		{"pause", scheduler.Paused, "pause a campaign: no occurrences until it is resumed"},
		{"resume", scheduler.Active, "resume a paused campaign"},
		{"end", scheduler.Ended, "end a campaign for good"},
	} {
		cmd, d := sub(st.verb+" ID", st.short, argsNamed("ID"), func(ctx context.Context, store *scheduler.Store, args []string) int {
			if err := store.SetStatus(ctx, args[0], st.status); err != nil {
				return fail(a.env, "campaign", err)
			}
			printJSON(a.env.Stdout, map[string]any{"id": args[0], "status": st.status})
			return ExitOK
		})
		d.hideExcept(shown...)
		cmds = append(cmds, cmd)
	}
	return a.group("campaign", "manage scheduled campaigns: add, list, pause, resume, end", cmds...)
}

func (a *App) campaignAdd(ctx context.Context, store *scheduler.Store, file string) int {
	env := a.env
	if file == "" {
		return usageError(env, "campaign add", "--file is required")
	}
	data, err := readJob(file, env.Stdin, job.DefaultMaxJobBytes)
	if err != nil {
		return outcome(env, "campaign", err)
	}
	camp, err := parseCampaignFile(data)
	if err != nil {
		fmt.Fprintf(env.Stderr, "segpub campaign: rejected: %v\n", redact.Text(err.Error()))
		return ExitRejected
	}
	if err := store.Add(ctx, camp); err != nil {
		if job.IsRejection(err) {
			fmt.Fprintf(env.Stderr, "segpub campaign: rejected: %v\n", redact.Text(err.Error()))
			return ExitRejected
		}
		return fail(env, "campaign", err)
	}
	printJSON(env.Stdout, map[string]any{"added": true, "id": campaignID(camp)})
	return ExitOK
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// campaignTable renders campaigns for people: one line each.
func campaignTable(camps []scheduler.Campaign) string {
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROJECT\tACTION\tCHANNEL\tSCHEDULE\tSTATUS\tCREATED")
	for _, c := range camps {
		var inner struct {
			Channel string `json:"channel"`
		}
		_ = json.Unmarshal(c.Campaign, &inner)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.ProjectID, c.Action, cmp.Or(inner.Channel, "-"),
			scheduleSummary(c.Schedule), c.Status, c.CreatedAt.UTC().Format("2006-01-02 15:04Z"))
	}
	tw.Flush()
	if len(camps) == 0 {
		sb.WriteString("(no campaigns)\n")
	}
	return sb.String()
}

// scheduleSummary is a schedule in a few words: "weekly mon,fri 09:00
// from 2026-01-01 (Asia/Seoul)".
func scheduleSummary(raw json.RawMessage) string {
	var s scheduler.Schedule
	if err := json.Unmarshal(raw, &s); err != nil {
		return string(raw)
	}
	parts := []string{string(s.Kind)}
	if len(s.Weekdays) > 0 {
		parts = append(parts, strings.Join(s.Weekdays, ","))
	}
	if s.Date != "" {
		parts = append(parts, s.Date)
	}
	if s.Time != "" {
		parts = append(parts, s.Time)
	}
	if s.StartDate != "" {
		parts = append(parts, "from "+s.StartDate)
	}
	if s.EndDate != "" {
		parts = append(parts, "until "+s.EndDate)
	}
	if s.Kind != scheduler.Immediate {
		parts = append(parts, "("+cmp.Or(s.TimeZone, "Asia/Seoul")+")")
	}
	return strings.Join(parts, " ")
}

// campaignFile is the file campaign add reads (docs/campaigns.md,
// docs/campaign.schema.json).
type campaignFile struct {
	Schema    string          `json:"$schema"`
	ProjectID string          `json:"project_id"`
	Action    string          `json:"action"`
	Campaign  json.RawMessage `json:"campaign"`
	Schedule  json.RawMessage `json:"schedule"`
}

// parseCampaignFile reads a campaign file; a field it does not know is
// refused rather than ignored (a misspelt "schedule" would otherwise read
// as none).
func parseCampaignFile(data []byte) (scheduler.Campaign, error) {
	var f campaignFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return scheduler.Campaign{}, fmt.Errorf("%s: unknown field (want project_id, action, campaign, schedule)", strings.Trim(name, `"`))
		}
		return scheduler.Campaign{}, fmt.Errorf("malformed JSON: %v", err)
	}
	if dec.More() {
		return scheduler.Campaign{}, errors.New("malformed JSON: more than one value")
	}
	if len(f.Campaign) == 0 || string(f.Campaign) == "null" {
		return scheduler.Campaign{}, errors.New("campaign: required")
	}
	if len(f.Schedule) == 0 || string(f.Schedule) == "null" {
		return scheduler.Campaign{}, errors.New("schedule: required")
	}
	return scheduler.Campaign{ProjectID: f.ProjectID, Action: f.Action, Campaign: f.Campaign, Schedule: f.Schedule}, nil
}

func campaignID(c scheduler.Campaign) string {
	var inner struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(c.Campaign, &inner)
	return inner.ID
}

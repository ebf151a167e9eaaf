package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/segpub/segpub/internal/cost"
	"github.com/segpub/segpub/internal/inspect"
	"github.com/segpub/segpub/internal/job"
)

// loadJob reads and parses --job for the operator tools; a bad job exits 2.
func loadJob(env *Env, c *common, name, path string) (*job.Job, int) {
	if path == "" {
		fmt.Fprintf(env.Stderr, "segpub %s: --job is required\n", name)
		return nil, ExitFailure
	}
	data, err := c.readJob(path, env.Stdin)
	if err != nil && !job.IsRejection(err) {
		return nil, fail(env, name, err)
	}
	var j *job.Job
	if err == nil {
		j, err = job.Parse(data)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "segpub %s: rejected: %v\n", name, err)
		return nil, ExitRejected
	}
	return j, ExitOK
}

func outcome(env *Env, name string, err error) int {
	if job.IsRejection(err) {
		fmt.Fprintf(env.Stderr, "segpub %s: rejected: %v\n", name, err)
		return ExitRejected
	}
	return fail(env, name, err)
}

// runExplain is `segpub explain --job F`.
func runExplain(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	jobPath := fs.String("job", "", "job file, or - for standard input")
	sample := fs.Int("sample", 3, "messages to show")
	asJSON := fs.Bool("json", false, "print JSON")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	j, code := loadJob(env, &c, "explain", *jobPath)
	if j == nil {
		return code
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "explain", err)
	}
	defer pool.Close()
	ex, err := inspect.Explain(ctx, pool, j, *sample)
	if err != nil {
		return outcome(env, "explain", err)
	}
	if *asJSON {
		printJSON(env.Stdout, ex)
		return ExitOK
	}
	w := env.Stdout
	r := ex.Result
	fmt.Fprintf(w, "audience: %d candidates, %d would be published\n", r.Candidates, r.Published)
	s := r.Skipped
	fmt.Fprintf(w, "skipped: no_contact %d, invalid_contact %d, duplicate_destination %d, previously_received %d, control_group %d, unknown_user %d, no_consent %d, frequency_capped %d\n",
		s.NoContact, s.InvalidContact, s.DuplicateDestination, s.PreviouslyReceived, s.ControlGroup, s.UnknownUser, s.NoConsent, s.FrequencyCapped)
	if len(r.Variants) > 0 {
		fmt.Fprintf(w, "variants: %v\n", r.Variants)
	}
	if g := ex.Governance; g != nil {
		if g.NoConsent != nil {
			fmt.Fprintf(w, "advertising consent: removes %d candidates (%d lack consent in all)\n", g.NoConsent.Removed, g.NoConsent.Applies)
		}
		if g.FrequencyCapped != nil {
			fmt.Fprintf(w, "frequency cap: removes %d candidates (%d at the cap in all)\n", g.FrequencyCapped.Removed, g.FrequencyCapped.Applies)
		}
		if g.Deferred != nil {
			fmt.Fprintf(w, "night-time rule: defers %d messages to 08:00 Asia/Seoul\n", *g.Deferred)
		}
	}
	for _, warn := range ex.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	if ex.SQL != "" {
		fmt.Fprintf(w, "\nSQL:\n%s\n\nparameters:\n", ex.SQL)
		for i, p := range ex.Params {
			b, _ := json.Marshal(p)
			if len(b) > 200 {
				b = append(b[:200], "…"...)
			}
			fmt.Fprintf(w, "  $%d = %s\n", i+1, b)
		}
		fmt.Fprintf(w, "\nplan:\n%s\n", strings.Join(ex.Plan, "\n"))
	}
	fmt.Fprintf(w, "\nsample messages (%d):\n", len(ex.Sample))
	for _, m := range ex.Sample {
		fmt.Fprintf(w, "%s\n", m)
	}
	return ExitOK
}

// runWhy is `segpub why --job F --user EXTERNAL_ID`.
func runWhy(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("why", flag.ContinueOnError)
	var c common
	c.register(fs, env)
	jobPath := fs.String("job", "", "job file, or - for standard input")
	user := fs.String("user", "", "the user's external_user_id")
	asJSON := fs.Bool("json", false, "print JSON")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	if *user == "" {
		fmt.Fprintln(env.Stderr, "segpub why: --user is required")
		return ExitFailure
	}
	j, code := loadJob(env, &c, "why", *jobPath)
	if j == nil {
		return code
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "why", err)
	}
	defer pool.Close()
	ans, err := inspect.Why(ctx, pool, j, *user)
	if err != nil {
		return outcome(env, "why", err)
	}
	if *asJSON {
		printJSON(env.Stdout, ans)
		return ExitOK
	}
	w := env.Stdout
	fmt.Fprintf(w, "user %s", ans.ExternalUserID)
	if ans.UserID != "" {
		fmt.Fprintf(w, " (notifly_user_id %s)", ans.UserID)
	}
	fmt.Fprintln(w)
	for _, c := range ans.Conditions {
		v := "missing"
		if c.Value != nil {
			v = *c.Value
		}
		dev := ""
		if c.DeviceID != "" {
			dev = " on device " + c.DeviceID
		}
		mark := "no "
		if c.Holds {
			mark = "yes"
		}
		fmt.Fprintf(w, "  [%s] %s%s — value %s  (%s)\n", mark, c.Meaning, dev, v, c.Path)
	}
	if g := ans.Governance; g != nil {
		for _, p := range []struct {
			what string
			v    *inspect.PropertyValue
		}{{"advertising consent", g.Consent}, {"night-time consent", g.NightConsent}} {
			if p.v == nil {
				continue
			}
			v := "missing"
			if p.v.Value != nil {
				v = *p.v.Value
			}
			fmt.Fprintf(w, "  %s: property %q is %s (consent: %v)\n", p.what, p.v.Property, v, p.v.Holds)
		}
		if f := g.Frequency; f != nil {
			fmt.Fprintf(w, "  frequency cap: %d %s deliveries in the window, max_messages %d (capped: %v)\n", f.Deliveries, f.Channel, f.MaxMessages, f.Capped)
		}
	}
	for _, o := range ans.Outcomes {
		dev := ""
		if o.DeviceID != "" {
			dev = " device " + o.DeviceID + ":"
		}
		variant := ""
		if o.VariantID != "" {
			variant = " (variant " + o.VariantID + ")"
		}
		fmt.Fprintf(w, "→%s %s%s\n", dev, o.Reason, variant)
		if o.Detail != "" {
			fmt.Fprintf(w, "  %s\n", o.Detail)
		}
		if len(o.Message) > 0 {
			fmt.Fprintf(w, "  %s\n", o.Message)
		}
	}
	return ExitOK
}

// runDiff is `segpub diff A B`.
func runDiff(_ context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	ignore := fs.String("ignore", "idempotency_key,request_id", "comma-separated fields not compared (dotted paths)")
	limit := fs.Int("limit", 20, "destinations listed per section")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.SetOutput(env.Stderr)
	if err := fs.Parse(args); err != nil {
		return ExitFailure
	}
	if fs.NArg() != 2 {
		fmt.Fprintln(env.Stderr, "usage: segpub diff [--ignore f1,f2] A.ndjson B.ndjson")
		return ExitFailure
	}
	var ign []string
	for _, f := range strings.Split(*ignore, ",") {
		if f = strings.TrimSpace(f); f != "" {
			ign = append(ign, f)
		}
	}
	rep, err := inspect.Diff(fs.Arg(0), fs.Arg(1), ign)
	if err != nil {
		return fail(env, "diff", err)
	}
	if *asJSON {
		printJSON(env.Stdout, rep)
	} else {
		fmt.Fprint(env.Stdout, rep.Summary(*limit))
	}
	// Like diff(1): 1 when the outputs differ.
	if len(rep.OnlyInA)+len(rep.OnlyInB)+len(rep.Different)+len(rep.RepeatedA)+len(rep.RepeatedB) > 0 {
		return ExitFailure
	}
	return ExitOK
}

// runCost is `segpub cost`.
func runCost(_ context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("cost", flag.ContinueOnError)
	perDay := fs.Float64("messages-per-day", 10_000_000, "messages sent a day")
	campaign := fs.Float64("campaign-size", 1_000_000, "messages of one large campaign")
	benchFile := fs.String("bench", "", "a `segpub bench --json` report to take throughput and memory from")
	mps := fs.Float64("messages-per-second", 0, "throughput, when no --bench file is given (default: the figure in docs/benchmarks.md)")
	p := cost.DefaultPrices
	fs.Float64Var(&p.FargateVCPUHour, "fargate-vcpu-hour", p.FargateVCPUHour, "Fargate $ per vCPU-hour")
	fs.Float64Var(&p.FargateGBHour, "fargate-gb-hour", p.FargateGBHour, "Fargate $ per GB-hour")
	fs.Float64Var(&p.SpotDiscount, "spot-discount", p.SpotDiscount, "Fargate Spot discount (0.6 = 60% off)")
	fs.Float64Var(&p.SQSPerMillionReqs, "sqs-per-million", p.SQSPerMillionReqs, "SQS $ per million requests")
	asJSON := fs.Bool("json", false, "print JSON")
	if ok, code := parseFlags(fs, args, env); !ok {
		return code
	}
	m := cost.Measured{MessagesPerSecond: 168931, PeakRSSMiB: 63, Source: "docs/benchmarks.md (segpub bench, 1M users, 2 cores)"}
	if *benchFile != "" {
		var err error
		if m, err = cost.FromBench(*benchFile); err != nil {
			return fail(env, "cost", err)
		}
	} else if *mps > 0 {
		m = cost.Measured{MessagesPerSecond: *mps, Source: "--messages-per-second"}
	}
	rep, err := cost.Compute(cost.Workload{MessagesPerDay: *perDay, CampaignSize: *campaign}, m, p)
	if err != nil {
		return fail(env, "cost", err)
	}
	if *asJSON {
		printJSON(env.Stdout, rep)
	} else {
		fmt.Fprint(env.Stdout, rep.Table())
	}
	return ExitOK
}

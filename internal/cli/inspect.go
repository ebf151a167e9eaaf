package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/segpub/segpub/docs"
	"github.com/segpub/segpub/internal/cost"
	"github.com/segpub/segpub/internal/inspect"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/redact"
)

// loadJob reads and parses --job for the operator tools; a bad job exits 2.
func loadJob(env *Env, c *common, name, path string) (*job.Job, int) {
	if path == "" {
		return nil, usageError(env, name, "--job is required")
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
		fmt.Fprintf(env.Stderr, "segpub %s: rejected: %v\n", name, redact.Text(err.Error()))
		return nil, ExitRejected
	}
	return j, ExitOK
}

func outcome(env *Env, name string, err error) int {
	if job.IsRejection(err) {
		fmt.Fprintf(env.Stderr, "segpub %s: rejected: %v\n", name, redact.Text(err.Error()))
		return ExitRejected
	}
	return fail(env, name, err)
}

func (a *App) explainCmd() *cobra.Command {
	cmd, d := a.newCmd("explain --job FILE", "show what a job would do: counts, sample messages, SQL and plan, missing indexes")
	var c common
	var jobPath string
	var sample int
	var asJSON bool
	d.String(&jobPath, "job", "", "", "job file, or - for standard input")
	d.Int(&sample, "sample", "", 3, "messages to show")
	d.fs.BoolVar(&asJSON, "json", false, "print JSON")
	c.register(d)
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int {
		return runExplain(ctx, a.env, &c, &jobPath, &sample, &asJSON)
	})
	return cmd
}

// runExplain is `segpub explain --job F`.
func runExplain(ctx context.Context, env *Env, c *common, jobPath *string, sample *int, asJSON *bool) int {
	j, code := loadJob(env, c, "explain", *jobPath)
	if j == nil {
		return code
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "explain", err)
	}
	defer pool.Close()
	ex, err := inspect.Explain(ctx, audienceReads(pool, slog.New(slog.DiscardHandler), c.operatorFiles()), j, *sample)
	if err != nil {
		return outcome(env, "explain", withHint(err, j.ProjectID))
	}
	if *asJSON {
		printJSON(env.Stdout, ex)
		return ExitOK
	}
	w := env.Stdout
	r := ex.Result
	fmt.Fprintf(w, "audience: %d candidates, %d would be published\n", r.Candidates, r.Published)
	s := r.Skipped
	fmt.Fprintf(w, "skipped: no_contact %d, invalid_contact %d, duplicate_destination %d, previously_received %d, control_group %d, unknown_user %d, no_consent %d, frequency_capped %d, local_time_passed %d, older_device %d\n",
		s.NoContact, s.InvalidContact, s.DuplicateDestination, s.PreviouslyReceived, s.ControlGroup, s.UnknownUser, s.NoConsent, s.FrequencyCapped,
		s.LocalTimePassed, s.OlderDevice)
	if len(r.Variants) > 0 {
		fmt.Fprintf(w, "variants: %s\n", formatCounts(r.Variants))
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
	if d := ex.Delivery; d != nil {
		printDeliveryCounts(w, d)
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

func (a *App) whyCmd() *cobra.Command {
	cmd, d := a.newCmd("why --job FILE --user ID", "show what a job does to one user: each condition, the variant, the skip reason or message")
	var c common
	var jobPath, user string
	var asJSON bool
	d.String(&jobPath, "job", "", "", "job file, or - for standard input")
	d.String(&user, "user", "", "", "the user's external_user_id")
	d.fs.BoolVar(&asJSON, "json", false, "print JSON")
	c.register(d)
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runWhy(ctx, a.env, &c, &jobPath, &user, &asJSON) })
	return cmd
}

// runWhy is `segpub why --job F --user EXTERNAL_ID`.
func runWhy(ctx context.Context, env *Env, c *common, jobPath, user *string, asJSON *bool) int {
	if *user == "" {
		return usageError(env, "why", "--user is required")
	}
	j, code := loadJob(env, c, "why", *jobPath)
	if j == nil {
		return code
	}
	pool, err := c.pool(ctx)
	if err != nil {
		return fail(env, "why", err)
	}
	defer pool.Close()
	ans, err := inspect.Why(ctx, audienceReads(pool, slog.New(slog.DiscardHandler), c.operatorFiles()), j, *user)
	if err != nil {
		return outcome(env, "why", withHint(err, j.ProjectID))
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
	if d := ans.Delivery; d != nil {
		for _, p := range []struct {
			what, property string
			v              *string
		}{{"time zone", d.ZoneProperty, d.ZoneStored}, {"language", d.LanguageProperty, d.LanguageStored}} {
			if p.property == "" {
				continue
			}
			v := "missing"
			if p.v != nil {
				v = *p.v
			}
			if j.Campaign.Audience.Type == job.AudienceCSV {
				v = "read from the file's column of that name"
			}
			fmt.Fprintf(w, "  %s: property %q is %s\n", p.what, p.property, v)
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
		if o.Targeting != "" {
			fmt.Fprintf(w, "  %s\n", o.Targeting)
		}
		if len(o.Message) > 0 {
			fmt.Fprintf(w, "  %s\n", o.Message)
		}
	}
	return ExitOK
}

// printDeliveryCounts prints explain's delivery targeting section.
func printDeliveryCounts(w io.Writer, d *inspect.DeliveryCounts) {
	if d.LocalTimePassed != nil {
		fmt.Fprintf(w, "local time: removes %d candidates (time passed, if_passed skip); %d messages moved to the next day; %d messages in the fallback zone\n",
			*d.LocalTimePassed, *d.NextDay, *d.Fallback)
		for _, b := range d.BaseTimes {
			fmt.Fprintf(w, "  base time %s: %d messages (%s)\n", b.At.Format(time.RFC3339), b.Messages, strings.Join(b.Zones, ", "))
		}
	}
	if d.OlderDevice != nil {
		fmt.Fprintf(w, "most recent device only: removes %d candidates (older devices)\n", *d.OlderDevice)
	}
	if d.Locales != nil {
		named := map[string]int64{}
		for k, n := range d.Locales {
			if k == "" {
				k = "null (default message)"
			}
			named[k] = n
		}
		fmt.Fprintf(w, "localized messages: %s\n", formatCounts(named))
	}
}

// DefaultDiffIgnore are the fields diff does not compare: they differ
// between any two runs by construction.
const DefaultDiffIgnore = "idempotency_key,request_id"

func (a *App) diffCmd() *cobra.Command {
	cmd, d := a.newCmd("diff A.ndjson B.ndjson", "compare two channel outputs by destination (old publisher vs segpub)")
	cmd.Long = `Compare two channel outputs by destination (old publisher vs segpub, or two runs).

A time field (send_at) that B holds moved by one same amount in every
message is reported once as a shift, not as a difference of every message:
two runs of a job without scheduled_at each take their own "now". List it
in --ignore to leave it out altogether.

Outputs of any size are compared in bounded memory: each file is sorted by
destination in --memory-mib at a time, spilling sorted runs to $TMPDIR and
merging them (two 1M-message outputs: docs/benchmarks.md, "segpub diff in
bounded memory").

Exit status, like diff(1): 0 the outputs match (uniform shifts aside), 1 they
differ or a file could not be read.`
	var ignore string
	var limit int
	var asJSON bool
	d.String(&ignore, "ignore", "", DefaultDiffIgnore, "comma-separated fields not compared (dotted paths, e.g. send_at)")
	d.Int(&limit, "limit", "", 20, "destinations listed per section")
	var memMiB int
	d.Int(&memMiB, "memory-mib", "", inspect.DefaultDiffMemoryBytes>>20, "messages of one file held in memory while sorting, in MiB; the rest spills to $TMPDIR")
	d.fs.BoolVar(&asJSON, "json", false, "print JSON")
	cmd.RunE = a.action(d, argsNamed("A.ndjson", "B.ndjson"), func(ctx context.Context, args []string) int {
		return runDiff(ctx, a.env, args, &ignore, &limit, &memMiB, &asJSON)
	})
	return cmd
}

// runDiff is `segpub diff A B`.
func runDiff(_ context.Context, env *Env, args []string, ignore *string, limit, memMiB *int, asJSON *bool) int {
	var ign []string
	for _, f := range strings.Split(*ignore, ",") {
		if f = strings.TrimSpace(f); f != "" {
			ign = append(ign, f)
		}
	}
	if *memMiB < 1 {
		return fail(env, "diff", fmt.Errorf("--memory-mib must be at least 1, got %d", *memMiB))
	}
	// The process does nothing else: a soft limit near what the sort and
	// the report hold keeps the garbage collector from letting the heap
	// grow to twice what is live (two disjoint 1M-message outputs reached
	// 255 MiB without it; docs/benchmarks.md). GOMEMLIMIT, when set, wins.
	if env.Getenv("GOMEMLIMIT") == "" {
		prev := debug.SetMemoryLimit(diffMemoryLimit(int64(*memMiB) << 20))
		defer debug.SetMemoryLimit(prev)
	}
	rep, err := inspect.DiffFiles(inspect.DiffConfig{Ignore: ign, MemoryBytes: int64(*memMiB) << 20}, args[0], args[1])
	if err != nil {
		return fail(env, "diff", err)
	}
	if *asJSON {
		printJSON(env.Stdout, rep)
	} else {
		fmt.Fprint(env.Stdout, rep.Summary(*limit))
	}
	// Like diff(1): 1 when the outputs differ.
	if rep.Differ() {
		return ExitFailure
	}
	return ExitOK
}

// diffMemoryLimit is the Go heap's soft limit for a diff that sorts budget
// bytes at a time: the buffer, what the merge and the report hold, room to
// collect.
func diffMemoryLimit(budget int64) int64 { return 3*budget + 32<<20 }

func (a *App) costCmd() *cobra.Command {
	cmd, d := a.newCmd("cost", "monthly cost of a workload on Fargate, from measured throughput, beside Glue and EMR")
	var o costOptions
	d.Float64(&o.perDay, "messages-per-day", "", 10_000_000, "messages sent a day")
	d.Float64(&o.campaign, "campaign-size", "", 1_000_000, "messages of one large campaign")
	d.String(&o.benchFile, "bench", "", "", "report file written by segpub bench --json, to take throughput and memory from")
	d.Float64(&o.mps, "messages-per-second", "", 0, "throughput when no --bench file is given; 0: the SQS figure in docs/benchmarks.md")
	o.p = cost.DefaultPrices
	d.Float64(&o.p.FargateVCPUHour, "fargate-vcpu-hour", "", o.p.FargateVCPUHour, "Fargate $ per vCPU-hour")
	d.Float64(&o.p.FargateGBHour, "fargate-gb-hour", "", o.p.FargateGBHour, "Fargate $ per GB-hour")
	d.Float64(&o.p.SpotDiscount, "spot-discount", "", o.p.SpotDiscount, "Fargate Spot discount (0.6 = 60% off)")
	d.Float64(&o.p.SQSPerMillionReqs, "sqs-per-million", "", o.p.SQSPerMillionReqs, "SQS $ per million requests")
	d.fs.BoolVar(&o.asJSON, "json", false, "print JSON")
	cmd.RunE = a.action(d, noArgs, func(ctx context.Context, _ []string) int { return runCost(ctx, a.env, &o) })
	return cmd
}

type costOptions struct {
	perDay, campaign float64
	mps              float64
	benchFile        string
	p                cost.Prices
	asJSON           bool
}

// runCost is `segpub cost`.
func runCost(_ context.Context, env *Env, o *costOptions) int {
	perDay, campaign, benchFile, mps, p, asJSON := &o.perDay, &o.campaign, &o.benchFile, &o.mps, o.p, &o.asJSON
	// By default the benchmark's recorded results, built in: the largest
	// size's push to SQS over a network round trip, the output production
	// uses, with the date and machine it was measured on.
	var m cost.Measured
	var err error
	switch {
	case *benchFile != "":
		m, err = cost.FromBench(*benchFile)
	case *mps > 0:
		m = cost.Measured{MessagesPerSecond: *mps, Source: "--messages-per-second"}
	default:
		m, err = cost.FromReport(docs.BenchmarkResults, docs.BenchmarkResultsPath+" (built in)")
	}
	if err != nil {
		return fail(env, "cost", err)
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

// formatCounts renders counts by name as "a 1, b 2", by name.
func formatCounts(m map[string]int64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, m[n])
	}
	return strings.Join(parts, ", ")
}

// Package demo is `segpub demo`: the whole service on one laptop. It seeds a
// project, defines campaigns (one per channel, an A/B test, a throttled one
// and one on a CSV file), and runs the scheduler and the worker on an
// embedded JetStream until every run has finished, then prints a summary.
package demo

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segpub/segpub/internal/console"
	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/progress"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/scheduler"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
	"github.com/segpub/segpub/internal/service"
)

// Config configures a demo.
type Config struct {
	Pool *pgxpool.Pool
	// ProjectID is the seeded project. Default: demo.
	ProjectID string
	Users     int
	// Replace lets the demo reseed a project that holds another number of
	// users than Users (a project seeded by hand, or an earlier demo of
	// another size); without it the demo refuses rather than replace it.
	Replace bool
	DataDir string
	Logger  *slog.Logger
	// Out receives the progress bar and the summary.
	Out io.Writer
	// JSON, when set, receives the runs as one JSON array (Out then
	// gets only the progress and the table).
	JSON io.Writer
	// Console is the operator console served while the demo runs.
	Console Console
}

// Console configures the demo's operator console.
type Console struct {
	// Addr is where it listens; empty: no console.
	Addr string
	// Token enables its actions; empty: read-only.
	Token string
	// Hosts, TrustProxy and SessionLifetime are as in console.Config.
	Hosts           []string
	TrustProxy      bool
	SessionLifetime time.Duration
	// Databases are shown in its footer, redacted.
	Databases []console.Database
	// Keep keeps it (and the worker) running after the summary until ctx
	// ends, so the finished runs can be looked at.
	Keep bool
}

type campaign struct {
	name     string
	channel  string
	body     string // campaign fields after id and channel
	schedule string
}

// campaigns are the demo's campaigns: every channel, an A/B test, a
// throttled campaign and a CSV audience.
func campaigns(csvURL string) []campaign {
	msg := `"message":{"title":"Hello {{ user[\"name\"] | default: \"there\" }}","body":"Our picks for you"}`
	imm := `{"kind":"immediate"}`
	return []campaign{
		{"push to everyone", "push_notification", `"audience":{"type":"all"},` + msg, imm},
		{"web push, recent app", "web_push_notification", `"audience":{"type":"segment","groups":[{"conditions":[{"kind":"device","attribute":"app_version","operator":">=","value":"3.10"}]}]},` + msg, imm},
		{"alimtalk to gold buyers", "kakao_alimtalk", `"audience":{"type":"segment","groups":[{"conditions":[{"kind":"user","attribute":"tier","operator":"=","value":"gold"},{"kind":"event","event":"purchase","within_days":30,"operator":">=","value":1}]}]},` + msg, imm},
		{"friendtalk to VIPs", "kakao_friendtalk", `"audience":{"type":"segment","groups":[{"conditions":[{"kind":"user","attribute":"vip","operator":"=","value":true}]}]},` + msg, imm},
		{"SMS to lapsed users", "text_message", `"audience":{"type":"segment","groups":[{"conditions":[{"kind":"delivery","campaign_id":"cmp_prev1","within_days":7,"received":false},{"kind":"user","attribute":"age","operator":">=","value":30}]}]},` + msg, imm},
		{"email to everyone", "email", `"audience":{"type":"all"},` + msg, imm},
		{"email A/B test", "email", `"audience":{"type":"all"},"experiment_id":"exp_ab","variant_messages":{"var_b":{"title":"Something new for you","body":"B"}},` + msg, imm},
		{"push, throttled", "push_notification", `"audience":{"type":"segment","groups":[{"conditions":[{"kind":"user","attribute":"tier","operator":"in","value":["gold","silver"]}]}]},"throttle":{"max_per_interval":5000,"interval_minutes":10},` + msg, imm},
		{"email from a CSV file", "email", `"audience":{"type":"csv","url":"` + csvURL + `"},` + msg, imm},
	}
}

// Run runs the demo.
func Run(ctx context.Context, cfg Config) error {
	log := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	out := cfg.Out
	project := cmp.Or(cfg.ProjectID, "demo")
	if err := checkProject(ctx, cfg.Pool, project, cfg.Users, cfg.Replace); err != nil {
		return err
	}
	fmt.Fprintf(out, "== seeding project %q with %d users\n", project, cfg.Users)
	if _, err := seed.Run(ctx, cfg.Pool, seed.Config{ProjectID: project, Users: cfg.Users, Replace: true, Logger: log, Progress: out}); err != nil {
		return err
	}
	tables, _ := schema.For(project)
	if _, err := indexes.Create(ctx, cfg.Pool, tables, log); err != nil {
		return err
	}
	// The data directory is usually relative (segpub-data under the
	// current directory); a file URL must carry an absolute path.
	csvPath, err := filepath.Abs(filepath.Join(cfg.DataDir, "demo-audience.csv"))
	if err != nil {
		return fmt.Errorf("CSV audience path: %w", err)
	}
	if err := writeCSV(ctx, cfg.Pool, tables, csvPath); err != nil {
		return err
	}
	// The demo is the service (internal/service) with embedded defaults
	// and a console: the worker, the scheduler and the cleaner production
	// runs, on streams of its own in the data directory.
	ln, consoleURL := listenConsole(cfg, out)
	svc, err := service.New(ctx, cfg.service(csvPath, ln, log))
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	defer svc.Close()
	conn, err := svc.Opener().NATS.Connect(ctx, "embedded:")
	if err != nil {
		return err
	}
	run := time.Now().UTC().Format("20060102T150405")
	// Earlier demos' messages are of no further use: drop them, so the
	// data directory holds one demo's (the stream's limits bound it
	// anyway). Count this run's messages by sequence, which grows by one
	// for every message stored even if a limit discards old ones.
	if err := purge(ctx, conn.JS, channelStream, log); err != nil {
		return err
	}
	info, err := conn.JS.Stream(ctx, channelStream)
	if err != nil {
		return err
	}
	before := int64(info.CachedInfo().State.LastSeq)
	led, err := ledger.New(ctx, cfg.Pool)
	if err != nil {
		return err
	}
	store, err := scheduler.NewStore(ctx, cfg.Pool)
	if err != nil {
		return err
	}
	var ids []string
	names := map[string]campaign{}
	fmt.Fprintf(out, "== defining %d campaigns\n", len(campaigns("")))
	for i, c := range campaigns(fileURL(csvPath)) {
		id := fmt.Sprintf("demo_%s_%d", run, i+1)
		body := fmt.Sprintf(`{"id":%q,"channel":%q,%s}`, id, c.channel, c.body)
		if err := store.Add(ctx, scheduler.Campaign{ProjectID: project, Campaign: json.RawMessage(body), Schedule: json.RawMessage(c.schedule)}); err != nil {
			return fmt.Errorf("campaign %q: %w", c.name, err)
		}
		ids = append(ids, id)
		names[id] = c
	}
	fmt.Fprintln(out, "== running the scheduler and the worker on an embedded JetStream")
	if err := svc.Start(ctx); err != nil {
		return err
	}
	if consoleURL != "" {
		fmt.Fprintf(out, "== console: %s (runs update live)\n", consoleURL)
	}
	defer func() { _ = svc.Stop() }()
	runs, err := wait(ctx, led, ids, out, log)
	if err != nil {
		return err
	}
	if info, err = conn.JS.Stream(ctx, channelStream); err != nil {
		return err
	}
	if cfg.JSON != nil {
		list := make([]*ledger.Run, 0, len(ids))
		for _, id := range ids {
			list = append(list, runs[id])
		}
		b, _ := json.Marshal(list)
		fmt.Fprintf(cfg.JSON, "%s\n", b)
	}
	if err := summary(out, ids, names, runs, int64(info.CachedInfo().State.LastSeq)-before); err != nil {
		return err
	}
	if consoleURL != "" && cfg.Console.Keep {
		fmt.Fprintf(out, "== the console stays at %s; press Ctrl-C to stop\n", consoleURL)
		<-ctx.Done()
	}
	return nil
}

// channelStream is the demo's channel stream, kept apart from a service's
// SEGPUB_CHANNELS in the same data directory.
const channelStream = "DEMO_CHANNELS"

// service is the demo's service: serve's defaults but for the streams (the
// demo's own), a scheduler that wakes every 2 seconds, CSV audiences from
// the data directory, and the console.
func (cfg Config) service(csvPath string, ln net.Listener, log *slog.Logger) service.Config {
	c := service.Config{Audience: cfg.Pool, Logger: log, DataDir: cfg.DataDir,
		Run:         []service.Module{service.Worker, service.Scheduler, service.Cleaner},
		JobQueueURL: "embedded:?stream=DEMO_JOBS&subject=demo.jobs",
		// The consumer keeps the name earlier demos gave it: a work-queue
		// stream takes one consumer per subject, so a data directory from
		// an earlier demo would refuse serve's default name.
		DeadLetterURL: "embedded:?stream=DEMO_DEAD_LETTERS&subject=demo.dead_letters&consumer=segpub-worker",
		ChannelURL:    "embedded:?stream=" + channelStream + "&subject=demo.channel.{channel}",
		CSVRoot:       filepath.Dir(csvPath),
		PartitionRows: service.DefaultPartitionRows,
		Scheduler:     service.SchedulerConfig{Interval: 2 * time.Second},
		// The demo's own stop: its runs are done by then.
		ShutdownGrace: 10 * time.Second,
	}
	if ln != nil {
		c.Console = service.ConsoleConfig{Listener: ln, Config: console.Config{Token: cfg.Console.Token, Hosts: cfg.Console.Hosts,
			TrustProxy: cfg.Console.TrustProxy, SessionLifetime: cfg.Console.SessionLifetime, Databases: cfg.Console.Databases}}
	}
	return c
}

// listenConsole opens the console's address and returns its URL. An
// address in use is not the demo's failure: it runs without.
func listenConsole(cfg Config, out io.Writer) (net.Listener, string) {
	if cfg.Console.Addr == "" {
		return nil, ""
	}
	ln, err := net.Listen("tcp", cfg.Console.Addr)
	if err != nil {
		fmt.Fprintf(out, "== no console: %v (--console-addr)\n", err)
		return nil, ""
	}
	return ln, "http://" + ln.Addr().String() + "/"
}

// ErrProjectInUse is returned when the demo's project holds another number
// of users than asked for and Replace is not set.
var ErrProjectInUse = errors.New("the demo's project holds another audience")

// checkProject refuses to reseed a project of another size: the demo
// replaces its project's tables, and a 100k- or 1M-user project seeded for
// a benchmark must not vanish under a quick `segpub demo --users 1000`. A
// project of the same size is reseeded: the seed makes the same rows.
func checkProject(ctx context.Context, pool *pgxpool.Pool, project string, users int, replace bool) error {
	tables, err := schema.For(project)
	if err != nil {
		return err
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, tables.User).Scan(&exists); err != nil {
		return fmt.Errorf("look up project %s: %w", project, err)
	}
	if !exists || replace {
		return nil
	}
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+tables.User).Scan(&n); err != nil {
		return fmt.Errorf("count the users of project %s: %w", project, err)
	}
	if n == int64(users) {
		return nil
	}
	return fmt.Errorf("%w: project %q already holds %d users, not %d; --replace reseeds it with %d, --project names another",
		ErrProjectInUse, project, n, users, users)
}

// purge empties a stream, logging what it dropped.
func purge(ctx context.Context, js jetstream.JetStream, name string, log *slog.Logger) error {
	st, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	if state := st.CachedInfo().State; state.Msgs > 0 {
		log.Info("dropping an earlier demo's channel messages", "stream", name, "messages", state.Msgs, "bytes", state.Bytes)
		if err := st.Purge(ctx); err != nil {
			return fmt.Errorf("purge stream %s: %w", name, err)
		}
	}
	return nil
}

// wait polls the ledger until every campaign's run has finished, drawing
// progress.
func wait(ctx context.Context, led *ledger.Ledger, ids []string, out io.Writer, log *slog.Logger) (map[string]*ledger.Run, error) {
	bar := progress.New(progress.Config{Label: "runs", Total: int64(len(ids)), Out: out, Logger: log})
	runs := map[string]*ledger.Run{}
	deadline := time.Now().Add(30 * time.Minute)
	for {
		done := 0
		for _, id := range ids {
			r, err := findRun(ctx, led, id)
			if err != nil {
				return nil, err
			}
			if r != nil {
				runs[id] = r
				if r.Status.Final() {
					done++
				}
			}
		}
		bar.Set(int64(done))
		if done == len(ids) {
			bar.Done()
			return runs, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("runs did not finish in 30 minutes")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// findRun finds the run of a campaign's (single, immediate) occurrence.
func findRun(ctx context.Context, led *ledger.Ledger, campaignID string) (*ledger.Run, error) {
	r, err := led.LatestOf(ctx, campaignID)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil
	}
	return r, err
}

func summary(out io.Writer, ids []string, names map[string]campaign, runs map[string]*ledger.Run, stored int64) error {
	fmt.Fprintf(out, "\n%-26s %-22s %-10s %10s %10s  %s\n", "campaign", "channel", "status", "candidates", "published", "skipped")
	var failed []string
	var total int64
	for _, id := range ids {
		r := runs[id]
		var res publish.Result
		_ = json.Unmarshal(r.Result, &res)
		skipped := []string{}
		s := res.Skipped
		for _, kv := range []struct {
			k string
			v int64
		}{{"no_contact", s.NoContact}, {"invalid", s.InvalidContact}, {"duplicate", s.DuplicateDestination},
			{"previous", s.PreviouslyReceived}, {"control", s.ControlGroup}, {"unknown", s.UnknownUser},
			{"no_consent", s.NoConsent}, {"capped", s.FrequencyCapped}, {"local_time_passed", s.LocalTimePassed}, {"older_device", s.OlderDevice}} {
			if kv.v > 0 {
				skipped = append(skipped, fmt.Sprintf("%s %d", kv.k, kv.v))
			}
		}
		fmt.Fprintf(out, "%-26s %-22s %-10s %10d %10d  %s\n", names[id].name, names[id].channel, r.Status, r.Candidates, r.Published, strings.Join(skipped, ", "))
		if len(res.Variants) > 0 {
			fmt.Fprintf(out, "%-26s variants: %s\n", "", variants(res.Variants))
		}
		total += r.Published
		if r.Status != ledger.Completed {
			failed = append(failed, names[id].name+": "+r.Error)
		}
	}
	fmt.Fprintf(out, "\n%d messages published to the embedded JetStream (stream DEMO_CHANNELS).\n", total)
	if stored != total {
		return fmt.Errorf("the channel stream holds %d messages, but the runs published %d", stored, total)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d runs did not complete: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// variants lists published messages per variant, by variant id:
// "var_a 41799, var_b 41802".
func variants(m map[string]int64) string {
	ids := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s %d", id, m[id])
	}
	return strings.Join(parts, ", ")
}

// fileURL is the file:// URL of a local path, made absolute: file URLs
// carry no relative paths (file://segpub-data/x.csv names host
// "segpub-data" and path /x.csv).
func fileURL(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// writeCSV writes a CSV audience from some seeded users, with a personal
// coupon column.
func writeCSV(ctx context.Context, pool *pgxpool.Pool, t schema.Tables, path string) error {
	rows, err := pool.Query(ctx, `SELECT coalesce(email, ''), coalesce(external_user_id, '') FROM `+t.User+` ORDER BY random_bucket_number LIMIT 2000`)
	if err != nil {
		return fmt.Errorf("read CSV audience: %w", err)
	}
	defer rows.Close()
	var b strings.Builder
	cw := csv.NewWriter(&b)
	_ = cw.Write([]string{"email", "user_id", "coupon"})
	i := 0
	for rows.Next() {
		var email, ext string
		if err := rows.Scan(&email, &ext); err != nil {
			return err
		}
		i++
		_ = cw.Write([]string{email, ext, fmt.Sprintf("WELCOME-%04d", i)})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	cw.Flush()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Package bench measures segpub against the physical floor of reading an
// audience: PostgreSQL's own COPY of the same query, timed in the same run
// on the same data. Each measured run is a child process (the segpub binary
// itself), so its wall time and peak RSS are its own.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
	"github.com/segpub/segpub/internal/sink/sqssink"
)

// Config configures a benchmark run.
type Config struct {
	// Pool has segpub's audience session settings (work_mem among them):
	// the own-query floors run on it, as the runs they measure do.
	Pool *pgxpool.Pool
	// FloorPool has the server's own session settings: the COPY floors run
	// on it, as anyone comparing with PostgreSQL would. Default: Pool.
	FloorPool   *pgxpool.Pool
	DatabaseURL string
	// Binary is the segpub executable to run.
	Binary string
	// Projects are the projects to measure, each seeded with its number of
	// users when it has no tables.
	Projects []Project
	// Runs is how many times each measurement is repeated (best kept).
	// Default: 1.
	Runs int
	// BaselineMaxUsers: the seed pattern runs on projects of at most this
	// many users (its OFFSET paging grows with the square of the audience).
	// 0 never runs it.
	BaselineMaxUsers int64
	// Only, when not empty, restricts the measurements to these jobs (by
	// Measurement.Job).
	Only []string
	// SQSRTT is the round-trip time of the SQS workload's endpoint; 0 leaves
	// the workload out.
	SQSRTT time.Duration
	// KeysOnly measures the tables as they arrive, with only their keys:
	// segpub's indexes are not created (nor dropped when present).
	KeysOnly bool
	// Targeting seeds new projects with the properties delivery targeting
	// reads (seed.Config.Targeting), for the push-all-delivery workload.
	Targeting bool
	// Generator is the shape of the data seeded into projects without
	// tables (seed.Generators).
	Generator seed.Generator
	OutDir    string
	// ProfileDir, when set, receives a CPU profile of every publish run
	// (project-job-time.pprof), for go tool pprof.
	ProfileDir string
	Logger     *slog.Logger
	// Step, when set, is called after each measurement.
	Step func(name string)
}

// Project is one data size.
type Project struct {
	ID    string
	Users int
}

// Measurement is one timed step.
type Measurement struct {
	// Job identifies the workload across sizes (push-all, seed-push-all, …).
	Job       string  `json:"job"`
	Name      string  `json:"name"`
	Seconds   float64 `json:"seconds"`
	bodyBytes int
	started   time.Time
	Messages  int64   `json:"messages,omitempty"`
	PerSecond float64 `json:"messages_per_second,omitempty"`
	PeakRSSMB float64 `json:"peak_rss_mib,omitempty"`
	// VsCopy is Seconds divided by the COPY baseline's.
	VsCopy float64 `json:"vs_copy,omitempty"`
	// VsCopyPaired (push-all only) is the median, over the runs, of each
	// run's seconds divided by a COPY of the plain join timed right
	// before it: on a noisy machine the two of a pair see the same
	// conditions, where the best of each may come from different ones.
	VsCopyPaired float64 `json:"vs_copy_paired,omitempty"`
	// QuerySeconds is the workload's own floor: its exact audience query,
	// as a run compiles and plans it, read to the end by a bare loop
	// that does nothing with the rows. VsQuery is Seconds divided by it.
	QuerySeconds float64 `json:"query_seconds,omitempty"`
	VsQuery      float64 `json:"vs_query,omitempty"`
	// SDKPerSecond is the SQS workload's ceiling: the AWS SDK alone
	// sending as many messages of the same size to the same endpoint.
	// VsSDK is PerSecond divided by it.
	SDKPerSecond float64 `json:"sdk_messages_per_second,omitempty"`
	VsSDK        float64 `json:"vs_sdk,omitempty"`
	// VsSDKPaired is the median, over the runs, of each run's rate
	// divided by the SDK alone's right after it.
	VsSDKPaired float64 `json:"vs_sdk_paired,omitempty"`
	// FirstMessageSeconds (SQS workloads) is how long after its start the
	// process sent its first message: the time its audience query took to
	// hand over a first row, during which the SDK alone would have been
	// sending already.
	FirstMessageSeconds float64 `json:"first_message_seconds,omitempty"`
	// DatabaseCPUSeconds is the CPU time PostgreSQL's processes spent
	// during the run, when the server runs on the benchmark's machine.
	DatabaseCPUSeconds float64 `json:"database_cpu_seconds,omitempty"`
	// VsPaired (workloads with a partner, e.g. push-all-delivery against
	// push-all) is the median of the run-by-run ratios of this workload's
	// seconds to its partner's, the two run alternately.
	VsPaired float64 `json:"vs_partner_paired,omitempty"`
	// CPUSeconds is the segpub process's own CPU time (user and system),
	// which load from other processes disturbs less than wall time;
	// VsPairedCPU is VsPaired's figure for it.
	CPUSeconds  float64 `json:"cpu_seconds,omitempty"`
	VsPairedCPU float64 `json:"vs_partner_paired_cpu,omitempty"`
	// PublishPerSecond (serve-sqs only) is the rate of the `segpub
	// publish` run paired with the best serve run; VsPublish the median,
	// over the pairs, of serve's rate divided by publish's.
	PublishPerSecond float64 `json:"publish_messages_per_second,omitempty"`
	VsPublish        float64 `json:"vs_publish,omitempty"`
}

// SizeReport is the results on one project.
type SizeReport struct {
	ProjectID string        `json:"project_id"`
	Users     int64         `json:"users"`
	Devices   int64         `json:"devices"`
	Results   []Measurement `json:"results"`
}

// Report is a benchmark's results.
type Report struct {
	CPUs  int       `json:"cpus"`
	Taken time.Time `json:"taken"`
	// Machine is what the benchmark ran on.
	Machine Machine `json:"machine"`
	// Note says anything else a reader of the figures needs to know.
	Note string `json:"note,omitempty"`
	// KeysOnly: the tables had only their keys (Config.KeysOnly).
	KeysOnly bool `json:"keys_only"`
	// FloorWorkMem is the work_mem the COPY floors ran at (the server's);
	// WorkMem the one segpub's sessions ran at.
	FloorWorkMem string       `json:"floor_work_mem"`
	WorkMem      string       `json:"work_mem"`
	Sizes        []SizeReport `json:"sizes"`
}

// Workloads, by Measurement.Job.
const (
	JobCopy          = "copy"
	JobCopyOrdered   = "copy-ordered"
	JobPushSQS       = "push-all-sqs"
	JobSegmentSQS    = "segment-bucket-sqs"
	JobPushAll       = "push-all"
	JobPushJetStream = "push-all-jetstream"
	JobSegment       = "segment-event-device"
	JobUserIDs       = "user-ids-200k"
	JobSize          = "calculate-size"
	JobABEmail       = "ab-throttled-email"
	JobPushDelivery  = "push-all-delivery"
	JobSeedPushAll   = "seed-pattern-push-all"
	JobSeedUserIDs   = "seed-pattern-user-ids-200k"
)

// idListSize is the length of the user_ids workload's list.
const idListSize = 200_000

type workload struct {
	job, name string
	command   string // publish, size or baseline
	out       string // publish: the --out URL, {dir} replaced by a scratch directory
	build     func(project string, ids []string) []byte
	baseline  bool
	// sqs: out names the built-in SQS endpoint ({sqs}), and each run is
	// followed by the SDK alone sending as many messages of the same size.
	sqs bool
	// pairedWith is a workload run alternately with this one (A, B, B,
	// A, ...): VsPaired is the median of their run-by-run ratios, in
	// which load from other processes mostly cancels out.
	pairedWith *workload
}

func jobHeader(project, requestID string) string {
	return fmt.Sprintf(`{"version":1,"action":"publish","request_id":%q,"project_id":%q,`, requestID, project)
}

// PushAllJob is the benchmark's project-wide push campaign.
func PushAllJob(project string) []byte {
	return []byte(jobHeader(project, "bench-push-all") + `"campaign":{"id":"bench_push","channel":"push_notification",
"audience":{"type":"all"},"message":{"title":"Hello","body":"A benchmark message."}}}`)
}

// PushDeliveryJob is PushAllJob with every delivery targeting feature on
// (docs/delivery.md), reading the properties `segpub seed
// --targeting` writes.
func PushDeliveryJob(project string) []byte {
	return []byte(jobHeader(project, "bench-push-delivery") + `"campaign":{"id":"bench_push","channel":"push_notification",
"audience":{"type":"all"},"message":{"title":"Hello","body":"A benchmark message."},
"delivery":{"local_time":{"time":"09:00","time_zone":"timezone"},"most_recent_device_only":true,
"localized_messages":{"property":"language","messages":{"ko":{"title":"안녕하세요","body":"벤치마크 메시지입니다."},
"en":{"title":"Hello","body":"A benchmark message."},"ja":{"title":"こんにちは","body":"ベンチマークのメッセージです。"},
"zh-Hant":{"title":"你好","body":"基準測試訊息。"}}}}}}`)
}

func segmentJob(project string, _ []string) []byte {
	// Users with a purchase in the last 30 days, on an iOS device with a
	// recent app: one event and one device condition.
	return []byte(jobHeader(project, "bench-segment") + `"campaign":{"id":"bench_segment","channel":"push_notification",
"audience":{"type":"segment","groups":[{"conditions":[
 {"kind":"event","event":"purchase","within_days":30,"operator":">=","value":1},
 {"kind":"device","attribute":"platform","operator":"=","value":"ios"}]}]},
"message":{"title":"Thanks","body":"For your purchase."}}}`)
}

// segmentBucketJob pushes to the users of random buckets below 3000 (3
// users in 10): a segment of one user-column condition, as an operator's
// holdout or staged rollout is.
func segmentBucketJob(project string, _ []string) []byte {
	return []byte(jobHeader(project, "bench-segment-bucket") + `"campaign":{"id":"bench_segment_bucket","channel":"push_notification",
"audience":{"type":"segment","groups":[{"conditions":[
 {"kind":"user","attribute":"$random_bucket_number","operator":"<","value":3000}]}]},
"message":{"title":"Hello","body":"A benchmark message."}}}`)
}

func userIDsJob(project string, ids []string) []byte {
	list, _ := json.Marshal(ids)
	return []byte(jobHeader(project, "bench-user-ids") + `"campaign":{"id":"bench_ids","channel":"push_notification",
"audience":{"type":"user_ids","user_ids":` + string(list) + `},"message":{"title":"Hello","body":"You are on the list."}}}`)
}

func abEmailJob(project string, _ []string) []byte {
	return []byte(jobHeader(project, "bench-ab-email") + `"campaign":{"id":"` + seed.ExperimentCampaign + `","channel":"email",
"audience":{"type":"all"},"experiment_id":"` + seed.ExperimentID + `","throttle":{"max_per_interval":100000,"interval_minutes":10},
"message":{"subject":"Hello {{ user[\"name\"] | default: \"there\" }}","body":"A benchmark message."}}}`)
}

// workloads in the order they run. The JetStream run writes its stream to
// the disk the database reads (10 GB at 10M users) and pushes the tables
// out of the page cache, so it runs after the database-bound workloads,
// which then all start as warm as the COPY they are compared with.
var workloads = []workload{
	{job: JobPushAll, name: "publish push, all users -> file://", command: "publish", out: "file://{dir}/{channel}.ndjson",
		build: func(p string, _ []string) []byte { return PushAllJob(p) }},
	{job: JobSegment, name: "publish push, segment: event + device condition", command: "publish", out: "file://{dir}/{channel}.ndjson", build: segmentJob},
	{job: JobUserIDs, name: "publish push, user_ids list of 200k", command: "publish", out: "file://{dir}/{channel}.ndjson", build: userIDsJob},
	{job: JobSize, name: "calculate-size push, all users", command: "size", build: func(p string, _ []string) []byte { return PushAllJob(p) }},
	{job: JobABEmail, name: "publish email, A/B + throttle, all users", command: "publish", out: "file://{dir}/{channel}.ndjson", build: abEmailJob},
	{job: JobPushSQS, name: "publish push, all users -> SQS endpoint with a {rtt} round trip", command: "publish", sqs: true,
		out: "sqs+{sqs}/000000000000/bench-{channel}", build: func(p string, _ []string) []byte { return PushAllJob(p) }},
	{job: JobSegmentSQS, name: "publish push, segment random_bucket_number < 3000 -> SQS endpoint with a {rtt} round trip", command: "publish", sqs: true,
		out: "sqs+{sqs}/000000000000/bench-{channel}", build: segmentBucketJob},
	{job: JobPushJetStream, name: "publish push, all users -> embedded JetStream", command: "publish",
		out: "embedded://{dir}/js?stream=BENCH&subject=bench.{channel}", build: func(p string, _ []string) []byte { return PushAllJob(p) }},
	{job: JobPushDelivery, name: "publish push, all users, local_time + most_recent_device_only + localized_messages -> file://", command: "publish",
		out: "file://{dir}/{channel}.ndjson", build: func(p string, _ []string) []byte { return PushDeliveryJob(p) },
		pairedWith: &workload{job: JobPushAll, command: "publish", out: "file://{dir}/{channel}.ndjson",
			build: func(p string, _ []string) []byte { return PushAllJob(p) }}},
	{job: JobSeedPushAll, name: "seed pattern: push, all users (OFFSET pages, IN lists, in memory)", command: "baseline",
		baseline: true, build: func(p string, _ []string) []byte { return PushAllJob(p) }},
	{job: JobSeedUserIDs, name: "seed pattern: push, user_ids list of 200k (IN lists of 5000)", command: "baseline",
		baseline: true, build: userIDsJob},
}

// Run seeds the projects that have no tables, then measures each.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Runs = max(cfg.Runs, 1)
	rep := &Report{CPUs: numCPU(), Taken: time.Now().UTC(), Machine: thisMachine(), KeysOnly: cfg.KeysOnly}
	if err := cfg.floorPool().QueryRow(ctx, `SHOW work_mem`).Scan(&rep.FloorWorkMem); err != nil {
		return nil, fmt.Errorf("read work_mem: %w", err)
	}
	if err := cfg.Pool.QueryRow(ctx, `SHOW work_mem`).Scan(&rep.WorkMem); err != nil {
		return nil, fmt.Errorf("read work_mem: %w", err)
	}
	for _, p := range cfg.Projects {
		sr, err := runProject(ctx, cfg, p)
		if err != nil {
			return nil, fmt.Errorf("project %s: %w", p.ID, err)
		}
		rep.Sizes = append(rep.Sizes, *sr)
	}
	return rep, nil
}

func (cfg *Config) floorPool() *pgxpool.Pool {
	if cfg.FloorPool != nil {
		return cfg.FloorPool
	}
	return cfg.Pool
}

func (cfg *Config) wants(job string) bool {
	if len(cfg.Only) == 0 {
		return true
	}
	for _, o := range cfg.Only {
		if o == job {
			return true
		}
	}
	return false
}

// applies reports whether a workload runs on a project of that many users.
func (cfg *Config) applies(wl workload, users int64) bool {
	switch {
	case !cfg.wants(wl.job):
		return false
	case wl.baseline:
		return cfg.BaselineMaxUsers > 0 && users <= cfg.BaselineMaxUsers
	case wl.sqs:
		return cfg.SQSRTT > 0
	}
	return true
}

// plainJoin is the floor's query made from segpub's: its final ORDER BY
// cut, and its select list reading the columns as stored, without the
// collation and the cast segpub asks for (segpub's choices, not what
// streaming the audience needs).
func plainJoin(sql string) (string, bool) {
	i := strings.LastIndex(sql, "\nORDER BY ")
	if i < 0 || strings.Contains(sql[i:], ")") {
		return "", false
	}
	sql = sql[:i]
	head, rest, _ := strings.Cut(sql, "\n")
	head = strings.ReplaceAll(head, ` COLLATE "C"`, "")
	head = strings.ReplaceAll(head, "u.user_properties::text", "u.user_properties")
	if rest == "" {
		return head, true
	}
	return head + "\n" + rest, true
}

func runProject(ctx context.Context, cfg Config, p Project) (*SizeReport, error) {
	log := cfg.Logger
	tables, err := schema.For(p.ID)
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := cfg.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, tables.User).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look up tables: %w", err)
	}
	if !exists {
		log.Info("seeding", "project", p.ID, "users", p.Users, "generator", cfg.Generator)
		if _, err := seed.Run(ctx, cfg.Pool, seed.Config{ProjectID: p.ID, Users: p.Users, Logger: log, Targeting: cfg.Targeting, Generator: cfg.Generator}); err != nil {
			return nil, err
		}
	}
	// Measured as an operator runs segpub: after `segpub migrate indexes`
	// (unless KeysOnly).
	if !cfg.KeysOnly {
		if _, err := indexes.Create(ctx, cfg.Pool, tables, log); err != nil {
			return nil, err
		}
	}
	sr := &SizeReport{ProjectID: p.ID}
	if err := cfg.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+tables.User+`), (SELECT count(*) FROM `+tables.Device+`)`).Scan(&sr.Users, &sr.Devices); err != nil {
		return nil, fmt.Errorf("count rows: %w", err)
	}
	dir := filepath.Join(cfg.OutDir, p.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The user_ids workloads list 200k existing users spread over the id space.
	var ids []string
	if cfg.wants(JobUserIDs) || cfg.wants(JobSeedUserIDs) {
		if ids, err = pickIDs(ctx, cfg.Pool, tables); err != nil {
			return nil, err
		}
	}

	// The floor: PostgreSQL's COPY of the plain audience join (users
	// left-joined to their push devices) with no ORDER BY: what reading the
	// audience costs, whatever order segpub chooses to read it in. The same
	// query with segpub's ORDER BY is a second figure.
	j, err := job.Parse(PushAllJob(p.ID))
	if err != nil {
		return nil, err
	}
	orderedSQL, err := literalQuery(j, tables, false)
	if err != nil {
		return nil, err
	}
	// The floor joins the tables themselves, not segpub's ordered readings
	// of them.
	plainInputs, err := literalQuery(j, tables, true)
	if err != nil {
		return nil, err
	}
	plainSQL, ok := plainJoin(plainInputs)
	if !ok {
		return nil, fmt.Errorf("the push audience query has no final ORDER BY: %s", plainInputs)
	}
	var copyBest float64
	for _, floor := range []struct {
		job, name, sql string
	}{
		{JobCopy, "COPY (user ⟕ push device, no ORDER BY) TO STDOUT", plainSQL},
		{JobCopyOrdered, "COPY (segpub's own query, ORDER BY included) TO STDOUT", orderedSQL},
	} {
		best, err := bestOf(cfg.Runs, func(run int) (float64, error) {
			sec, err := timeCopy(ctx, cfg.floorPool(), floor.sql)
			if err == nil {
				log.Info("copy floor", "project", p.ID, "floor", floor.job, "run", run, "seconds", sec)
			}
			return sec, err
		})
		if err != nil {
			return nil, err
		}
		if floor.job == JobCopy {
			copyBest = best
		}
		if cfg.Step != nil {
			cfg.Step(floor.job + " " + p.ID)
		}
		sr.Results = append(sr.Results, Measurement{Job: floor.job, Name: floor.name, Seconds: best, VsCopy: best / copyBest})
	}

	runner, err := publish.New(publish.Config{Pool: cfg.Pool})
	if err != nil {
		return nil, err
	}
	for _, wl := range workloads {
		if !cfg.applies(wl, sr.Users) {
			continue
		}
		var sqs *SQSEndpoint
		if wl.sqs {
			if sqs, err = StartSQSEndpoint(cfg.SQSRTT); err != nil {
				return nil, err
			}
			defer sqs.Close()
			wl.out = strings.ReplaceAll(wl.out, "{sqs}", sqs.URL)
			wl.name = strings.ReplaceAll(wl.name, "{rtt}", cfg.SQSRTT.String())
		}
		jobPath := filepath.Join(dir, wl.job+".json")
		text := wl.build(p.ID, ids)
		if err := os.WriteFile(jobPath, text, 0o644); err != nil {
			return nil, err
		}
		var (
			best Measurement
			// ceiling is the best of the SDK-alone runs, one after each
			// SQS workload run, so that both see the machine alike.
			ceiling float64
		)
		var paired, pairs, cpuPairs, sdkPairs []float64
		var partnerPath string
		if pw := wl.pairedWith; pw != nil {
			partnerPath = filepath.Join(dir, wl.job+"-pair.json")
			if err := os.WriteFile(partnerPath, pw.build(p.ID, ids), 0o644); err != nil {
				return nil, err
			}
		}
		for i := 0; i < cfg.Runs; i++ {
			var copySec float64
			if wl.job == JobPushAll {
				if copySec, err = timeCopy(ctx, cfg.floorPool(), plainSQL); err != nil {
					return nil, fmt.Errorf("%s: paired COPY: %w", wl.name, err)
				}
			}
			// A paired workload runs its partner before it on even runs
			// and after it on odd ones.
			var partner Measurement
			runPartner := func() error {
				var err error
				if partner, err = runChild(ctx, cfg, *wl.pairedWith, partnerPath, filepath.Join(dir, "out")); err != nil {
					return fmt.Errorf("%s (paired with %s): %w", wl.pairedWith.job, wl.name, err)
				}
				return nil
			}
			if wl.pairedWith != nil && i%2 == 0 {
				if err := runPartner(); err != nil {
					return nil, err
				}
			}
			m, err := runChild(ctx, cfg, wl, jobPath, filepath.Join(dir, "out"))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", wl.name, err)
			}
			if wl.pairedWith != nil {
				if i%2 == 1 {
					if err := runPartner(); err != nil {
						return nil, err
					}
				}
				pairs = append(pairs, m.Seconds/partner.Seconds)
				cpuPairs = append(cpuPairs, m.CPUSeconds/partner.CPUSeconds)
				log.Info("paired run", "project", p.ID, "job", wl.job, "run", i+1, "seconds", m.Seconds,
					"partner", wl.pairedWith.job, "partner_seconds", partner.Seconds, "ratio", m.Seconds/partner.Seconds,
					"cpu_seconds", m.CPUSeconds, "partner_cpu_seconds", partner.CPUSeconds, "cpu_ratio", m.CPUSeconds/partner.CPUSeconds)
			}
			log.Info("measured", "project", p.ID, "job", wl.job, "run", i+1, "seconds", m.Seconds, "messages", m.Messages, "peak_rss_mib", m.PeakRSSMB)
			if copySec > 0 {
				paired = append(paired, m.Seconds/copySec)
				log.Info("paired COPY", "project", p.ID, "run", i+1, "seconds", copySec, "ratio", m.Seconds/copySec)
			}
			if sqs != nil {
				// Every message accepted exactly once: no loss, no resend.
				c := sqs.Counts()
				if c.Entries != m.Messages || c.Distinct != m.Messages {
					return nil, fmt.Errorf("%s: the endpoint accepted %d entries with %d distinct keys for %d published", wl.name, c.Entries, c.Distinct, m.Messages)
				}
				if c.Entries > 0 {
					m.bodyBytes = int(c.Bytes / c.Entries)
					m.FirstMessageSeconds = c.First.Sub(m.started).Seconds()
				}
				if m.Messages > 0 {
					// The same number of messages of the same mean size,
					// from the SDK alone, with the same requests in flight.
					rate, err := SDKCeiling(ctx, sqs.URL, int(m.Messages), m.bodyBytes, sqssink.DefaultInFlight)
					if err != nil {
						return nil, err
					}
					sqs.Counts()
					own := float64(m.Messages) / m.Seconds
					sdkPairs = append(sdkPairs, own/rate)
					log.Info("SDK ceiling", "project", p.ID, "run", i+1, "messages_per_second", rate,
						"segpub_messages_per_second", own, "ratio", own/rate,
						"first_message_seconds", m.FirstMessageSeconds, "database_cpu_seconds", m.DatabaseCPUSeconds, "cpu_seconds", m.CPUSeconds)
					ceiling = max(ceiling, rate)
				}
			}
			if best.Seconds == 0 || m.Seconds < best.Seconds {
				best = m
			}
		}
		// Timed after the workload, so that it reads pages as warm as the
		// workload's last run left them.
		var queryBest float64
		if !wl.baseline {
			if queryBest, err = ownQuery(ctx, runner, cfg, text, wl.command == "size"); err != nil {
				return nil, fmt.Errorf("%s: %w", wl.name, err)
			}
		}
		if cfg.Step != nil {
			cfg.Step(wl.job + " " + p.ID)
		}
		best.Job, best.Name = wl.job, wl.name
		best.VsCopy = best.Seconds / copyBest
		best.VsCopyPaired = median(paired)
		best.VsPaired, best.VsPairedCPU = median(pairs), median(cpuPairs)
		if queryBest > 0 {
			best.QuerySeconds, best.VsQuery = queryBest, best.Seconds/queryBest
		}
		if wl.command != "size" {
			best.PerSecond = float64(best.Messages) / best.Seconds
		}
		if ceiling > 0 {
			best.SDKPerSecond, best.VsSDK, best.VsSDKPaired = ceiling, best.PerSecond/ceiling, median(sdkPairs)
		}
		sr.Results = append(sr.Results, best)
	}
	if cfg.SQSRTT > 0 && slices.Contains(cfg.Only, JobServeSQS) {
		m, err := runServeSQS(ctx, cfg, p.ID, dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", JobServeSQS, err)
		}
		if cfg.Step != nil {
			cfg.Step(JobServeSQS + " " + p.ID)
		}
		m.VsCopy = m.Seconds / copyBest
		sr.Results = append(sr.Results, m)
	}
	parts, err := runPartitioned(ctx, cfg, p.ID, sr.Users)
	if err != nil {
		return nil, err
	}
	sr.Results = append(sr.Results, parts...)
	return sr, nil
}

// pickIDs lists idListSize existing users spread over the id space, for
// the user_ids workloads.
func pickIDs(ctx context.Context, pool *pgxpool.Pool, t schema.Tables) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT external_user_id FROM `+t.User+` WHERE external_user_id IS NOT NULL
ORDER BY random_bucket_number, notifly_user_id LIMIT $1`, idListSize)
	if err != nil {
		return nil, fmt.Errorf("pick ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pick ids: %w", err)
	}
	return ids, nil
}

// literalQuery compiles the job's audience query with its parameters
// written as literals: COPY takes no bind parameters. The benchmark's own
// job is the only input, and its only parameter is the platform list.
func literalQuery(j *job.Job, t schema.Tables, plainInputs bool) (string, error) {
	q, err := audience.Compile(audience.Spec{Tables: t, Channel: j.Campaign.Channel, Audience: j.Campaign.Audience,
		CampaignID: j.Campaign.ID, Reference: j.ScheduledAt, WithProperties: true, PlainInputs: plainInputs})
	if err != nil {
		return "", err
	}
	sql := q.SQL
	for i := len(q.Args); i >= 1; i-- {
		arr, ok := q.Args[i-1].([]string)
		if !ok {
			return "", fmt.Errorf("benchmark query has a parameter of type %T", q.Args[i-1])
		}
		lits := make([]string, len(arr))
		for k, s := range arr {
			lits[k] = quoteLiteral(s)
		}
		sql = strings.ReplaceAll(sql, fmt.Sprintf("$%d", i), "ARRAY["+strings.Join(lits, ",")+"]")
	}
	return sql, nil
}

func timeCopy(ctx context.Context, pool *pgxpool.Pool, sql string) (float64, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	start := time.Now()
	if _, err := conn.Conn().PgConn().CopyTo(ctx, io.Discard, "COPY ("+sql+") TO STDOUT"); err != nil {
		return 0, fmt.Errorf("copy baseline: %w", err)
	}
	return time.Since(start).Seconds(), nil
}

// ownQuery times a job's audience query the best of cfg.Runs times; size
// runs it as `segpub size` does, without the user properties.
func ownQuery(ctx context.Context, runner *publish.Runner, cfg Config, text []byte, size bool) (float64, error) {
	j, err := job.Parse(text)
	if err != nil {
		return 0, err
	}
	if size {
		j.Action = job.ActionCalculateSize
	}
	q, _, err := runner.AudienceQuery(ctx, j)
	if err != nil || q == nil {
		return 0, err
	}
	return bestOf(cfg.Runs, func(int) (float64, error) {
		sec, _, err := timeQuery(ctx, cfg.Pool, q)
		return sec, err
	})
}

// bestOf runs a timing runs times (numbered from 1) and keeps the fastest.
func bestOf(runs int, timing func(run int) (float64, error)) (float64, error) {
	var best float64
	for run := 1; run <= runs; run++ {
		sec, err := timing(run)
		if err != nil {
			return 0, err
		}
		if best == 0 || sec < best {
			best = sec
		}
	}
	return best, nil
}

// timeQuery reads q to the end as a run does (jit off, an id list under
// its planner setting, read-only, the run's result formats), touching no
// row, and counts the rows.
func timeQuery(ctx context.Context, pool *pgxpool.Pool, q *audience.Query) (float64, int64, error) {
	start := time.Now()
	var n int64
	err := asRun(ctx, pool, q, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q.SQL, publish.QueryArgs(q)...)
		if err != nil {
			return fmt.Errorf("own query: %w", err)
		}
		for rows.Next() {
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("own query: %w", err)
		}
		return nil
	})
	return time.Since(start).Seconds(), n, err
}

// runChild runs `segpub <command> --job F` and reads its result, wall time
// and peak RSS.
func runChild(ctx context.Context, cfg Config, wl workload, jobPath, outDir string) (Measurement, error) {
	if err := os.RemoveAll(outDir); err != nil {
		return Measurement{}, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Measurement{}, err
	}
	defer os.RemoveAll(outDir)
	args := []string{wl.command, "--job", jobPath, "--database-url", cfg.DatabaseURL}
	switch wl.command {
	case "publish":
		args = append(args, "--out", strings.ReplaceAll(wl.out, "{dir}", outDir), "--data-dir", outDir)
		if cfg.ProfileDir != "" {
			// jobPath is OutDir/project/job.json.
			name := filepath.Base(filepath.Dir(jobPath)) + "-" + strings.TrimSuffix(filepath.Base(jobPath), ".json") + "-" + time.Now().UTC().Format("150405.000") + ".pprof"
			args = append(args, "--cpuprofile", filepath.Join(cfg.ProfileDir, name))
		}
	case "baseline":
		args = []string{"bench", "baseline", "--job", jobPath, "--database-url", cfg.DatabaseURL, "--out", filepath.Join(outDir, "out.ndjson")}
	}
	cmd := exec.CommandContext(ctx, cfg.Binary, args...)
	// The SQS workload's endpoint checks no signature, but the SDK signs.
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_REGION=us-east-1")
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	dbCPU := postgresCPU()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Measurement{}, fmt.Errorf("run %s: %w", wl.command, err)
	}
	hwm := watchPeakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	peak := hwm()
	dbCPU = postgresCPU() - dbCPU
	if err != nil {
		return Measurement{}, fmt.Errorf("run %s: %w (%s %s)", wl.command, err, stdout.String(), tail(stderr.String(), 500))
	}
	m := Measurement{Seconds: time.Since(start).Seconds(), PeakRSSMB: float64(peak) / 1024, started: start,
		CPUSeconds: (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(), DatabaseCPUSeconds: dbCPU}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && peak == 0 {
		// No /proc: getrusage's figure, which on Linux is at least the
		// benchmark's own peak (see watchPeakRSS).
		m.PeakRSSMB = float64(ru.Maxrss) / 1024 // KiB
	}
	var res struct {
		Published int64 `json:"published"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		return m, fmt.Errorf("read %s result %q: %w", wl.command, stdout.String(), err)
	}
	m.Messages = res.Published
	return m, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Steps is the number of measurements Run makes (for a progress bar): per
// project the COPY floor and each workload that applies to its size.
func Steps(cfg Config) int {
	n := 0
	for _, p := range cfg.Projects {
		n += 2 // the two COPY floors
		for _, wl := range workloads {
			if cfg.applies(wl, int64(p.Users)) {
				n++
			}
		}
		if cfg.SQSRTT > 0 && slices.Contains(cfg.Only, JobServeSQS) {
			n++
		}
		for _, wl := range partitionedWorkloads {
			if cfg.wants(wl.job) {
				n += partitionedRounds
			}
		}
	}
	return n
}

// OnlyWhenNamed reports whether a workload runs only when --only names it.
func OnlyWhenNamed(job string) bool { return job == JobServeSQS }

// Workloads lists the workload names, for --only. Of these, serve-sqs
// (JobServeSQS) runs only when --only names it: its pairs take several
// minutes a project.
func Workloads() []string {
	names := []string{}
	for _, w := range workloads {
		names = append(names, w.job)
	}
	names = append(names, JobServeSQS)
	for _, w := range partitionedWorkloads {
		names = append(names, w.job)
	}
	return names
}

// watchPeakRSS follows a child's peak resident memory (VmHWM, KiB) until
// the returned function is called, which stops and returns it. getrusage
// cannot be used for a child of this process: Go starts children with
// vfork semantics (CLONE_VM), and Linux counts the memory the child shared
// until exec, this whole process's, into the child's ru_maxrss, so every
// workload would report at least the benchmark's own peak. VmHWM belongs to
// the child's own address space after exec. It only grows, so polling
// misses at most the growth of the last interval.
func watchPeakRSS(pid int) func() int64 {
	path := fmt.Sprintf("/proc/%d/status", pid)
	var peak atomic.Int64
	read := func() {
		data, err := os.ReadFile(path)
		if err != nil {
			return
		}
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err == nil && kb > peak.Load() {
					peak.Store(kb)
				}
			}
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

// median is the middle of xs (the mean of the two middle ones for an even
// count; 0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Sorted(slices.Values(xs))
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

package cost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segpub/segpub/docs"
)

func TestCompute(t *testing.T) {
	t.Parallel()
	p := Prices{FargateVCPUHour: 0.05, FargateGBHour: 0.005, SpotDiscount: 0.5, SQSPerMillionReqs: 0.4}
	r, err := Compute(Workload{MessagesPerDay: 36_000_000, CampaignSize: 1_200_000}, Measured{MessagesPerSecond: 100_000, Source: "test"}, p)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Line{}
	for _, l := range r.Lines {
		byName[l.Deployment] = l
	}
	// The seed's task: (2 × 0.05 + 10 × 0.005) × 730 = 109.50, beside the
	// report's $296.
	seed := byName["the seed's task at these prices"]
	if seed.ComputePerMonth != 109.5 || !strings.Contains(seed.Note, "$296") {
		t.Fatalf("seed line %+v", seed)
	}
	// 36M a day at 100k/s: 0.1 busy hours a day; one campaign 0.2 minutes.
	if r.BusyHoursPerDay != 0.1 || r.CampaignMinutes != 0.2 {
		t.Fatalf("busy %v, campaign %v", r.BusyHoursPerDay, r.CampaignMinutes)
	}
	// SQS: 36M × 30.4 / 10 requests at $0.40 a million = $43.78.
	on := byName["segpub on Fargate, always on"]
	if on.QueuePerMonth != 43.78 || on.ComputePerMonth != 87.6 {
		t.Fatalf("always-on line %+v", on)
	}
	if spot := byName["segpub on Fargate Spot, always on"]; spot.ComputePerMonth != 43.8 {
		t.Fatalf("spot line %+v", spot)
	}
	if g := byName["Glue ETL, optimized (report)"]; !g.FromReport || g.ComputePerMonth != 396 {
		t.Fatalf("glue line %+v", g)
	}
	if !strings.Contains(r.Table(), "| the seed's task at these prices | 2 vCPU, 10 GB | 109.50 |") {
		t.Fatalf("table:\n%s", r.Table())
	}
	if _, err := Compute(Workload{}, Measured{MessagesPerSecond: 1}, p); err == nil {
		t.Fatal("zero workload accepted")
	}
}

func TestFromBench(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bench.json")
	_ = os.WriteFile(path, []byte(`{"results":[{"name":"COPY","seconds":5},{"name":"segpub publish push","messages_per_second":150000,"peak_rss_mib":70}]}`), 0o644)
	m, err := FromBench(path)
	if err != nil || m.MessagesPerSecond != 150000 || m.PeakRSSMiB != 70 {
		t.Fatalf("%+v %v", m, err)
	}
	// A report with sizes: the largest size's push-all publish.
	_ = os.WriteFile(path, []byte(`{"sizes":[{"results":[{"job":"push-all","messages_per_second":1,"peak_rss_mib":1}]},
{"results":[{"job":"copy","seconds":5},{"job":"push-all-jetstream","messages_per_second":9},{"job":"push-all","messages_per_second":160000,"peak_rss_mib":80}]}]}`), 0o644)
	if m, err := FromBench(path); err != nil || m.MessagesPerSecond != 160000 || m.PeakRSSMiB != 80 {
		t.Fatalf("sizes: %+v %v", m, err)
	}
	// With an SQS measurement, that one: the output production uses.
	_ = os.WriteFile(path, []byte(`{"sizes":[{"results":[{"job":"push-all","messages_per_second":160000,"peak_rss_mib":80},
{"job":"push-all-sqs","messages_per_second":35000,"peak_rss_mib":90}]}]}`), 0o644)
	if m, err := FromBench(path); err != nil || m.MessagesPerSecond != 35000 || m.PeakRSSMiB != 90 || m.Workload != "push-all-sqs" {
		t.Fatalf("sqs: %+v %v", m, err)
	}
}

// segpub cost's default is the committed benchmark's results, with the
// date and machine they were taken on, never a constant.
func TestFromReportBuiltIn(t *testing.T) {
	t.Parallel()
	m, err := FromReport(docs.BenchmarkResults, docs.BenchmarkResultsPath)
	if err != nil {
		t.Fatal(err)
	}
	if m.MessagesPerSecond <= 0 || m.PeakRSSMiB <= 0 || m.Taken.IsZero() || m.Machine == "" || m.Workload != "push-all-sqs" || m.Project == "" {
		t.Fatalf("%+v", m)
	}
	d := m.Describe()
	for _, want := range []string{docs.BenchmarkResultsPath, m.Taken.UTC().Format("2006-01-02"), m.Machine, "push-all-sqs on " + m.Project} {
		if !strings.Contains(d, want) {
			t.Errorf("%q lacks %q", d, want)
		}
	}
	if _, err := FromReport([]byte(`{"sizes":[{"results":[{"job":"copy","seconds":5}]}]}`), "x.json"); err == nil || !strings.Contains(err.Error(), "x.json have no publish measurement") {
		t.Fatalf("no publish step: %v", err)
	}
}

// Package cost turns segpub's measured throughput into a monthly bill for a
// workload, beside the Glue and EMR deployments it was compared with. Every
// price is an input with a documented default; the monthly figures for Glue
// and EMR are quoted, not recomputed.
package cost

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// Prices are the unit prices used. Defaults: AWS list prices for Linux/x86
// Fargate and standard SQS in ap-northeast-2 (Seoul), as published in 2026;
// the Spot discount is a typical one (the report says 50-70%).
type Prices struct {
	FargateVCPUHour   float64 `json:"fargate_vcpu_hour"`
	FargateGBHour     float64 `json:"fargate_gb_hour"`
	SpotDiscount      float64 `json:"spot_discount"`
	SQSPerMillionReqs float64 `json:"sqs_per_million_requests"`
	GlueDPUHour       float64 `json:"glue_dpu_hour"`
}

// DefaultPrices are the defaults described on Prices.
var DefaultPrices = Prices{FargateVCPUHour: 0.04656, FargateGBHour: 0.00511, SpotDiscount: 0.6, SQSPerMillionReqs: 0.40, GlueDPUHour: 0.44}

// Workload is what is to be sent.
type Workload struct {
	MessagesPerDay float64 `json:"messages_per_day"`
	// CampaignSize is the messages of one large campaign.
	CampaignSize float64 `json:"campaign_size"`
}

// Measured is segpub's measured throughput and memory (segpub bench).
type Measured struct {
	MessagesPerSecond float64 `json:"messages_per_second"`
	PeakRSSMiB        float64 `json:"peak_rss_mib"`
	Source            string  `json:"source"`
	// Workload and Project are the measurement's bench workload and
	// project (push-all-sqs on bench10m); Taken and Machine when and on
	// what it ran. Empty for a figure given by hand.
	Workload string    `json:"workload,omitempty"`
	Project  string    `json:"project,omitempty"`
	Taken    time.Time `json:"taken,omitempty"`
	Machine  string    `json:"machine,omitempty"`
}

// Describe says which figure is used and where it comes from.
func (m Measured) Describe() string {
	s := fmt.Sprintf("%.0f messages/s", m.MessagesPerSecond)
	if m.PeakRSSMiB > 0 {
		s += fmt.Sprintf(", peak RSS %.0f MiB", m.PeakRSSMiB)
	}
	if m.Workload != "" {
		s += fmt.Sprintf(": %s on %s", m.Workload, m.Project)
	}
	s += ", from " + m.Source
	if !m.Taken.IsZero() {
		s += ", taken " + m.Taken.UTC().Format("2006-01-02 15:04 UTC")
	}
	if m.Machine != "" {
		s += " on " + m.Machine
	}
	return s
}

// Line is one deployment's monthly cost.
type Line struct {
	Deployment      string  `json:"deployment"`
	Task            string  `json:"task"`
	ComputePerMonth float64 `json:"compute_per_month"`
	QueuePerMonth   float64 `json:"queue_requests_per_month"`
	TotalPerMonth   float64 `json:"total_per_month"`
	PerMillion      float64 `json:"per_million_messages"`
	Note            string  `json:"note,omitempty"`
	FromReport      bool    `json:"from_report,omitempty"`
}

// Report is the whole cost report.
type Report struct {
	Workload    Workload `json:"workload"`
	Measured    Measured `json:"measured"`
	Prices      Prices   `json:"prices"`
	Assumptions []string `json:"assumptions"`
	// CampaignMinutes is how long one large campaign takes on one task.
	CampaignMinutes float64 `json:"campaign_minutes"`
	BusyHoursPerDay float64 `json:"busy_hours_per_day"`
	Lines           []Line  `json:"lines"`
}

const hoursPerMonth = 730

// Compute builds the report.
func Compute(w Workload, m Measured, p Prices) (*Report, error) {
	if w.MessagesPerDay <= 0 {
		return nil, fmt.Errorf("messages per day must be positive, got %v", w.MessagesPerDay)
	}
	if m.MessagesPerSecond <= 0 {
		return nil, fmt.Errorf("messages per second must be positive, got %v", m.MessagesPerSecond)
	}
	r := &Report{Workload: w, Measured: m, Prices: p}
	perMonth := w.MessagesPerDay * 30.4
	// Channel messages go out in SendMessageBatch requests of 10; jobs
	// and their deletes are a rounding error next to them.
	queue := perMonth / 10 / 1e6 * p.SQSPerMillionReqs
	r.BusyHoursPerDay = w.MessagesPerDay / m.MessagesPerSecond / 3600
	if w.CampaignSize > 0 {
		r.CampaignMinutes = w.CampaignSize / m.MessagesPerSecond / 60
	}
	// segpub's task: 2 vCPU (throughput was measured on 2 cores) and the
	// smallest Fargate memory for 2 vCPU (4 GB), far above the measured
	// peak RSS.
	vcpu, gb := 2.0, 4.0
	hourly := vcpu*p.FargateVCPUHour + gb*p.FargateGBHour
	busy := math.Max(r.BusyHoursPerDay, 0.1) * 30.4 // at least a few minutes a day
	add := func(name, task string, compute float64, note string) {
		total := compute + queue
		r.Lines = append(r.Lines, Line{Deployment: name, Task: task, ComputePerMonth: round(compute), QueuePerMonth: round(queue),
			TotalPerMonth: round(total), PerMillion: round4(total / (perMonth / 1e6)), Note: note})
	}
	add("segpub on Fargate, always on", "2 vCPU, 4 GB", hourly*hoursPerMonth, "one task, 24/7")
	add("segpub on Fargate Spot, always on", "2 vCPU, 4 GB", hourly*hoursPerMonth*(1-p.SpotDiscount), "one task, 24/7")
	add("segpub on Fargate, only while sending", "2 vCPU, 4 GB", hourly*busy, fmt.Sprintf("%.2f busy hours a day", r.BusyHoursPerDay))
	seedTask := 2*p.FargateVCPUHour + 10*p.FargateGBHour
	add("the seed's task at these prices", "2 vCPU, 10 GB", seedTask*hoursPerMonth, "the report puts it at $296 a month")
	for _, q := range []struct {
		name string
		cost float64
	}{{"Glue ETL, optimized (report)", 396}, {"EMR transient (report)", 520}, {"EMR persistent (report)", 1322}} {
		r.Lines = append(r.Lines, Line{Deployment: q.name, Task: "as in the report", ComputePerMonth: q.cost, QueuePerMonth: round(queue),
			TotalPerMonth: round(q.cost + queue), PerMillion: round4((q.cost + queue) / (perMonth / 1e6)), FromReport: true, Note: "the report's monthly figure"})
	}
	r.Assumptions = []string{
		"throughput " + m.Describe(),
		"a segpub task of 2 vCPU and 4 GB (throughput was measured on 2 cores; 4 GB is Fargate's smallest memory for 2 vCPU)",
		"30.4 days a month, 730 hours a month",
		"channel messages sent in SQS batches of 10: one request per 10 messages",
		"Glue and EMR compute are the monthly figures quoted for those deployments, not recomputed",
	}
	return r, nil
}

func round(v float64) float64 { return math.Round(v*100) / 100 }

// FromBench reads the publish step of a `segpub bench --json` (or
// --results) report file.
func FromBench(path string) (Measured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Measured{}, fmt.Errorf("read bench results: %w", err)
	}
	return FromReport(data, path)
}

// FromReport reads the publish step of a `segpub bench` report; source
// names it in messages and in the Measured.
func FromReport(data []byte, source string) (Measured, error) {
	type result struct {
		Job       string  `json:"job"`
		Name      string  `json:"name"`
		PerSecond float64 `json:"messages_per_second"`
		PeakRSS   float64 `json:"peak_rss_mib"`
	}
	var rep struct {
		Taken   time.Time `json:"taken"`
		CPUs    int       `json:"cpus"`
		Machine struct {
			CPU       string  `json:"cpu"`
			CPUs      int     `json:"cpus"`
			MemoryGiB float64 `json:"memory_gib"`
		} `json:"machine"`
		Results []result `json:"results"` // a report from before sizes
		Sizes   []struct {
			ProjectID string   `json:"project_id"`
			Results   []result `json:"results"`
		} `json:"sizes"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return Measured{}, fmt.Errorf("read bench results %s: %w", source, err)
	}
	var machine []string
	if rep.Machine.CPU != "" {
		machine = append(machine, rep.Machine.CPU)
	}
	if n := cmp.Or(rep.Machine.CPUs, rep.CPUs); n > 0 {
		machine = append(machine, fmt.Sprintf("%d CPUs", n))
	}
	if rep.Machine.MemoryGiB > 0 {
		machine = append(machine, fmt.Sprintf("%.0f GiB", rep.Machine.MemoryGiB))
	}
	m := Measured{Source: source, Taken: rep.Taken, Machine: strings.Join(machine, ", ")}
	// The largest size measured is the most telling; its project-wide push
	// publish to SQS (the output production uses, over a network round
	// trip) is the reference workload; to file:// only when a report has no
	// SQS measurement, as that output costs less than any network queue.
	results := rep.Results
	if n := len(rep.Sizes); n > 0 {
		results, m.Project = rep.Sizes[n-1].Results, rep.Sizes[n-1].ProjectID
	}
	for _, job := range []string{"push-all-sqs", "push-all"} {
		for _, r := range results {
			if r.Job == job && r.PerSecond > 0 {
				m.MessagesPerSecond, m.PeakRSSMiB, m.Workload = r.PerSecond, r.PeakRSS, job
				return m, nil
			}
		}
	}
	for _, r := range results {
		if r.Job == "" && strings.Contains(r.Name, "publish") && r.PerSecond > 0 {
			m.MessagesPerSecond, m.PeakRSSMiB = r.PerSecond, r.PeakRSS
			return m, nil
		}
	}
	return Measured{}, fmt.Errorf("bench results %s have no publish measurement", source)
}

// Table renders the report for people.
func (r *Report) Table() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "measured: %s\n", r.Measured.Describe())
	fmt.Fprintf(&sb, "workload: %.0f messages a day", r.Workload.MessagesPerDay)
	if r.CampaignMinutes > 0 {
		fmt.Fprintf(&sb, "; a campaign of %.0f messages takes %.1f minutes on one task", r.Workload.CampaignSize, r.CampaignMinutes)
	}
	fmt.Fprintf(&sb, "\nprices: Fargate $%.5f per vCPU-hour, $%.5f per GB-hour, Spot %.0f%% off; SQS $%.2f per million requests\n\n",
		r.Prices.FargateVCPUHour, r.Prices.FargateGBHour, r.Prices.SpotDiscount*100, r.Prices.SQSPerMillionReqs)
	fmt.Fprintf(&sb, "| deployment | task | compute $/month | SQS $/month | total $/month | $ per million messages | note |\n|---|---|---:|---:|---:|---:|---|\n")
	for _, l := range r.Lines {
		fmt.Fprintf(&sb, "| %s | %s | %.2f | %.2f | %.2f | %.4f | %s |\n", l.Deployment, l.Task, l.ComputePerMonth, l.QueuePerMonth, l.TotalPerMonth, l.PerMillion, l.Note)
	}
	sb.WriteString("\nassumptions:\n")
	for _, a := range r.Assumptions {
		fmt.Fprintf(&sb, "- %s\n", a)
	}
	return sb.String()
}

func round4(v float64) float64 { return math.Round(v*10000) / 10000 }

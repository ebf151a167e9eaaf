package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// setupProject seeds a project of its own for the test, dropped after it.
func setupProject(t *testing.T, users int) (*pgxpool.Pool, string, *publish.Runner) {
	t.Helper()
	pool := dbtest.Pool(t)
	project := dbtest.NewProjectID()
	t.Cleanup(func() {
		tables, _ := schema.For(project)
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: project, Users: users}); err != nil {
		t.Fatal(err)
	}
	runner, err := publish.New(publish.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	return pool, project, runner
}

// extIDs lists every step-th seeded external id below n.
func extIDs(n, step int) []string {
	var ids []string
	for i := 0; i < n; i += step {
		ids = append(ids, "ext-"+strconv.Itoa(i))
	}
	return ids
}

type countSink struct {
	publish.Plain
	n int64
}

func (c *countSink) Publish(_ context.Context, b *publish.Batch) error {
	c.n += int64(len(b.Messages))
	return nil
}

// The seed pattern is a fair comparison: on the same data it publishes as
// many push messages as segpub does, for the whole project and for an id
// list (including ids that do not exist and ids listed twice).
func TestBaselinePublishesWhatSegpubPublishes(t *testing.T) {
	t.Parallel()
	// More users than one page, so paging and chunking are exercised.
	pool, project, runner := setupProject(t, 12_000)
	ids := append(extIDs(12_000, 2), "ext-4", "no-such-user")
	for name, text := range map[string][]byte{"all": PushAllJob(project), "user_ids": userIDsJob(project, ids)} {
		j, err := job.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		got, err := Baseline(context.Background(), pool, j, &out)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sink := &countSink{}
		res, err := runner.Run(context.Background(), j, sink)
		if err != nil {
			t.Fatal(err)
		}
		if got != res.Published || got == 0 {
			t.Fatalf("%s: seed pattern published %d, segpub %d", name, got, res.Published)
		}
		if lines := bytes.Count(out.Bytes(), []byte("\n")); int64(lines) != got {
			t.Fatalf("%s: %d lines for %d messages", name, lines, got)
		}
		var first map[string]any
		if err := json.Unmarshal(out.Bytes()[:bytes.IndexByte(out.Bytes(), '\n')], &first); err != nil || first["device_token"] == "" {
			t.Fatalf("%s: first message %v (%v)", name, first, err)
		}
	}
	// Other channels and audiences are refused, not approximated.
	j, _ := job.Parse(abEmailJob(project, nil))
	if _, err := Baseline(context.Background(), pool, j, io.Discard); err == nil || !strings.Contains(err.Error(), "only push_notification") {
		t.Fatalf("email: %v", err)
	}
}

// A workload's own-query floor reads exactly the rows its run streams: for
// push, one per candidate (a user without a push device is one row) but
// the listed ids that match no user.
func TestOwnQueryReadsTheRunsRows(t *testing.T) {
	t.Parallel()
	pool, project, runner := setupProject(t, 3000)
	ids := extIDs(3000, 3)
	for name, text := range map[string][]byte{"all": PushAllJob(project), "user_ids": userIDsJob(project, ids)} {
		j, err := job.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		q, _, err := runner.AudienceQuery(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		_, rows, err := timeQuery(context.Background(), pool, q)
		if err != nil {
			t.Fatal(err)
		}
		res, err := runner.Run(context.Background(), j, &countSink{})
		if err != nil {
			t.Fatal(err)
		}
		if rows != res.Candidates-res.Skipped.UnknownUser || rows == 0 {
			t.Errorf("%s: own query read %d rows; the run had %d candidates (%d unknown)", name, rows, res.Candidates, res.Skipped.UnknownUser)
		}
	}
}

func TestPlots(t *testing.T) {
	t.Parallel()
	rep := &Report{Sizes: []SizeReport{
		{Users: 1_000_000, Results: []Measurement{{Job: JobCopy, Seconds: 5}, {Job: JobPushAll, Name: "push <all>", PerSecond: 170_000, PeakRSSMB: 60}, {Job: JobSize, PeakRSSMB: 50}}},
		{Users: 3_000_000, Results: []Measurement{{Job: JobCopy, Seconds: 15}, {Job: JobPushAll, Name: "push <all>", PerSecond: 160_000, PeakRSSMB: 70}, {Job: JobSize, PeakRSSMB: 52}}},
	}}
	tp, mem := rep.Plots()
	for name, c := range map[string]struct {
		svg   []byte
		lines int
	}{"throughput": {tp, 1}, "memory": {mem, 2}} {
		var doc struct {
			Polylines []struct {
				Points string `xml:"points,attr"`
			} `xml:"polyline"`
		}
		if err := xml.Unmarshal(c.svg, &doc); err != nil {
			t.Fatalf("%s: not XML: %v", name, err)
		}
		if len(doc.Polylines) != c.lines {
			t.Fatalf("%s: %d lines, want %d", name, len(doc.Polylines), c.lines)
		}
		if n := len(strings.Fields(doc.Polylines[0].Points)); n != 2 {
			t.Fatalf("%s: %d points, want one per size", name, n)
		}
	}
	if !strings.Contains(string(tp), "push &lt;all&gt;") {
		t.Fatal("legend not escaped")
	}
}

func TestNiceCeil(t *testing.T) {
	t.Parallel()
	for in, want := range map[float64]float64{0: 1, 0.7: 1, 3: 5, 170: 200, 1000: 1000, 1001: 2000, 60: 100} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}

// The index study measures every query under the four index sets, sees
// no secondary index on the keys-only tables, and leaves segpub's indexes
// (and only those) in place.
func TestIndexStudy(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	project := dbtest.NewProjectID()
	tables, _ := schema.For(project)
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: project, Users: 3000}); err != nil {
		t.Fatal(err)
	}
	res, err := IndexStudy(context.Background(), pool, project, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sets := map[IndexSet]int{}
	for _, r := range res {
		sets[r.Set]++
		if r.Milliseconds <= 0 {
			t.Errorf("%s (%s): no execution time", r.Query, r.Set)
		}
		if r.Set == KeysOnly && len(r.Indexes) > 0 {
			t.Errorf("%s: keys-only tables used %v", r.Query, r.Indexes)
		}
	}
	if len(sets) != 4 || sets[KeysOnly] != 7 || sets[ReportSet] != 7 || sets[OrderedSet] != 7 || sets[SegpubSet] != 7 {
		t.Fatalf("results per set: %v", sets)
	}
	var left []string
	rows, err := pool.Query(context.Background(), `SELECT indexname FROM pg_indexes WHERE indexname LIKE $1 ORDER BY 1`, "%_"+project)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		left = append(left, strings.TrimSuffix(n, "_"+project))
	}
	if strings.Join(left, ",") != "sp_drch,sp_drcu,sp_dut,sp_evc" {
		t.Fatalf("indexes left: %v", left)
	}
	if md := IndexMarkdown(res); strings.Count(md, "\n") != 9 {
		t.Fatalf("markdown has %d lines:\n%s", strings.Count(md, "\n"), md)
	}
}

// Steps counts what Run measures: two COPY floors per project, the seed
// pattern only on small projects, the SQS workload only with a round trip
// set, and only the workloads asked for.
func TestSteps(t *testing.T) {
	t.Parallel()
	all := len(workloads)
	cfg := Config{Projects: []Project{{ID: "a", Users: 1_000_000}, {ID: "b", Users: 3_000_000}}, BaselineMaxUsers: 1_000_000}
	parted := len(partitionedWorkloads) * partitionedRounds
	// Without --sqs-rtt the two SQS workloads are left out; the seed
	// pattern's two run on 1M only.
	if got, want := Steps(cfg), (2+all-2+parted)+(2+all-4+parted); got != want {
		t.Fatalf("Steps = %d, want %d", got, want)
	}
	cfg.SQSRTT = 20 * time.Millisecond
	if got, want := Steps(cfg), (2+all+parted)+(2+all-2+parted); got != want {
		t.Fatalf("Steps with the SQS workload = %d, want %d", got, want)
	}
	cfg.Only = []string{JobPushAll, JobSeedPushAll}
	if got := Steps(cfg); got != (2+2)+(2+1) {
		t.Fatalf("Steps with --only = %d", got)
	}
}

// The plain floor is the audience join without segpub's ORDER BY, reading
// the columns as stored.
func TestPlainJoin(t *testing.T) {
	t.Parallel()
	plain, ok := plainJoin("SELECT u.a COLLATE \"C\", u.user_properties::text, d.b COLLATE \"C\" FROM t\n" +
		"LEFT JOIN d ON d.x COLLATE \"C\" = t.x COLLATE \"C\"\nORDER BY a COLLATE \"C\", b")
	want := "SELECT u.a, u.user_properties, d.b FROM t\nLEFT JOIN d ON d.x COLLATE \"C\" = t.x COLLATE \"C\""
	if !ok || plain != want {
		t.Fatalf("got %q, %v; want %q", plain, ok, want)
	}
	if _, ok := plainJoin("SELECT a FROM (SELECT a FROM t\nORDER BY a) s"); ok {
		t.Fatal("cut an ORDER BY inside a subquery")
	}
}

// The partitioned workloads run each split twice and time every range's
// look-up; the second round's ranges find the first round's rows.
func TestPartitionedWorkload(t *testing.T) {
	t.Parallel()
	pool, project, _ := setupProject(t, 20_000)
	cfg := Config{Pool: pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Only: []string{JobPartitioned4, JobPartitioned8}}
	ms, err := runPartitioned(context.Background(), cfg, project, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2*partitionedRounds {
		t.Fatalf("%d measurements, want %d", len(ms), 2*partitionedRounds)
	}
	for i, m := range ms {
		wantParts := 4
		if i >= partitionedRounds {
			wantParts = 8
		}
		if m.Seconds <= 0 || !strings.Contains(m.Name, fmt.Sprintf("%d parts", wantParts)) || !strings.Contains(m.Name, fmt.Sprintf("%d ranges", wantParts)) {
			t.Errorf("measurement %d: %+v", i, m)
		}
	}
	var runs int
	if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT request_id) FROM segpub_partition_destinations WHERE request_id LIKE $1`,
		"bench-"+project+"-%").Scan(&runs); err != nil || runs != 2*partitionedRounds {
		t.Fatalf("%d runs recorded, want %d (%v)", runs, 2*partitionedRounds, err)
	}
}

// A child's peak memory is its own, not this process's: a child that
// touches little memory reports little, however much this process holds.
func TestChildPeakRSSIsItsOwn(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	hold := make([]byte, 300<<20)
	for i := range hold {
		hold[i] = 1 // resident
	}
	cmd := exec.Command("sleep", "0.3")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	hwm := watchPeakRSS(cmd.Process.Pid)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	peak := hwm()
	t.Logf("getrusage maxrss of the child: %d KiB; VmHWM %d KiB", cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, peak)
	if peak == 0 || peak > 100<<10 {
		t.Fatalf("peak of sleep: %d KiB (this process holds %d MiB)", peak, len(hold)>>20)
	}
	runtime.KeepAlive(hold)
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := slices.Clone(tc.xs)
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		if !slices.Equal(in, tc.xs) {
			t.Errorf("median reordered its input: %v", tc.xs)
		}
	}
}

// The serve workload runs only when named, with the SQS endpoint: two COPY
// floors and the serve-against-publish pairs per project.
func TestStepsServeSQS(t *testing.T) {
	t.Parallel()
	cfg := Config{Projects: []Project{{ID: "a", Users: 1_000_000}}, Only: []string{JobServeSQS}}
	if got := Steps(cfg); got != 2 {
		t.Fatalf("Steps without an SQS round trip = %d, want 2", got)
	}
	cfg.SQSRTT = 20 * time.Millisecond
	if got := Steps(cfg); got != 3 {
		t.Fatalf("Steps = %d, want 3", got)
	}
	if !slices.Contains(Workloads(), JobServeSQS) {
		t.Fatalf("--only does not know %s", JobServeSQS)
	}
}

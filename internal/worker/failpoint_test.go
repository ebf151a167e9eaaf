package worker

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/failpoint"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/reliability"
	"github.com/segpub/segpub/internal/sink/jssink"
)

// A run that fails at any point of the publishing path resumes to exactly
// the messages of an uninterrupted `segpub publish`: none lost, none twice
// in the channel stream. Each case arms one failpoint to fail once in the
// middle of the run (after skip hits), then checks that it did fail and
// that the completed run's stream is exact.
func TestFailpointsResume(t *testing.T) {
	t.Parallel()
	type tc struct {
		point       string
		skip        int
		partitioned bool
	}
	var cases []tc
	for _, p := range []string{failpoint.AfterFetch, failpoint.AfterEncode, failpoint.BeforeAck, failpoint.AfterAck} {
		cases = append(cases, tc{p, 1, false}, tc{p, 3, true})
	}
	cases = append(cases,
		tc{failpoint.BeforeCommit, 0, false},
		tc{failpoint.BeforeCommit, 3, true},
		tc{failpoint.Planning, 0, true},
		tc{failpoint.PlanSent, 0, true},
		tc{failpoint.HandOff, 0, true},
	)
	for _, c := range cases {
		name := c.point
		if c.partitioned {
			name += "/partitioned"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			users, partitionRows := faultScale()
			b := setup(t, users)
			fp := &failpoint.Set{}
			fp.Arm(c.point, c.skip, 1)
			runner, err := publish.New(publish.Config{Pool: dbtest.Pool(t), Failpoints: fp})
			if err != nil {
				t.Fatal(err)
			}
			sink, err := jssink.New(context.Background(), jssink.Config{Conn: b.conn, Stream: b.stream,
				Subject: strings.Replace(b.sink.SubjectFor("X"), "X", "{channel}", 1), Failpoints: fp})
			if err != nil {
				t.Fatal(err)
			}
			rows := 0
			if c.partitioned {
				rows = partitionRows
			}
			b.worker(Config{Owner: "w0", Runner: runner, Sink: sink, Failpoints: fp, Partitions: b.partitions(rows, runner, nil, fp)})
			b.worker(Config{Owner: "w1", Runner: runner, Sink: sink, Failpoints: fp, Partitions: b.partitions(rows, runner, nil, fp)})
			text := []byte(strings.Replace(string(b.jobText("r-fp")), `"message":{"title":"hi"}`,
				`"message":{"title":"hi"},"experiment_id":"exp_ab","throttle":{"max_per_interval":250,"interval_minutes":10}`, 1))
			start := time.Now()
			if err := b.jobs.Send(context.Background(), text, ""); err != nil {
				t.Fatal(err)
			}
			b.waitStatus("r-fp", ledger.Completed)
			wall := time.Since(start)
			if fp.Fired(c.point) != 1 {
				t.Fatalf("%s fired %d times (reached %d): the case tests nothing", c.point, fp.Fired(c.point), fp.Passed(c.point))
			}
			reliability.Check(t, reliability.Classify(b.fileOutput(text), b.channelMessages()), wall,
				reliability.Field{Name: "failures", Value: strconv.Itoa(fp.Fired(c.point))})
			if c.partitioned {
				var parts int
				if err := dbtest.Pool(t).QueryRow(context.Background(), `SELECT count(*) FROM segpub_runs WHERE parent = $1`, b.id("r-fp")).Scan(&parts); err != nil || parts < 4 {
					t.Fatalf("%d partition runs (%v)", parts, err)
				}
			}
		})
	}
}

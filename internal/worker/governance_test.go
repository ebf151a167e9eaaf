package worker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
)

// A partitioned run with the governance rules (docs/governance.md)
// publishes the messages of one run, and its summed result carries the
// same no_consent, frequency_capped and deferred counts.
func TestPartitionedRunGovernance(t *testing.T) {
	t.Parallel()
	b := setup(t, 3000)
	for _, owner := range []string{"w0", "w1"} {
		b.worker(Config{Owner: owner, Partitions: b.partitions(400, nil, nil, nil)})
	}
	text := []byte(strings.NewReplacer(
		`"message":{"title":"hi"}`, `"message":{"title":"hi"},"throttle":{"max_per_interval":50,"interval_minutes":5},
"advertising":{"consent":"vip","night_consent":"night"},"frequency_cap":{"max_messages":1,"within_days":7}`,
		`2026-11-24T18:00:00+09:00`, `2026-11-24T20:55:00+09:00`,
	).Replace(string(b.jobText("r-gov"))))
	if err := b.jobs.Send(context.Background(), text, ""); err != nil {
		t.Fatal(err)
	}
	run := b.waitStatus("r-gov", ledger.Completed)
	want := b.fileOutput(text)
	got := b.channelMessages()
	sortBytes(got)
	sortBytes(want)
	sameMessages(t, got, want)
	var res publish.Result
	if err := json.Unmarshal(run.Result, &res); err != nil {
		t.Fatal(err)
	}
	j, _ := job.Parse(text)
	single, err := b.runner.Run(context.Background(), j, &countSink{Sink: discard{}})
	if err != nil {
		t.Fatal(err)
	}
	if single.Skipped.NoConsent == 0 || single.Skipped.FrequencyCapped == 0 || single.Deferred == 0 {
		t.Fatalf("the seeded data does not exercise the rules: %+v", single)
	}
	if res.Candidates != single.Candidates || res.Published != single.Published || res.Skipped != single.Skipped || res.Deferred != single.Deferred {
		t.Fatalf("partitioned result %+v, single run %+v", res, single)
	}
}

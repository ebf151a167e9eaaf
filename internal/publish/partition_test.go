package publish

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
)

// A run split into key ranges, scanned then published range by range with
// the destinations earlier ranges took and their message offsets, publishes
// exactly the messages of one unpartitioned run: same bodies (so the same
// throttle waves and variants), and the counts add up.
func TestPartitionsMatchSingleRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(`INSERT INTO ` + b.tables.Variants + ` VALUES ('va', 'x', 'c', 'A', 1), ('vb', 'x', 'c', 'B', 1), ('vc', 'x', 'c', 'control', 1)`)
	for i := 0; i < 120; i++ {
		// Ids across the byte range; shared addresses across ranges.
		id := fmt.Sprintf("%c%03d", "0Aa~"[i%4], i)
		email := fmt.Sprintf("user%d@x.com", i%45)
		if i%11 == 0 {
			email = ""
		}
		b.user(id, fmt.Sprintf("e%d", i), email, nil, "", (i*97)%10000)
	}
	text := b.jobJSON(`"channel":"email","experiment_id":"x","audience":{"type":"user_ids","user_ids":` + idsJSON(130) + `},"throttle":{"max_per_interval":7,"interval_minutes":3}`)
	partitionsMatch(t, b, text, []string{"", "0100", "A050", "a", "~060", ""})
}

// partitionsMatch runs text whole and in the ranges between bounds, and
// compares their messages and counts.
func partitionsMatch(t *testing.T, b *testBundle, text string, bounds []string) {
	t.Helper()
	j, err := job.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	full, fullSink := b.run(text)
	var scanned [][]uint64
	for i := 0; i+1 < len(bounds); i++ {
		res, err := b.runner.RunWith(context.Background(), j, &Range{From: bounds[i], Before: bounds[i+1], Collect: true}, nil, Checkpoint{}, Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		scanned = append(scanned, res.Destinations)
	}
	var got []string
	sum := Skipped{}
	var published, candidates int64
	earlier := map[uint64]bool{}
	for i := 0; i+1 < len(bounds); i++ {
		var taken []uint64
		for _, fp := range scanned[i] {
			if earlier[fp] {
				taken = append(taken, fp)
			}
		}
		sink := &captureSink{}
		res, err := b.runner.RunWith(context.Background(), j, &Range{From: bounds[i], Before: bounds[i+1], Taken: taken, Offset: int64(len(earlier))}, sink, Checkpoint{}, Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		for _, fp := range scanned[i] {
			earlier[fp] = true
		}
		got = append(got, sink.raw...)
		published += res.Published
		candidates += res.Candidates
		sum.Add(res.Skipped)
	}
	sort.Strings(got)
	want := append([]string(nil), fullSink.raw...)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("partitions published %d messages, one run %d, or they differ", len(got), len(want))
	}
	// The single run also counts the listed ids with no user.
	sum.UnknownUser += full.Skipped.UnknownUser
	if published != full.Published || candidates+full.Skipped.UnknownUser != full.Candidates || sum != full.Skipped {
		t.Fatalf("partition counts %d/%d %+v, single run %+v", published, candidates, sum, full)
	}
}

// Section 11 in ranges: one device per user and per-recipient base times
// are decided within a user, whom no range splits; tokens shared across
// ranges go to the same device as in one run.
func TestPartitionsMatchSingleRunWithDelivery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	zones := []string{"Asia/Seoul", "Asia/Kolkata", "America/New_York", "Local", "Pacific/Kiritimati"}
	for i := 0; i < 80; i++ {
		id := fmt.Sprintf("%c%03d", "0Aa~"[i%4], i)
		b.user(id, fmt.Sprintf("e%d", i), nil, nil, fmt.Sprintf(`{"tz":%q,"lang":%q}`, zones[i%5], []string{"en-US", "ko", "fr"}[i%3]), i)
		for k := 0; k < i%3; k++ {
			b.deviceAt(fmt.Sprintf("%s-d%d", id, k), id, fmt.Sprintf("tok%d", (i*3+k)%50), []string{"ios", "android"}[k%2], fmt.Sprintf("2026-0%d-01T00:00:00Z", 1+(i+k)%3))
		}
	}
	text := b.jobJSON(`"channel":"push_notification","audience":{"type":"all"},
"delivery":{"local_time":{"time":"10:00","time_zone":"tz"},"most_recent_device_only":true,"localized_messages":{"property":"lang","messages":{"en":{"t":1},"ko":{"t":2}}}}`)
	partitionsMatch(t, b, text, []string{"", "0100", "A050", "a", "~060", ""})
}

// A range cannot continue another range's waves per base time: such a job
// runs whole (partition declines to split it), and a range with an offset
// is refused rather than numbered wrong.
func TestRangeRefusesLocalTimeWaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	j, err := job.Parse([]byte(b.jobJSON(`"channel":"email","audience":{"type":"all"},"throttle":{"max_per_interval":2,"interval_minutes":5},
"delivery":{"local_time":{"time":"10:00","time_zone":"tz"}}`)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.runner.RunWith(t.Context(), j, &Range{From: "a", Offset: 3}, &captureSink{}, Checkpoint{}, Hooks{})
	if err == nil || !strings.Contains(err.Error(), "runs whole") {
		t.Fatalf("got %v", err)
	}
}

func idsJSON(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"e%d"`, i)
	}
	return "[" + strings.Join(ids, ",") + "]"
}

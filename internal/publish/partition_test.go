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
	j, err := job.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	full, fullSink := b.run(text)

	bounds := []string{"", "0100", "A050", "a", "~060", ""}
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
		s := res.Skipped
		sum.NoContact += s.NoContact
		sum.InvalidContact += s.InvalidContact
		sum.DuplicateDestination += s.DuplicateDestination
		sum.ControlGroup += s.ControlGroup
	}
	sort.Strings(got)
	want := append([]string(nil), fullSink.raw...)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("partitions published %d messages, one run %d, or they differ", len(got), len(want))
	}
	// The single run also counts the 10 listed ids with no user.
	sum.UnknownUser = full.Skipped.UnknownUser
	if published != full.Published || candidates+full.Skipped.UnknownUser != full.Candidates || sum != full.Skipped {
		t.Fatalf("partition counts %d/%d %+v, single run %+v", published, candidates, sum, full)
	}
}

func idsJSON(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"e%d"`, i)
	}
	return "[" + strings.Join(ids, ",") + "]"
}

package publish

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/segpub/segpub/internal/job"
)

// failingSink accepts `ok` batches, then fails.
type failingSink struct {
	captureSink
	ok int
}

func (s *failingSink) Publish(ctx context.Context, b *Batch) error {
	if s.ok == 0 {
		return errors.New("queue unavailable")
	}
	s.ok--
	return s.captureSink.Publish(ctx, b)
}

// A run that fails part way and resumes from its last checkpoint publishes,
// over both attempts, exactly the messages of an uninterrupted run, none
// twice, with the same throttle waves and counts.
func TestResumeFromCheckpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := 0; i < 40; i++ {
		id := fmt.Sprintf("u%02d", i)
		email := fmt.Sprintf("user%d@x.com", i%33) // some shared addresses
		if i%9 == 0 {
			email = "bad"
		}
		b.user(id, nil, email, nil, "", i*250)
	}
	csvURL := writeCSV(t, "email\n"+strings.Repeat("a@x.com\nb@x.com\n", 3)+strings.Repeat("c@x.com\n", 2)+"d@x.com\ne@x.com\nf@x.com\ng@x.com\n")
	for _, audience := range []string{`{"type":"all"}`, `{"type":"csv","url":"` + csvURL + `"}`} {
		text := b.jobJSON(`"channel":"email","audience":` + audience + `,"throttle":{"max_per_interval":4,"interval_minutes":1}`)
		j, err := job.Parse([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		full, fullSink := b.run(text)

		first := &failingSink{ok: 2}
		var cp Checkpoint
		_, err = b.runner.Resume(context.Background(), j, first, Checkpoint{}, func(c Checkpoint) error { cp = c; return nil })
		if err == nil || cp.IsZero() {
			t.Fatalf("%s: first attempt: err %v, checkpoint %+v", audience, err, cp)
		}
		second := &captureSink{}
		res, err := b.runner.Resume(context.Background(), j, second, cp, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := append(append([]string(nil), first.raw...), second.raw...)
		if strings.Join(got, "\n") != strings.Join(fullSink.raw, "\n") {
			t.Fatalf("%s: attempts published %d messages, an uninterrupted run %d, or they differ", audience, len(got), len(fullSink.raw))
		}
		if res.Published != full.Published || res.Skipped != full.Skipped || int64(len(first.raw)) != cp.Published {
			t.Fatalf("%s: resumed counts %+v, full %+v, checkpoint %+v", audience, res, full, cp)
		}
	}
}

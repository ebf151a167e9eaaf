package publish

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/segpub/segpub/internal/job"
)

// Progress reports carry the skips so far while the run goes on, so a
// console shows them before the run ends; the last report's are the
// result's.
func TestProgressCarriesSkips(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 10 {
		var email any = fmt.Sprintf("u%d@x.com", i)
		if i%3 == 0 {
			email = nil // no_contact
		}
		b.user(fmt.Sprintf("u%02d", i), nil, email, nil, "", i)
	}
	j, err := job.Parse([]byte(b.jobJSON(`"channel":"email","audience":{"type":"all"}`)))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reports []Progress
	res, err := b.runner.RunWith(context.Background(), j, nil, &captureSink{}, Checkpoint{}, Hooks{Progress: func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var last *Skipped
	midRun := false
	for _, p := range reports {
		if p.Skipped != nil {
			last = p.Skipped
			if p.Published < res.Published && p.Skipped.NoContact > 0 {
				midRun = true
			}
		}
	}
	if last == nil || *last != res.Skipped || res.Skipped.NoContact != 4 {
		t.Fatalf("last reported skips %+v, result %+v", last, res.Skipped)
	}
	if !midRun {
		t.Fatalf("no report showed skips before the last message was acknowledged: %+v", reports)
	}
}

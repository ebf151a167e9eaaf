package filesink

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// A run whose output cannot be written fails and reports nothing published
// (it once reported every message it had encoded, with no file created).
func TestUnwritableOutputPublishesNothing(t *testing.T) {
	tables := dbtest.Project(t)
	for i := 0; i < 50; i++ {
		dbtest.Exec(t, `INSERT INTO `+tables.User+` (notifly_user_id, email, user_properties, random_bucket_number) VALUES ($1, $2, '{}', 0)`,
			fmt.Sprintf("u%02d", i), fmt.Sprintf("user%d@x.com", i))
	}
	// A path below a regular file can be neither created nor opened,
	// whoever runs the test (root ignores permission bits).
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New("file://" + blocker + "/out/{channel}.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	j, err := job.Parse(fmt.Appendf(nil, `{"version":1,"action":"publish","request_id":"r-1","project_id":%q,
"campaign":{"id":"c1","channel":"email","audience":{"type":"all"},"message":{"title":"hi"}}}`, tables.Project))
	if err != nil {
		t.Fatal(err)
	}
	runner, err := publish.New(publish.Config{Pool: dbtest.Pool(t), BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runner.Run(context.Background(), j, s)
	if err == nil {
		t.Fatal("the run succeeded")
	}
	if res.Status != publish.StatusFailed || res.Published != 0 {
		t.Fatalf("result %+v", res)
	}
}

package ddl

import (
	"context"
	"sync"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
)

// Many processes creating the same tables at once all succeed.
func TestConcurrentApply(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	table := "segpub_ddl_test_" + dbtest.NewProjectID()
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table) })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			errs <- Apply(context.Background(), pool, "test table", `CREATE TABLE IF NOT EXISTS `+table+` (id text PRIMARY KEY);
ALTER TABLE `+table+` ADD COLUMN IF NOT EXISTS note text`)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(context.Background(), `INSERT INTO `+table+` (id, note) VALUES ('a', 'b')`); err != nil {
		t.Fatal(err)
	}
}

// A failing statement is reported with what was being created.
func TestApplyNamesWhat(t *testing.T) {
	t.Parallel()
	err := Apply(context.Background(), dbtest.Pool(t), "the widgets table", `CREATE TABLE segpub_ddl_bad (`)
	if err == nil || err.Error()[:len("create the widgets table")] != "create the widgets table" {
		t.Fatalf("got %v", err)
	}
}

package state

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
)

// Many processes creating the same tables at once all succeed.
func TestConcurrentapplyOnce(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	table := "segpub_ddl_test_" + dbtest.NewProjectID()
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table) })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			errs <- applyOnce(context.Background(), pool, "test table", `CREATE TABLE IF NOT EXISTS `+table+` (id text PRIMARY KEY);
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
	err := applyOnce(context.Background(), dbtest.Pool(t), "the widgets table", `CREATE TABLE segpub_ddl_bad (`)
	if err == nil || err.Error()[:len("create the widgets table")] != "create the widgets table" {
		t.Fatalf("got %v", err)
	}
}

// A definition already applied runs nothing: here an ALTER that would wait
// for a transaction holding the table (and stall every query queued behind
// it) is not even tried when its version is recorded.
func TestAppliedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t)
	table := "segpub_ddl_once_" + dbtest.NewProjectID()
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table) })
	stmts := `CREATE TABLE IF NOT EXISTS ` + table + ` (id text PRIMARY KEY);
ALTER TABLE ` + table + ` ADD COLUMN IF NOT EXISTS note text`
	if err := applyOnce(ctx, pool, table, stmts); err != nil {
		t.Fatal(err)
	}
	// A transaction holds a lock that ALTER TABLE would wait for.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `LOCK TABLE `+table+` IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := applyOnce(short, pool, table, stmts); err != nil {
		t.Fatalf("second apply of the same definition: %v", err)
	}
	// A changed definition is applied, and gives up on the lock rather
	// than wait forever.
	err = applyOnce(ctx, pool, table, stmts+`;
ALTER TABLE `+table+` ADD COLUMN IF NOT EXISTS other text`)
	if err == nil || !strings.Contains(err.Error(), "lock timeout") {
		t.Fatalf("changed definition under a held lock: %v", err)
	}
}

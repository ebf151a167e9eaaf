package state

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/dbtest"
)

// A partitioned run's destinations are copied in right before the publish
// phase reads them back, so the planner sees the statistics of earlier
// runs only: the new request_id is unknown to it, estimated at one row.
// taken's plan must not depend on that estimate. The old EXISTS query
// became a nested loop comparing each destination of the partition with
// every destination of the earlier partitions (issue 19: hours at 1M).
func TestTakenPlanWithStaleStatistics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.IsolatedPool(t)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	l := &Partitions{pool: pool}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// Only this test decides when the table is analyzed.
	exec(`ALTER TABLE segpub_partition_destinations SET (autovacuum_enabled = false)`)
	// A large earlier run, analyzed as autovacuum would have by now.
	exec(`INSERT INTO segpub_partition_destinations
SELECT 'sched:earlier', i % 4, hashint8(i) FROM generate_series(1, 400000) i`)
	exec(`ANALYZE segpub_partition_destinations`)

	// This run, recorded by its scans (COPY), not analyzed: 4 parts of
	// 20,000 destinations, each later part sharing 1,000 with an earlier.
	const id, parts, per = "sched:this", 4, 20000
	recorded := make([][]uint64, parts)
	for p := range parts {
		fps := make([]uint64, 0, per+1000)
		for i := range per {
			fps = append(fps, uint64(1_000_000_000+p*per+i))
		}
		for i := range p * 1000 {
			fps = append(fps, uint64(1_000_000_000+i*7%(p*per)))
		}
		recorded[p] = fps
		if err := l.RecordScan(ctx, id, p, fps); err != nil {
			t.Fatal(err)
		}
	}
	var rows int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM segpub_partition_destinations WHERE request_id = $1`, id).Scan(&rows); err != nil {
		t.Fatal(err)
	}

	last := parts - 1
	// As Taken runs it: under its planner settings, in a transaction.
	explain := func(options string) []byte {
		t.Helper()
		var plan []byte
		err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, takenPlan); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `EXPLAIN (`+options+`) `+takenSQL, id, last).Scan(&plan)
		})
		if err != nil {
			t.Fatal(err)
		}
		return plan
	}
	plan := explain("FORMAT JSON")
	for _, n := range planNodes(t, plan) {
		if strings.Contains(n.Type, "Nested Loop") {
			t.Fatalf("Taken's plan has a %s (join filter %q): quadratic on a stale estimate\n%s", n.Type, n.JoinFilter, plan)
		}
		if n.Type == "Index Scan" || n.Type == "Index Only Scan" || n.Type == "Seq Scan" {
			t.Fatalf("Taken's plan has an %s: a heap fetch per row, or every earlier run read\n%s", n.Type, plan)
		}
	}
	// Run, it reads each of the run's rows at most once.
	plan = explain("ANALYZE, FORMAT JSON")
	var scanned float64
	for _, n := range planNodes(t, plan) {
		if strings.HasSuffix(n.Type, "Heap Scan") {
			scanned += n.ActualRows * n.ActualLoops
		}
	}
	if scanned == 0 || scanned > float64(rows) {
		t.Fatalf("Taken read %.0f rows of a run of %d\n%s", scanned, rows, plan)
	}

	// And it is right: the destinations of each part also in an earlier
	// part, and how many distinct destinations the earlier parts hold.
	for p := range parts {
		earlier := map[uint64]bool{}
		for q := range p {
			for _, fp := range recorded[q] {
				earlier[fp] = true
			}
		}
		var want []uint64
		for _, fp := range recorded[p] {
			if earlier[fp] && !slices.Contains(want, fp) {
				want = append(want, fp)
			}
		}
		taken, offset, err := l.Taken(ctx, id, p)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(taken)
		slices.Sort(want)
		if !slices.Equal(taken, want) || offset != int64(len(earlier)) {
			t.Errorf("part %d: %d taken, offset %d; want %d taken, offset %d", p, len(taken), offset, len(want), len(earlier))
		}
	}
}

type planNode struct {
	Type        string     `json:"Node Type"`
	JoinFilter  string     `json:"Join Filter"`
	ActualRows  float64    `json:"Actual Rows"`
	ActualLoops float64    `json:"Actual Loops"`
	Plans       []planNode `json:"Plans"`
}

// planNodes flattens an EXPLAIN (FORMAT JSON) plan.
func planNodes(t *testing.T, raw []byte) []planNode {
	t.Helper()
	var doc []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("parse plan: %v\n%s", err, raw)
	}
	var out []planNode
	var walk func(n planNode)
	walk = func(n planNode) {
		out = append(out, n)
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(doc[0].Plan)
	if len(out) == 0 {
		t.Fatal(fmt.Sprintf("empty plan: %s", raw))
	}
	return out
}

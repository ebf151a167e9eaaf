package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
)

// dbFaults decides which reads from PostgreSQL fail: each with probability
// p, until budget faults have fired (a bound, so that a run makes progress
// between faults and the test ends).
type dbFaults struct {
	mu     sync.Mutex
	rng    *rand.Rand
	p      float64
	budget int
	fired  int
	reads  int
}

func (f *dbFaults) hit() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.fired >= f.budget || f.rng.Float64() >= f.p {
		return false
	}
	f.fired++
	return true
}

// faultyConn resets the connection on a failing read: to segpub it is a
// server or network dying mid-query, mid-stream or mid-commit.
type faultyConn struct {
	net.Conn
	f *dbFaults
}

func (c *faultyConn) Read(b []byte) (int, error) {
	if c.f.hit() {
		_ = c.Conn.Close()
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return c.Conn.Read(b)
}

func faultyPool(t *testing.T, f *dbFaults) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(dbtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if f.hit() {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &faultyConn{Conn: c, f: f}, nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// With 1% and 5% of reads from PostgreSQL failing (connection resets in
// the middle of queries, of the audience stream and of ledger writes, and
// refused connections), every run completes with exactly the messages of
// an uninterrupted `segpub publish`: 0 lost, 0 duplicated.
func TestDatabaseFaults(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p           float64
		partitioned bool
	}{{0.01, false}, {0.05, false}, {0.01, true}, {0.05, true}} {
		t.Run(fmt.Sprintf("p%.0f/partitioned=%v", c.p*100, c.partitioned), func(t *testing.T) {
			t.Parallel()
			b := setup(t, 3000)
			f := &dbFaults{rng: rand.New(rand.NewPCG(uint64(c.p*1000), 7)), p: c.p, budget: 25}
			pool := faultyPool(t, f)
			runner, err := publish.New(publish.Config{Pool: pool})
			if err != nil {
				t.Fatal(err)
			}
			faultyLedger, err := ledger.New(context.Background(), pool)
			if err != nil {
				t.Fatal(err)
			}
			rows := 0
			if c.partitioned {
				rows = 400
			}
			direct := b.ledger
			b.ledger = faultyLedger
			b.worker(Config{Owner: "w0", Runner: runner, MaxAttempts: 1000, PartitionRows: rows})
			b.worker(Config{Owner: "w1", Runner: runner, MaxAttempts: 1000, PartitionRows: rows})
			b.ledger = direct
			text := []byte(strings.Replace(string(b.jobText("r-dbf")), `"message":{"title":"hi"}`,
				`"message":{"title":"hi"},"experiment_id":"exp_ab","throttle":{"max_per_interval":250,"interval_minutes":10}`, 1))
			if err := b.jobs.Send(context.Background(), text, ""); err != nil {
				t.Fatal(err)
			}
			b.waitStatus("r-dbf", ledger.Completed)
			f.mu.Lock()
			fired, reads := f.fired, f.reads
			f.mu.Unlock()
			if fired == 0 {
				t.Fatalf("no fault fired in %d reads", reads)
			}
			got, want := b.channelMessages(), b.fileOutput(text)
			sortBytes(got)
			sortBytes(want)
			sameMessages(t, got, want)
			t.Logf("%d of %d reads failed", fired, reads)
		})
	}
}

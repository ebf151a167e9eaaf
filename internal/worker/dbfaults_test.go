package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/pgtimeout"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/reliability"
)

// dbFaults decides which reads from PostgreSQL fail: each with probability
// p, until budget faults have fired (a bound, so that a run makes progress
// between faults and the test ends). A failing read either resets the
// connection or stalls it.
type dbFaults struct {
	mu      sync.Mutex
	rng     *rand.Rand
	p       float64
	budget  int
	reads   int
	resets  int
	stalls  int
	refused int
}

type fault int

const (
	none fault = iota
	reset
	stall
)

func (f *dbFaults) hit(dial bool) fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.resets+f.stalls+f.refused >= f.budget || f.rng.Float64() >= f.p {
		return none
	}
	switch {
	case dial:
		f.refused++
		return reset
	case f.rng.IntN(2) == 0:
		f.resets++
		return reset
	default:
		f.stalls++
		return stall
	}
}

// faultyConn fails reads the two ways a database connection dies: a reset
// (a server or network dying mid-query, mid-stream or mid-commit) and a
// stall (a peer that stops answering and never closes: a hung proxy, a
// half-open connection). A stalled connection swallows whatever arrives
// from then on, so only a read deadline ends the wait.
type faultyConn struct {
	net.Conn
	f       *dbFaults
	stalled bool
}

func (c *faultyConn) Read(b []byte) (int, error) {
	if !c.stalled {
		switch c.f.hit(false) {
		case reset:
			_ = c.Conn.Close()
			return 0, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
		case stall:
			c.stalled = true
		}
	}
	if c.stalled {
		for {
			if _, err := c.Conn.Read(b); err != nil {
				return 0, err
			}
		}
	}
	return c.Conn.Read(b)
}

// faultyPool connects through faultyConn, with segpub's own defence
// against stalls (pgtimeout, as `segpub serve` applies it) on top.
func faultyPool(t *testing.T, f *dbFaults) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(dbtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if f.hit(true) != none {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &faultyConn{Conn: c, f: f}, nil
	}
	pgtimeout.Apply(&cfg.ConnConfig.Config, time.Second)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// With 1% and 5% of reads from PostgreSQL failing (connection resets and
// stalls in the middle of queries, of the audience stream and of ledger
// writes, and refused connections), every run completes with exactly the messages of
// an uninterrupted `segpub publish`: 0 lost, 0 duplicated.
func TestDatabaseFaults(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p           float64
		partitioned bool
	}{{0.01, false}, {0.05, false}, {0.01, true}, {0.05, true}} {
		t.Run(fmt.Sprintf("p%.0f/partitioned=%v", c.p*100, c.partitioned), func(t *testing.T) {
			t.Parallel()
			users, partitionRows := faultScale()
			b := setup(t, users)
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
				rows = partitionRows
			}
			direct := b.ledger
			b.ledger = faultyLedger
			b.worker(Config{Owner: "w0", Runner: runner, MaxAttempts: 1000, Partitions: b.partitions(rows, runner, pool, nil)})
			b.worker(Config{Owner: "w1", Runner: runner, MaxAttempts: 1000, Partitions: b.partitions(rows, runner, pool, nil)})
			b.ledger = direct
			text := []byte(strings.Replace(string(b.jobText("r-dbf")), `"message":{"title":"hi"}`,
				`"message":{"title":"hi"},"experiment_id":"exp_ab","throttle":{"max_per_interval":250,"interval_minutes":10}`, 1))
			start := time.Now()
			if err := b.jobs.Send(context.Background(), text, ""); err != nil {
				t.Fatal(err)
			}
			b.waitStatus("r-dbf", ledger.Completed)
			wall := time.Since(start)
			f.mu.Lock()
			if f.resets+f.stalls+f.refused == 0 || (c.p >= 0.05 && (f.resets == 0 || f.stalls == 0)) {
				t.Errorf("%d resets, %d stalls, %d refused: the case does not test what it says", f.resets, f.stalls, f.refused)
			}
			detail := []reliability.Field{{Name: "reads", Value: strconv.Itoa(f.reads)},
				{Name: "resets", Value: strconv.Itoa(f.resets)}, {Name: "stalls", Value: strconv.Itoa(f.stalls)},
				{Name: "refused", Value: strconv.Itoa(f.refused)}}
			f.mu.Unlock()
			reliability.Check(t, reliability.Classify(b.fileOutput(text), b.channelMessages()), wall, detail...)
		})
	}
}

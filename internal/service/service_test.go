package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// A Config out of range is refused before anything is opened, naming the
// field.
func TestConfigValidated(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Config.Audience is required"},
		{Config{Audience: pool, Concurrency: -1}, "Config.Concurrency -1"},
		{Config{Audience: pool, Lease: time.Second}, "Config.Lease 1s; want at least 3s"},
		{Config{Audience: pool, MaxInFlight: -1}, "Config.MaxInFlight -1 is negative"},
		{Config{Audience: pool, PartitionRows: -1}, "Config.PartitionRows -1 is negative"},
		{Config{Audience: pool, Run: []Module{"mailer"}}, `Config.Run: unknown module "mailer"`},
		{Config{Audience: pool, CSVRoot: "relative"}, "Config.CSVRoot"},
	} {
		_, err := New(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg.Run, err, c.want)
		}
	}
}

// The service serve runs, built from one Config: a job sent to its queue
// is claimed and published whole by its worker, the console answers on
// its listener, Stop stops everything within the grace and Close flushes
// the channel output.
func TestServiceRunsAJob(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	tables, _ := schema.For(dbtest.NewProjectID())
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: tables.Project, Users: 500}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, err := New(ctx, Config{Audience: pool, DataDir: filepath.Join(dir, "data"), ChannelURL: "file://" + out + "/{channel}.ndjson",
		Run: []Module{Worker, Scheduler, Cleaner}, Console: ConsoleConfig{Listener: ln}, ShutdownGrace: 10 * time.Second,
		PartitionRows: DefaultPartitionRows, Scheduler: SchedulerConfig{Interval: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	requestID := "svc-" + tables.Project
	body := fmt.Appendf(nil, `{"version":1,"action":"publish","request_id":%q,"project_id":%q,
"campaign":{"id":"cmp","channel":"email","audience":{"type":"all"},"message":{"s":"hi"}}}`, requestID, tables.Project)
	q, err := svc.JobQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := claimcheck.Send(ctx, q, nil, body, requestID); err != nil {
		t.Fatal(err)
	}
	led, err := ledger.New(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	var run *ledger.Run
	for deadline := time.Now().Add(60 * time.Second); ; {
		run, err = led.Get(ctx, requestID)
		if err == nil && run.Status.Final() {
			break
		}
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not finished: %+v", run)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if run.Status != ledger.Completed || run.Published == 0 {
		t.Fatalf("run %s, published %d: %s", run.Status, run.Published, run.Error)
	}
	resp, err := http.Get(svc.ConsoleURL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("console answered %s", resp.Status)
	}
	start := time.Now()
	if err := svc.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stop took %s, past the 10 s grace", d)
	}
	if err := svc.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := http.Get(svc.ConsoleURL()); err == nil {
		t.Fatal("the console still answers after Stop")
	}
	data, err := os.ReadFile(filepath.Join(out, "email.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if n := int64(strings.Count(string(data), "\n")); n != run.Published {
		t.Fatalf("the output holds %d messages, the run published %d", n, run.Published)
	}
}

//go:build chaos

// Package chaos is segpub's crash test (make chaos): several `segpub serve`
// processes share a standalone JetStream; a push job over a large seeded
// project runs while workers are killed with SIGKILL, or PostgreSQL or NATS
// restarts; then every message in the channel stream is counted against
// what an uninterrupted `segpub publish` of the same job writes.
//
//	SEGPUB_CHAOS_USERS    users to seed (default 1000000)
//	SEGPUB_CHAOS_KILLS    SIGKILLs in the kill scenario (default 20)
package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segpub/segpub/internal/reliability"
	"github.com/segpub/segpub/internal/seed"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// world is what every scenario shares: a binary, a database with a seeded
// project, and a NATS server the test owns (so it can restart it).
type world struct {
	bin      string
	dbURL    string
	pgData   string // set when the test owns the PostgreSQL cluster
	project  string
	natsBin  string
	natsDir  string
	natsPort int
	natsCmd  *exec.Cmd
}

var (
	once   sync.Once
	shared *world
	setupE error
)

func setup(t *testing.T) *world {
	t.Helper()
	once.Do(func() { shared, setupE = newWorld() })
	if setupE != nil {
		t.Fatal(setupE)
	}
	return shared
}

// TestMain stops the servers the tests started.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.close()
	}
	os.Exit(code)
}

func (w *world) close() {
	if w.natsCmd != nil && w.natsCmd.Process != nil {
		_ = w.natsCmd.Process.Signal(syscall.SIGTERM)
		_ = w.natsCmd.Wait()
	}
	if w.pgData != "" {
		cmd := exec.Command(findPgCtl(), "-D", w.pgData, "-m", "fast", "stop")
		if os.Geteuid() == 0 {
			cmd = exec.Command("runuser", "-u", "postgres", "--", findPgCtl(), "-D", w.pgData, "-m", "fast", "stop")
		}
		_ = cmd.Run()
		_ = os.RemoveAll(filepath.Dir(w.pgData))
	}
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func newWorld() (*world, error) {
	root := repoRoot()
	tmp, err := os.MkdirTemp("", "segpub-chaos-")
	if err != nil {
		return nil, err
	}
	// PostgreSQL runs as its own user and must reach its data directory.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	w := &world{bin: filepath.Join(tmp, "segpub"), project: "chaos" + strconv.Itoa(envInt("SEGPUB_CHAOS_USERS", 1_000_000)/1000) + "k"}
	build := exec.Command("go", "build", "-o", w.bin, "./cmd/segpub")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build: %v: %s", err, out)
	}
	// A PostgreSQL cluster of the test's own, so the restart scenario may
	// restart it.
	w.pgData = filepath.Join(tmp, "pg")
	pg := exec.Command(filepath.Join(root, "scripts", "pg-ensure"))
	pg.Env = append(os.Environ(), "SEGPUB_PG_SKIP_DEFAULT=1", "SEGPUB_PGDATA="+w.pgData, "SEGPUB_DATABASE_URL=")
	pg.Stderr = os.Stderr
	out, err := pg.Output()
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %v", err)
	}
	w.dbURL = strings.TrimSpace(string(out))
	pool, err := pgxpool.New(context.Background(), w.dbURL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: w.project, Users: envInt("SEGPUB_CHAOS_USERS", 1_000_000), Replace: true}); err != nil {
		return nil, err
	}
	if w.natsBin, err = exec.LookPath("nats-server"); err != nil {
		w.natsBin = "/usr/sbin/nats-server"
	}
	w.natsDir = filepath.Join(tmp, "nats")
	w.natsPort = 14222 + rand.IntN(1000)
	return w, w.startNATS()
}

func (w *world) natsURL() string { return fmt.Sprintf("nats://127.0.0.1:%d", w.natsPort) }

func (w *world) startNATS() error {
	w.natsCmd = exec.Command(w.natsBin, "-a", "127.0.0.1", "-p", strconv.Itoa(w.natsPort), "-js", "-sd", w.natsDir)
	if err := w.natsCmd.Start(); err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		if nc, err := nats.Connect(w.natsURL()); err == nil {
			nc.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("nats-server did not start")
}

func (w *world) restartNATS() error {
	_ = w.natsCmd.Process.Signal(syscall.SIGTERM)
	_ = w.natsCmd.Wait()
	return w.startNATS()
}

func (w *world) restartPG() error {
	cmd := exec.Command("pg_ctl", "-D", w.pgData, "-m", "fast", "-w", "restart")
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", "-u", "postgres", "--", findPgCtl(), "-D", w.pgData, "-l", filepath.Join(w.pgData, "server.log"), "-m", "fast", "-w", "restart")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("restart PostgreSQL: %v: %s", err, out)
	}
	return nil
}

func findPgCtl() string {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(m) > 0 {
		return m[len(m)-1]
	}
	return "pg_ctl"
}

// run is one scenario's service: worker processes and their streams.
type run struct {
	t         *testing.T
	w         *world
	id        string
	requestID string
	env       []string
	mu        sync.Mutex
	procs     []*proc
	dupes     map[int]float64 // pid -> last scraped duplicate count
}

type proc struct {
	cmd  *exec.Cmd
	port int
}

func newRun(t *testing.T, w *world, name string, extraEnv ...string) *run {
	_ = name
	id := fmt.Sprintf("r%d", time.Now().UnixNano())
	r := &run{t: t, w: w, id: id, requestID: "chaos-" + id, dupes: map[int]float64{}}
	nurl := w.natsURL()
	r.env = append(os.Environ(),
		"SEGPUB_DATABASE_URL="+w.dbURL,
		"SEGPUB_JOB_QUEUE_URL="+nurl+"?stream=J_"+id+"&subject=j."+id+"&consumer=w",
		"SEGPUB_DEAD_LETTER_URL="+nurl+"?stream=D_"+id+"&subject=d."+id+"&consumer=d",
		"SEGPUB_CHANNEL_URL="+nurl+"?stream=C_"+id+"&subject=c."+id+".{channel}",
		"SEGPUB_LEASE=4s", "SEGPUB_CONCURRENCY=1", "SEGPUB_SCHEDULER=off", "SEGPUB_SHUTDOWN_GRACE=2s",
		"SEGPUB_MAX_ATTEMPTS=100", "SEGPUB_PARTITION_ROWS=0",
	)
	r.env = append(r.env, extraEnv...)
	return r
}

func (r *run) start(slot int) {
	port := 19300 + rand.IntN(600)
	cmd := exec.Command(r.w.bin, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", r.t.TempDir())
	cmd.Env = r.env
	logf, _ := os.Create(filepath.Join(os.TempDir(), fmt.Sprintf("segpub-chaos-%s-%d.log", r.id, slot)))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.procs) <= slot {
		r.procs = append(r.procs, nil)
	}
	r.procs[slot] = &proc{cmd: cmd, port: port}
}

var dupRe = regexp.MustCompile(`(?m)^segpub_messages_duplicate_total\{[^}]*\} ([0-9.e+]+)$`)

// scrape keeps each process's duplicate counter, which dies with it.
func (r *run) scrape(ctx context.Context) {
	for ctx.Err() == nil {
		r.mu.Lock()
		procs := append([]*proc(nil), r.procs...)
		r.mu.Unlock()
		for _, p := range procs {
			if p == nil {
				continue
			}
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.port))
			if err != nil {
				continue
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			total := 0.0
			for _, m := range dupRe.FindAllStringSubmatch(buf.String(), -1) {
				v, _ := strconv.ParseFloat(m[1], 64)
				total += v
			}
			r.mu.Lock()
			r.dupes[p.cmd.Process.Pid] = total
			r.mu.Unlock()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *run) segpub(args ...string) []byte {
	cmd := exec.Command(r.w.bin, args...)
	cmd.Env = r.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("segpub %v: %v: %s", args, err, stderr.String())
	}
	return out
}

type status struct {
	Status string `json:"status"`
	Owner  string `json:"owner"`
}

func (r *run) status() status {
	cmd := exec.Command(r.w.bin, "status", r.requestID)
	cmd.Env = r.env
	out, _ := cmd.Output()
	var s status
	_ = json.Unmarshal(out, &s)
	return s
}

// ownerSlot finds the slot of a process holding the run or one of its
// partitions, by pid.
func (r *run) ownerSlot() int {
	pool, err := pgxpool.New(context.Background(), r.w.dbURL)
	if err != nil {
		return -1
	}
	defer pool.Close()
	var owner string
	if err := pool.QueryRow(context.Background(), `SELECT owner FROM segpub_runs WHERE (request_id = $1 OR parent = $1)
AND status = 'running' AND owner IS NOT NULL ORDER BY random() LIMIT 1`, r.requestID).Scan(&owner); err != nil {
		return -1
	}
	i := strings.LastIndex(owner, ":")
	if i < 0 {
		return -1
	}
	pid, _ := strconv.Atoi(owner[i+1:])
	r.mu.Lock()
	defer r.mu.Unlock()
	for slot, p := range r.procs {
		if p != nil && p.cmd.Process.Pid == pid {
			return slot
		}
	}
	return -1
}

func (r *run) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.procs {
		if p != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_, _ = p.cmd.Process.Wait()
		}
	}
}

func (r *run) jobFile() string {
	path := filepath.Join(r.t.TempDir(), "job.json")
	job := fmt.Sprintf(`{"version":1,"action":"publish","request_id":%q,"project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"chaos","channel":"push_notification","audience":{"type":"all"},"message":{"title":"chaos"}}}`, r.requestID, r.w.project)
	if err := os.WriteFile(path, []byte(job), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// result is one scenario's figures.
type result struct {
	name                                      string
	expected, inStream, distinct, dupInStream int
	lost, unexpected                          int
	dupBeforeDedup                            float64
	kills                                     int
	wall                                      time.Duration
}

// scenario runs a job through three workers while disrupt acts; it
// returns the figures after the run completes.
func scenario(t *testing.T, name string, disrupt func(r *run, done <-chan struct{}) int, extraEnv ...string) result {
	w := setup(t)
	r := newRun(t, w, name, extraEnv...)
	jobPath := r.jobFile()
	// The expected messages: an uninterrupted publish of the same job.
	expDir := t.TempDir()
	r.segpub("publish", "--job", jobPath, "--out", "file://"+expDir+"/{channel}.ndjson")
	expected := keysOfFile(t, filepath.Join(expDir, "push_notification.ndjson"))

	for slot := 0; slot < 3; slot++ {
		r.start(slot)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go r.scrape(ctx)
	start := time.Now()
	r.segpub("submit", "--job", jobPath)
	done := make(chan struct{})
	kills := make(chan int, 1)
	go func() { kills <- disrupt(r, done) }()
	deadline := time.Now().Add(20 * time.Minute)
	for r.status().Status != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("%s: run did not complete: %+v", name, r.status())
		}
		time.Sleep(200 * time.Millisecond)
	}
	wall := time.Since(start)
	close(done)
	k := <-kills
	time.Sleep(300 * time.Millisecond) // a last scrape
	cancel()
	r.stopAll()

	got := streamKeys(t, w.natsURL(), "C_"+r.id)
	res := result{name: name, expected: len(expected), inStream: len(got), kills: k, wall: wall}
	seen := map[string]int{}
	for _, k := range got {
		seen[k]++
	}
	res.distinct = len(seen)
	res.dupInStream = res.inStream - res.distinct
	want := make([][]byte, 0, len(expected))
	for k := range expected {
		want = append(want, []byte(k))
	}
	r.mu.Lock()
	for _, d := range r.dupes {
		res.dupBeforeDedup += d
	}
	r.mu.Unlock()
	counts := reliability.ClassifyCounts(want, seen)
	res.lost, res.unexpected = counts.Lost, counts.Unexpected
	reliability.CheckAs(t, "Crash test (internal/chaos)", name, counts, wall,
		reliability.Field{Name: "in stream", Value: strconv.Itoa(res.inStream)},
		reliability.Field{Name: "published again", Value: fmt.Sprintf("%.0f", res.dupBeforeDedup)},
		reliability.Field{Name: "kills", Value: strconv.Itoa(k)})
	return res
}

var keyRe = regexp.MustCompile(`^\{"idempotency_key":"([0-9a-f]{64})"`)

func keysOfFile(t *testing.T, path string) map[string]bool {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if m := keyRe.FindSubmatch(sc.Bytes()); m != nil {
			out[string(m[1])] = true
		}
	}
	return out
}

func streamKeys(t *testing.T, url, stream string) []string {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	info, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	total := int(info.CachedInfo().State.Msgs)
	cons, err := js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for len(out) < total {
		batch, err := cons.Fetch(min(10000, total-len(out)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if k := keyRe.FindSubmatch(m.Data()); k != nil {
				out = append(out, string(k[1]))
			} else {
				out = append(out, "?")
			}
		}
		if n == 0 {
			break
		}
	}
	return out
}

// Twenty SIGKILLs of the worker holding the run, at random moments; each
// killed worker is restarted.
func TestKillWorkers(t *testing.T) {
	kills := envInt("SEGPUB_CHAOS_KILLS", 20)
	scenario(t, fmt.Sprintf("SIGKILL the running worker, up to %d times", kills), killer(kills))
}

// The same with the job split into ranges that the three workers share.
func TestKillWorkersPartitioned(t *testing.T) {
	kills := envInt("SEGPUB_CHAOS_KILLS", 20)
	rows := envInt("SEGPUB_CHAOS_USERS", 1_000_000) / 4
	scenario(t, fmt.Sprintf("partitioned in 4, SIGKILL a running worker, up to %d times", kills), killer(kills),
		fmt.Sprintf("SEGPUB_PARTITION_ROWS=%d", rows))
}

// killer SIGKILLs a worker holding a part of the run, kills times, at
// random moments, restarting each.
func killer(kills int) func(r *run, done <-chan struct{}) int {
	return func(r *run, done <-chan struct{}) int {
		n := 0
		for n < kills {
			select {
			case <-done:
				return n
			case <-time.After(time.Duration(500+rand.IntN(2500)) * time.Millisecond):
			}
			slot := r.ownerSlot()
			if slot < 0 {
				continue
			}
			r.mu.Lock()
			p := r.procs[slot]
			r.mu.Unlock()
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			_, _ = p.cmd.Process.Wait()
			n++
			r.start(slot)
		}
		return n
	}
}

// PostgreSQL restarts once in the middle of the run.
func TestRestartPostgres(t *testing.T) {
	scenario(t, "restart PostgreSQL once mid-run", func(r *run, done <-chan struct{}) int {
		for r.status().Status != "running" {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		if err := r.w.restartPG(); err != nil {
			r.t.Error(err)
		}
		return 0
	})
}

// The NATS server restarts once in the middle of the run.
func TestRestartNATS(t *testing.T) {
	scenario(t, "restart NATS once mid-run", func(r *run, done <-chan struct{}) int {
		for r.status().Status != "running" {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		if err := r.w.restartNATS(); err != nil {
			r.t.Error(err)
		}
		return 0
	})
}

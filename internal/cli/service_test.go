package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segpub/segpub/internal/awstest"
	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/flock"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// serviceEnv runs commands with the given settings as environment.
func serviceEnv(vars map[string]string) *Env {
	return &Env{Stdin: strings.NewReader(""), Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, Getenv: func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		if k == "SEGPUB_DATABASE_URL" {
			return dbtest.URL()
		}
		return ""
	}}
}

// syncBuffer is a buffer that serve's goroutines may write while a test
// reads it: a job abandoned at shutdown still logs after serve returned.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Bytes() []byte { return []byte(s.String()) }

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func seededJob(t *testing.T) (string, []byte) {
	t.Helper()
	pool := dbtest.Pool(t)
	tables, _ := schema.For(dbtest.NewProjectID())
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: tables.Project, Users: 2000}); err != nil {
		t.Fatal(err)
	}
	requestID := "e2e-" + tables.Project
	jobText := fmt.Appendf(nil, `{"version":1,"action":"publish","request_id":%q,"project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"cmp","channel":"email","audience":{"type":"all"},"message":{"s":"hi"},"experiment_id":"exp_ab","throttle":{"max_per_interval":100,"interval_minutes":5}}}`,
		requestID, tables.Project)
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, jobText, 0o644); err != nil {
		t.Fatal(err)
	}
	return requestID, []byte(path)
}

// publishToFile is `segpub publish` of the job to file://.
func publishToFile(t *testing.T, jobPath string) []string {
	t.Helper()
	dir := t.TempDir()
	r := run(t, "", "publish", "--job", jobPath, "--out", "file://"+dir+"/{channel}.ndjson")
	if r.code != ExitOK {
		t.Fatalf("publish: %s", r.stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, "email.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// serveUntil runs `segpub serve` until the run completes.
func serveUntil(t *testing.T, env *Env, requestID string) {
	t.Helper()
	serveUntilStatus(t, env, map[string]string{requestID: "completed"})
}

// serveUntilStatus runs `segpub serve` until each run has its status.
func serveUntilStatus(t *testing.T, env *Env, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"serve", "--listen", "", "--scheduler=false"}, env) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := serviceEnv(nil)
		all := true
		for requestID, status := range want {
			Main(context.Background(), []string{"status", requestID}, st)
			all = all && strings.Contains(st.Stdout.(*syncBuffer).String(), `"status":"`+status+`"`)
			st.Stdout.(*syncBuffer).Reset()
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("runs did not reach %v\nserve log:\n%s", want, env.Stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("serve exited %d: %s", code, env.Stderr)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// submit -> serve -> SQS yields exactly what publish writes to a file.
func TestEndToEndSQS(t *testing.T) {
	cfg := awstest.Config(t)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	client := sqs.NewFromConfig(cfg)
	requestID, jobPath := seededJob(t)
	// The emulator lives as long as the test binary: queue names of the
	// test's own.
	prefix := strings.ReplaceAll(strings.TrimPrefix(requestID, "e2e-"), "_", "-") + "-"
	urls := map[string]string{}
	for _, name := range []string{"jobs", "dead", "email"} {
		out, err := client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(prefix + name)})
		if err != nil {
			t.Fatal(err)
		}
		// The emulator names its queues on its own default address; the
		// URL segpub gets points at the emulator actually running.
		u := aws.ToString(out.QueueUrl)
		u = aws.ToString(cfg.BaseEndpoint) + u[strings.Index(u[len("http://"):], "/")+len("http://"):]
		urls[name] = "sqs+" + u
	}
	env := serviceEnv(map[string]string{
		"SEGPUB_JOB_QUEUE_URL":   urls["jobs"],
		"SEGPUB_DEAD_LETTER_URL": urls["dead"],
		"SEGPUB_CHANNEL_URL":     strings.Replace(urls["email"], prefix+"email", prefix+"{channel}", 1),
		"SEGPUB_DATA_DIR":        t.TempDir(),
	})
	if code := Main(context.Background(), []string{"submit", "--job", string(jobPath)}, env); code != ExitOK {
		t.Fatalf("submit: %s", env.Stderr)
	}
	serveUntil(t, env, requestID)
	want := publishToFile(t, string(jobPath))
	var got []string
	emailURL := strings.TrimPrefix(urls["email"], "sqs+")
	// Receive until everything expected arrived (a short visibility
	// timeout: a message received but not delivered, a response lost on a
	// loaded machine, comes back within the deadline), then once more for
	// anything beyond it.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := client.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(emailURL), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, VisibilityTimeout: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			if len(got) >= len(want) {
				break
			}
			continue
		}
		for _, m := range out.Messages {
			got = append(got, aws.ToString(m.Body))
			_, _ = client.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(emailURL), ReceiptHandle: m.ReceiptHandle})
		}
	}
	// A standard SQS queue does not keep order: compare as sets.
	if strings.Join(sorted(got), "\n") != strings.Join(sorted(want), "\n") {
		t.Fatalf("SQS holds %d messages, publish wrote %d, or they differ", len(got), len(want))
	}
}

// submit -> serve -> JetStream (standalone server) yields exactly what
// publish writes to a file, in the same order.
func TestEndToEndJetStream(t *testing.T) {
	t.Parallel()
	natsURL := os.Getenv("SEGPUB_TEST_NATS_URL")
	if natsURL == "" {
		natsURL = "nats://127.0.0.1:4222"
	}
	requestID, jobPath := seededJob(t)
	suffix := strings.TrimPrefix(requestID, "e2e-")
	stream := "E2E_CH_" + suffix
	env := serviceEnv(map[string]string{
		"SEGPUB_JOB_QUEUE_URL":   natsURL + "?stream=E2E_JOBS_" + suffix + "&subject=e2e.jobs." + suffix + "&consumer=w",
		"SEGPUB_DEAD_LETTER_URL": natsURL + "?stream=E2E_DEAD_" + suffix + "&subject=e2e.dead." + suffix + "&consumer=d",
		"SEGPUB_CHANNEL_URL":     natsURL + "?stream=" + stream + "&subject=e2e.ch." + suffix + ".{channel}",
		"SEGPUB_EVENTS_URL":      "file://" + filepath.Join(t.TempDir(), "events.ndjson"),
		"SEGPUB_DATA_DIR":        t.TempDir(),
	})
	if code := Main(context.Background(), []string{"submit", "--job", string(jobPath)}, env); code != ExitOK {
		t.Fatalf("submit: %s", env.Stderr)
	}
	serveUntil(t, env, requestID)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	t.Cleanup(func() {
		for _, s := range []string{stream, "E2E_JOBS_" + suffix, "E2E_DEAD_" + suffix} {
			_ = js.DeleteStream(context.Background(), s)
		}
	})
	want := publishToFile(t, string(jobPath))
	cons, err := js.OrderedConsumer(context.Background(), stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < len(want) {
		batch, err := cons.Fetch(len(want)-len(got), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			got = append(got, string(m.Data()))
			n++
		}
		if n == 0 {
			break
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stream holds %d messages, publish wrote %d, or they differ", len(got), len(want))
	}
	// The run's events: started, then completed with the result.
	data, _ := os.ReadFile(strings.TrimPrefix(env.Getenv("SEGPUB_EVENTS_URL"), "file://"))
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct{ Type string }
		_ = json.Unmarshal([]byte(line), &e)
		types = append(types, e.Type)
	}
	if len(types) < 2 || types[0] != "started" || types[len(types)-1] != "completed" {
		t.Fatalf("events %v", types)
	}
}

// A job over the queue's size limit is submitted as a claim check: its body
// goes to the message store, the queue carries its id, and serve resolves
// it.
func TestSubmitClaimCheck(t *testing.T) {
	t.Parallel()
	requestID, jobPath := seededJob(t)
	data, err := os.ReadFile(string(jobPath))
	if err != nil {
		t.Fatal(err)
	}
	suffix := strings.TrimPrefix(requestID, "e2e-")
	env := serviceEnv(map[string]string{
		"SEGPUB_JOB_QUEUE_URL":     "embedded:?max_message_bytes=200&stream=CC_" + suffix + "&subject=cc." + suffix,
		"SEGPUB_CHANNEL_URL":       "file://" + t.TempDir() + "/{channel}.ndjson",
		"SEGPUB_MESSAGE_STORE_URL": "pg:cc_" + suffix,
		"SEGPUB_DATA_DIR":          t.TempDir(),
	})
	t.Cleanup(func() { dbtest.Exec(t, `DROP TABLE IF EXISTS "cc_`+suffix+`"`) })
	if len(data) <= 200 {
		t.Fatalf("job of %d bytes is not over the limit", len(data))
	}
	if code := Main(context.Background(), []string{"submit", "--job", string(jobPath)}, env); code != ExitOK {
		t.Fatalf("submit: %s", env.Stderr)
	}
	var out struct {
		ClaimCheck string `json:"claim_check"`
	}
	if err := json.Unmarshal(env.Stdout.(*syncBuffer).Bytes(), &out); err != nil || !strings.HasPrefix(out.ClaimCheck, "m-") {
		t.Fatalf("submit output %s", env.Stdout)
	}
	serveUntil(t, env, requestID)
}

// submit while serve is starting on the embedded default (serve holds the
// data directory's lock but its server is still recovering) waits for
// serve's server and queues the job there: it never starts a server of its
// own on the directory, where no worker would see the job.
func TestSubmitWhileServeStarts(t *testing.T) {
	t.Parallel()
	requestID, jobPath := seededJob(t)
	dataDir := t.TempDir()
	jsDir := filepath.Join(dataDir, "jetstream")
	if err := os.MkdirAll(jsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	serving, err := flock.TryLock(filepath.Join(jsDir, "server.lock"))
	if err != nil || serving == nil {
		t.Fatalf("lock: %v", err)
	}
	defer serving.Release()

	env := serviceEnv(map[string]string{"SEGPUB_DATA_DIR": dataDir})
	done := make(chan int, 1)
	go func() { done <- Main(context.Background(), []string{"submit", "--job", string(jobPath)}, env) }()
	// serve's server comes up a moment later (a window, not an assertion).
	time.Sleep(300 * time.Millisecond)
	srv, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		Authorization: "t0ken"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("server did not start")
	}
	if err := os.WriteFile(filepath.Join(jsDir, "server.token"), []byte("t0ken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(jsDir, "server.url"), []byte(srv.ClientURL()), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != ExitOK {
		t.Fatalf("submit: exit %d: %s", code, env.Stderr)
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Token("t0ken"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(context.Background(), "SEGPUB_JOBS")
	if err != nil {
		t.Fatalf("serve's server has no job stream: %v (submit queued %s elsewhere)", err, requestID)
	}
	if n := stream.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("serve's job stream holds %d jobs, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "jetstream")); err == nil {
		t.Errorf("submit started a JetStream of its own in %s", jsDir)
	}
}

package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
)

// The service path attacked from outside: `segpub serve` with its console,
// jobs put on its queue. The console's preview reads audiences through the
// worker's confined opener (a file outside SEGPUB_CSV_ROOT is refused by
// both, with the same words); the console answers only to its own host
// names; no log line carries a URL's password.
func TestHostileService(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	base := t.TempDir()
	root := filepath.Join(base, "csv")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(base, "secret.csv")
	if err := os.WriteFile(secret, []byte("email\nvictim@x.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const token = "hostile-console-token"
	env := serviceEnv(map[string]string{
		"SEGPUB_JOB_QUEUE_URL":   "embedded:?stream=HOSTJ&subject=hostile.jobs",
		"SEGPUB_DEAD_LETTER_URL": "embedded:?stream=HOSTD&subject=hostile.dead",
		"SEGPUB_CHANNEL_URL":     "file://" + t.TempDir() + "/{channel}.ndjson",
		"SEGPUB_DATA_DIR":        t.TempDir(),
		"SEGPUB_CSV_ROOT":        root,
		"SEGPUB_CONSOLE_ADDR":    "127.0.0.1:0",
		"SEGPUB_CONSOLE_TOKEN":   token,
		"SEGPUB_STATE_URL":       dbtest.IsolatedURL(t),
	})
	jobFor := func(id, audienceURL string) string {
		return fmt.Sprintf(`{"version":1,"action":"publish","request_id":%q,"project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"c","channel":"email","audience":{"type":"csv","url":%q},"message":{}}}`, id, tables.Project, audienceURL)
	}
	outID, pwID := "hostile-out-"+tables.Project, "hostile-pw-"+tables.Project
	for id, u := range map[string]string{outID: "file://" + secret, pwID: "file://ops:hunter2@files.example.invalid/a.csv"} {
		env.Stdin = strings.NewReader(jobFor(id, u))
		if code := Main(context.Background(), []string{"submit", "--job", "-"}, env); code != ExitOK {
			t.Fatalf("submit: %s", env.Stderr)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"serve", "--listen", "", "--scheduler=false"}, env) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	defer stop()
	var consoleURL string
	for deadline := time.Now().Add(30 * time.Second); consoleURL == ""; time.Sleep(50 * time.Millisecond) {
		if m := regexp.MustCompile(`serving the console" url=(http://\S+)/`).FindStringSubmatch(env.Stderr.(*syncBuffer).String()); m != nil {
			consoleURL = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no console:\n%s", env.Stderr)
		}
	}
	// The worker refuses both jobs.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st := serviceEnv(map[string]string{"SEGPUB_STATE_URL": env.Getenv("SEGPUB_STATE_URL")})
		Main(context.Background(), []string{"status", outID}, st)
		Main(context.Background(), []string{"status", pwID}, st)
		if strings.Count(st.Stdout.(*syncBuffer).String(), `"status":"rejected"`) == 2 {
			if out := st.Stdout.(*syncBuffer).String(); !strings.Contains(out, "outside the CSV directory") || strings.Contains(out, "hunter2") {
				t.Fatalf("worker's refusal, as status shows it: %s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs not rejected:\n%s", env.Stderr)
		}
	}
	// The preview refuses the same file with the worker's words, and a
	// file that does not exist with the same words.
	preview := func(u string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, consoleURL+"/preview", strings.NewReader(url.Values{"job": {jobFor("pv", u)}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, page := preview("file://" + secret)
	if code != http.StatusUnprocessableEntity || strings.Contains(page, "victim") || !strings.Contains(page, "outside the CSV directory") {
		t.Fatalf("preview of a file outside the CSV directory: %d\n%s", code, page)
	}
	if _, missing := preview("file://" + secret + ".none"); !strings.Contains(missing, "outside the CSV directory") {
		t.Fatalf("preview of a missing file tells it is missing:\n%s", missing)
	}
	// Another host name: refused before anything runs.
	req, _ := http.NewRequest(http.MethodGet, consoleURL+"/runs", nil)
	req.Host = "rebound.evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("Host rebound.evil.example: %d", resp.StatusCode)
	}
	stop()
	log := env.Stderr.(*syncBuffer).String()
	if strings.Contains(log, "hunter2") || !strings.Contains(log, "ops:***@files.example.invalid") {
		t.Fatalf("the log shows the URL's password, or not the URL:\n%s", log)
	}
	if !strings.HasPrefix(DefaultListen, "127.0.0.1:") {
		t.Fatalf("/metrics listens on %s by default", DefaultListen)
	}
}

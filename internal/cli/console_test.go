package cli

import (
	"context"
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

// `segpub console` serves the console against the service's databases and
// never shows a database password or the token.
func TestConsoleCommand(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(dbtest.IsolatedURL(t))
	if err != nil {
		t.Fatal(err)
	}
	// The test server trusts local connections: the password is only
	// something the page must not show.
	u.User = url.UserPassword(u.User.Username(), "pw-that-must-not-show")
	dataDir := t.TempDir()
	env := serviceEnv(map[string]string{
		"SEGPUB_STATE_URL":     u.String(),
		"SEGPUB_CONSOLE_ADDR":  "127.0.0.1:0",
		"SEGPUB_CONSOLE_TOKEN": "token-that-must-not-show",
		"SEGPUB_DATA_DIR":      dataDir,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"console"}, env) }()
	defer func() {
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("console exited %d: %s", code, env.Stderr)
		}
	}()
	addr := regexp.MustCompile(`console: (http://\S+)`)
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(50 * time.Millisecond) {
		if m := addr.FindStringSubmatch(env.Stdout.(*syncBuffer).String()); m != nil {
			base = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no console URL: %s %s", env.Stdout, env.Stderr)
		}
	}
	for _, page := range []string{"runs", "campaigns", "dead-letters", "preview"} {
		resp, err := http.Get(base + page)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", page, resp.StatusCode, body)
		}
		for _, secret := range []string{"pw-that-must-not-show", "token-that-must-not-show"} {
			if strings.Contains(string(body), secret) {
				t.Fatalf("%s shows a secret", page)
			}
		}
		if !strings.Contains(string(body), "state: postgres@") {
			t.Fatalf("%s does not name the state database", page)
		}
	}
	// Read only, it opened no job queue: no embedded JetStream started.
	if _, err := os.Stat(filepath.Join(dataDir, "jetstream")); err == nil {
		t.Fatal("the console started an embedded JetStream without an action that needs it")
	}
}

// serve has no console unless asked; its settings are listed.
func TestConsoleSettingsInHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "console", "demo"} {
		r := run(t, "", cmd, "-h")
		if r.code != ExitOK || !strings.Contains(r.stdout, "--console-addr") || !strings.Contains(r.stdout, "$SEGPUB_CONSOLE_TOKEN") {
			t.Fatalf("%s -h: %d %s", cmd, r.code, r.stdout)
		}
	}
	if r := run(t, "", "serve", "-h"); strings.Contains(r.stdout, "127.0.0.1:8080") {
		t.Fatal("serve has a console address by default")
	}
}

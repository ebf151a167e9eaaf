package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/msgstore/pgstore"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/worker"
)

// browser is a client with a cookie jar that does not follow redirects.
func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends a request and returns its status, body and response.
func do(t *testing.T, c *http.Client, req *http.Request) (int, string, *http.Response) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp
}

func form(method, u string, v url.Values) *http.Request {
	req, _ := http.NewRequest(method, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// signIn signs c in and returns the CSRF value of its forms.
func (f *fixture) signIn(t *testing.T, c *http.Client) string {
	t.Helper()
	if code, body, _ := do(t, c, form(http.MethodPost, f.srv.URL+"/login", url.Values{"token": {testToken}})); code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/preview", nil)
	_, page, _ := do(t, c, req)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("signed in, no CSRF value:\n%s", page)
	}
	return m[1]
}

// A page elsewhere that rebinds its own name to the console's address (DNS
// rebinding) reaches it with its own Host: every path is refused before
// anything runs, POSTs that look same-origin included.
func TestHostileHostHeader(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	f.claim(t, "r-host")
	c := browser()
	for _, host := range []string{"evil.example", "evil.example:80", "127.0.0.1.evil.example", "localhost.evil.example", "[::2]"} {
		for _, req := range []*http.Request{
			mustRequest(http.MethodGet, f.srv.URL+"/runs", nil),
			mustRequest(http.MethodGet, f.srv.URL+"/static/console.css", nil),
			form(http.MethodPost, f.srv.URL+"/preview", url.Values{"job": {"{}"}}),
			form(http.MethodPost, f.srv.URL+"/login", url.Values{"token": {testToken}}),
			form(http.MethodPost, f.srv.URL+"/runs/r-host/pause", nil),
		} {
			req.Host = host
			req.Header.Set("Origin", "http://"+host)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			req.Header.Set("Authorization", "Bearer "+testToken)
			code, body, resp := do(t, c, req)
			if code != http.StatusMisdirectedRequest || strings.Contains(body, "r-host") || len(resp.Cookies()) > 0 {
				t.Errorf("%s %s with Host %q: %d %s", req.Method, req.URL.Path, host, code, body)
			}
		}
	}
	if control, _ := f.con.led.StopRequested(context.Background(), "r-host"); control != "" {
		t.Fatal("a request for another host paused the run")
	}
	// The console's own names answer, any port.
	for _, host := range []string{"localhost:9", "127.0.0.1", "LOCALHOST", "[::1]:8080"} {
		req := mustRequest(http.MethodGet, f.srv.URL+"/runs", nil)
		req.Host = host
		if code, _, _ := do(t, c, req); code != http.StatusOK {
			t.Errorf("Host %q: %d", host, code)
		}
	}
}

func mustRequest(method, u string, body io.Reader) *http.Request {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		panic(err)
	}
	return req
}

// The preview reads audiences as the worker does, through the opener its
// caller gives it: a CSV audience outside the CSV directory is refused
// with the same words whether the file exists or not, and no row of it is
// shown. GET runs no query.
func TestHostilePreviewFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "ok.csv"), []byte("external_user_id\nu1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret.csv")
	if err := os.WriteFile(outside, []byte("external_user_id,email\nvictim,victim@example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link.csv")); err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, Config{Token: testToken, Audience: publish.Config{Pool: dbtest.Pool(t),
		Open: publish.FileOpener{Confined: true, Root: root}.Open}}, nil)
	c := browser()
	csrf := f.signIn(t, c)
	preview := func(u string) (int, string) {
		jobText := fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r-pv","project_id":"p1","campaign":{"id":"c","channel":"email",
"audience":{"type":"csv","url":%q},"message":{"s":"hi"}}}`, u)
		code, body, _ := do(t, c, form(http.MethodPost, f.srv.URL+"/preview", url.Values{"job": {jobText}, csrfField: {csrf}}))
		return code, body
	}
	errorOf := func(page string) string {
		m := regexp.MustCompile(`id="error">([^<]*)<`).FindStringSubmatch(page)
		if m == nil {
			return ""
		}
		return m[1]
	}
	var said []string
	for _, u := range []string{"file://" + outside, "file://" + outside + ".missing", "file:///etc/passwd", "file:///no/such/dir/x.csv",
		"file://" + root + "/../" + filepath.Base(filepath.Dir(outside)) + "/secret.csv", "file://" + root + "/link.csv", "file://host" + outside} {
		code, page := preview(u)
		msg := errorOf(page)
		if code != http.StatusUnprocessableEntity || msg == "" || strings.Contains(page, "victim") || strings.Contains(page, "root:") {
			t.Errorf("preview of %s: %d %q", u, code, msg)
		}
		said = append(said, strings.ReplaceAll(msg, u, "URL"))
	}
	// Whether the file exists is not told: the same words for both.
	if said[0] != said[1] || said[2] != said[3] || strings.Contains(said[0], "no such file") {
		t.Errorf("the refusals differ by the file's existence: %q", said)
	}
	// GET with a job in the query runs nothing.
	req := mustRequest(http.MethodGet, f.srv.URL+"/preview?job="+url.QueryEscape(`{"version":1}`)+"&campaign=c", nil)
	if code, page, _ := do(t, c, req); code != http.StatusOK || strings.Contains(page, "rejected") || strings.Contains(page, "preview-result") {
		t.Errorf("GET /preview ran something: %d", code)
	}
}

// With a token set, the preview and dead-letter bodies (people's
// addresses, tokens) need a signed-in session; a POST without the
// session's CSRF value runs nothing.
func TestHostilePersonalDataNeedsSignIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	rec, err := NewRecorder(ctx, RecorderConfig{Pool: f.state, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	jobBody := `{"version":1,"action":"publish","request_id":"r-pd","project_id":"p1","campaign":{"id":"c","channel":"email","audience":{"type":"user_ids","user_ids":["victim@example.com"]},"message":{"s":"x"}}}`
	dl, _ := json.Marshal(worker.DeadLetter{Reason: "failed", Kind: "exhausted", Attempts: 5, RequestID: "r-pd", FailedAt: time.Now().UTC(), Job: json.RawMessage(jobBody)})
	if err := rec.DeadLetters(&sentQueue{}).Send(ctx, dl, ""); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := f.state.QueryRow(ctx, `SELECT id FROM segpub_dead_letters WHERE request_id = 'r-pd'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	anon := browser()
	for _, req := range []*http.Request{
		mustRequest(http.MethodGet, fmt.Sprintf("%s/dead-letters/%d", f.srv.URL, id), nil),
		mustRequest(http.MethodGet, f.srv.URL+"/dead-letters", nil),
		mustRequest(http.MethodGet, f.srv.URL+"/preview", nil),
	} {
		if code, page, _ := do(t, anon, req); code != http.StatusOK || strings.Contains(page, "victim@example.com") {
			t.Errorf("%s without a session: %d, shows the address: %v", req.URL.Path, code, strings.Contains(page, "victim"))
		}
	}
	if code, page, _ := do(t, anon, form(http.MethodPost, f.srv.URL+"/preview", url.Values{"job": {jobBody}})); code != http.StatusForbidden || strings.Contains(page, "preview-result") {
		t.Errorf("preview without a session: %d", code)
	}
	signed := browser()
	csrf := f.signIn(t, signed)
	if code, page, _ := do(t, signed, form(http.MethodPost, f.srv.URL+"/preview", url.Values{"job": {jobBody}})); code != http.StatusForbidden || strings.Contains(page, "preview-result") {
		t.Errorf("signed-in preview without its CSRF value: %d", code)
	}
	_ = csrf
	code, page, _ := do(t, signed, mustRequest(http.MethodGet, fmt.Sprintf("%s/dead-letters/%d", f.srv.URL, id), nil))
	if code != http.StatusOK || !strings.Contains(page, "victim@example.com") || !strings.Contains(page, `id="dl-body"`) {
		t.Errorf("signed-in dead letter: %d %s", code, page)
	}
	// Without a token at all, nobody sees the body.
	open := newFixture(t, "")
	orec, _ := NewRecorder(ctx, RecorderConfig{Pool: open.state, Retention: time.Hour})
	if err := orec.DeadLetters(&sentQueue{}).Send(ctx, dl, ""); err != nil {
		t.Fatal(err)
	}
	if err := open.state.QueryRow(ctx, `SELECT id FROM segpub_dead_letters WHERE request_id = 'r-pd'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if code, page := open.get(t, fmt.Sprintf("/dead-letters/%d", id)); code != http.StatusOK || strings.Contains(page, "victim") || !strings.Contains(page, `id="dl-withheld"`) {
		t.Errorf("tokenless dead letter: %d %s", code, page)
	}
}

// Sessions: signing out revokes the session on the server (a copy of the
// cookie is worth nothing), a session expires after its lifetime, wrong
// tokens are limited per client, and a cookie set behind a trusted TLS
// proxy is Secure.
func TestHostileSessions(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now()}
	f := newFixtureWith(t, Config{Token: testToken, SessionLifetime: time.Hour, Now: clock.now, TrustProxy: true}, nil)
	f.claim(t, "r-sess")
	signed := browser()
	csrf := f.signIn(t, signed)
	u, _ := url.Parse(f.srv.URL)
	stolen := signed.Jar.Cookies(u)
	if code, _, _ := do(t, signed, form(http.MethodPost, f.srv.URL+"/logout", url.Values{"back": {"/runs"}})); code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", code)
	}
	replayer := browser()
	replayer.Jar.SetCookies(u, stolen)
	if code, _, _ := do(t, replayer, form(http.MethodPost, f.srv.URL+"/runs/r-sess/pause", url.Values{csrfField: {csrf}})); code != http.StatusForbidden {
		t.Errorf("a signed-out session's cookie paused a run: %d", code)
	}
	// Expiry.
	late := browser()
	csrf = f.signIn(t, late)
	clock.add(time.Hour + time.Second)
	if code, _, _ := do(t, late, form(http.MethodPost, f.srv.URL+"/runs/r-sess/pause", url.Values{csrfField: {csrf}})); code != http.StatusForbidden {
		t.Errorf("an expired session paused a run: %d", code)
	}
	if control, _ := f.con.led.StopRequested(context.Background(), "r-sess"); control != "" {
		t.Fatal("the run was paused")
	}
	// Secure behind a proxy that says TLS; the cookie's lifetime is said.
	req := form(http.MethodPost, f.srv.URL+"/login", url.Values{"token": {testToken}})
	req.Header.Set("X-Forwarded-Proto", "https")
	_, _, resp := do(t, browser(), req)
	if cks := resp.Cookies(); len(cks) != 1 || !cks[0].Secure || cks[0].MaxAge != 3600 {
		t.Errorf("cookie behind a TLS proxy: %+v", cks)
	}
	// Guessing: after a few wrong tokens, even the right one is refused
	// for a while; another client is not.
	guesser := browser()
	for range signInFailures {
		req := form(http.MethodPost, f.srv.URL+"/login", url.Values{"token": {"guess"}})
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		if code, _, _ := do(t, guesser, req); code != http.StatusForbidden {
			t.Fatalf("wrong token: %d", code)
		}
	}
	req = form(http.MethodPost, f.srv.URL+"/login", url.Values{"token": {testToken}})
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	if code, _, resp := do(t, guesser, req); code != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || len(resp.Cookies()) > 0 {
		t.Errorf("sign-in after %d wrong tokens: %d", signInFailures, code)
	}
	req = form(http.MethodPost, f.srv.URL+"/login", url.Values{"token": {testToken}})
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	if code, _, _ := do(t, browser(), req); code != http.StatusSeeOther {
		t.Errorf("another client's sign-in: %d", code)
	}
	clock.add(signInWindow)
	req = form(http.MethodPost, f.srv.URL+"/login", url.Values{"token": {testToken}})
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	if code, _, _ := do(t, guesser, req); code != http.StatusSeeOther {
		t.Errorf("sign-in after the window: %d", code)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Every request body is bounded, sign-out's and sign-in's too: a large
// multipart body is refused, never spooled to disk.
func TestHostileBodies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	big := func() (*bytes.Buffer, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		fw, _ := mw.CreateFormFile("back", "x.bin")
		_, _ = fw.Write(bytes.Repeat([]byte("A"), 5<<20))
		_ = mw.Close()
		return &b, mw.FormDataContentType()
	}
	for _, path := range []string{"/logout", "/login", "/preview", "/runs/x/pause", "/dead-letters/1/replay"} {
		body, ctype := big()
		req := mustRequest(http.MethodPost, f.srv.URL+path, body)
		req.Header.Set("Content-Type", ctype)
		if code, _, _ := do(t, browser(), req); code != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s with 5 MiB: %d", path, code)
		}
		// Without a length (chunked): cut off at the bound.
		body, ctype = big()
		pr, pw := io.Pipe()
		go func() { _, _ = io.Copy(pw, body); pw.Close() }()
		req = mustRequest(http.MethodPost, f.srv.URL+path, pr)
		req.Header.Set("Content-Type", ctype)
		resp, err := browser().Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("chunked POST %s with 5 MiB: %d", path, resp.StatusCode)
			}
		}
		pr.Close()
	}
}

// back leads only to a page of the console: what a browser would read as
// another site (a scheme, //host, a backslash, tabs and newlines it
// drops, control characters) goes to the runs page.
func TestHostileBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	for _, b := range []string{"/\t/evil.example/x", "/\\evil.example", "//evil.example", "/\n/evil.example", "/\r/evil.example", "\t//evil.example",
		"https://evil.example/", "javascript:alert(1)", "/%0a", "/ok\x00", "/\u202e/x", "///evil.example", "/\\/evil.example", "evil.example"} {
		req := form(http.MethodPost, f.srv.URL+"/logout", url.Values{"back": {b}})
		code, _, resp := do(t, browser(), req)
		loc := resp.Header.Get("Location")
		if code != http.StatusSeeOther || (loc != "/runs" && b != "/%0a") || strings.ContainsAny(loc, "\\\t\r\n") || strings.HasPrefix(loc, "//") {
			t.Errorf("back %q: %d to %q", b, code, loc)
		}
	}
}

// Ids enter URLs path-escaped, and bidirectional controls in them are
// shown escaped: the Pause button of run "y/cancel?" pauses that run, not
// cancels run "y", and "\u202e" never reaches the page raw.
func TestHostileIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	evil, victim, bidi := "y/cancel?", "y", "r-\u202egnp.exe"
	for _, id := range []string{evil, victim, bidi, "r#frag"} {
		f.claim(t, id)
	}
	c := browser()
	f.signIn(t, c)
	_, page, _ := do(t, c, mustRequest(http.MethodGet, f.srv.URL+"/runs/"+url.PathEscape(evil), nil))
	m := regexp.MustCompile(`action="([^"]+/pause)"`).FindStringSubmatch(page)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil || csrf == nil {
		t.Fatalf("no pause form:\n%s", page)
	}
	if code, _, _ := do(t, c, form(http.MethodPost, f.srv.URL+m[1], url.Values{csrfField: {csrf[1]}})); code != http.StatusSeeOther {
		t.Fatalf("pause at %s: %d", m[1], code)
	}
	if got, _ := f.con.led.StopRequested(ctx, evil); got != "pause" {
		t.Errorf("run %q: %q requested", evil, got)
	}
	if got, _ := f.con.led.StopRequested(ctx, victim); got != "" {
		t.Errorf("run %q: %q requested by the form of %q", victim, got, evil)
	}
	_, list, _ := do(t, c, mustRequest(http.MethodGet, f.srv.URL+"/runs", nil))
	for _, want := range []string{`href="/runs/y%2Fcancel%3F"`, `href="/runs/r%23frag"`, `r-\u202Egnp.exe`} {
		if !strings.Contains(list, want) {
			t.Errorf("runs page lacks %s", want)
		}
	}
	for _, page := range []string{list, page} {
		if strings.ContainsAny(page, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c") {
			t.Error("a page shows a bidirectional control raw")
		}
	}
	if code, page, _ := do(t, c, mustRequest(http.MethodGet, f.srv.URL+"/runs/"+url.PathEscape("r#frag"), nil)); code != http.StatusOK || !strings.Contains(page, "r#frag") {
		t.Errorf("run r#frag: %d", code)
	}
}

// Dead letters PostgreSQL cannot hold as JSON (a NUL, bad UTF-8, a number
// past numeric's range, a NUL in the request_id) are recorded anyway and
// shown escaped; one that came as a claim check is replayed with its job.
func TestHostileDeadLetters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := pgstore.New(ctx, dbtest.Pool(t), "segpub_test_console_messages")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, Config{Token: testToken}, store)
	rec, err := NewRecorder(ctx, RecorderConfig{Pool: f.state, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dq := rec.DeadLetters(&sentQueue{})
	bodies := map[string][]byte{
		"nul":    []byte(`{"version":1,"request_id":"r-nul","x":"a\u0000b"}`),
		"utf8":   []byte("{\"version\":1,\"request_id\":\"r-utf8\",\"x\":\"\xff\xfe\"}"),
		"number": []byte(`{"version":1,"request_id":"r-num","x":1e999999}`),
		"rid":    []byte(`{"version":1,"request_id":"r-\u0000-rid"}`),
	}
	for name, b := range bodies {
		dl, err := json.Marshal(worker.DeadLetter{Reason: "rejected: " + name + " \x00\xff", Kind: "rejected", Attempts: 1,
			RequestID: map[string]string{"rid": "r-\x00-rid", "utf8": "r-utf8\xff"}[name], FailedAt: time.Now().UTC(), Job: b})
		if err != nil {
			t.Fatal(err)
		}
		if err := dq.Send(ctx, dl, ""); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := f.state.QueryRow(ctx, `SELECT count(*) FROM segpub_dead_letters`).Scan(&n); err != nil || n != len(bodies) {
		t.Fatalf("%d dead letters recorded of %d: %v", n, len(bodies), err)
	}
	c := browser()
	f.signIn(t, c)
	code, list, _ := do(t, c, mustRequest(http.MethodGet, f.srv.URL+"/dead-letters", nil))
	if code != http.StatusOK || strings.Count(list, `class="dead-letter"`) != len(bodies) {
		t.Fatalf("dead letters page: %d\n%s", code, list)
	}
	for _, m := range regexp.MustCompile(`href="/dead-letters/(\d+)"`).FindAllStringSubmatch(list, -1) {
		code, page, _ := do(t, c, mustRequest(http.MethodGet, f.srv.URL+"/dead-letters/"+m[1], nil))
		if code != http.StatusOK || !strings.Contains(page, `id="dl-body"`) || strings.ContainsRune(page, 0) || !strings.Contains(page, `request_id`) {
			t.Errorf("dead letter %s: %d\n%s", m[1], code, page)
		}
	}
	// A claim-checked job: the dead letter holds its envelope.
	full := []byte(`{"version":1,"action":"publish","request_id":"r-cc","project_id":"p1","campaign":{"id":"c","channel":"email","audience":{"type":"all"},"message":{"s":"x"}}}`)
	if err := store.Put(ctx, "m-cc-console", full); err != nil {
		t.Fatal(err)
	}
	dl, _ := json.Marshal(worker.DeadLetter{Reason: "exhausted", Kind: "exhausted", Attempts: 5, RequestID: "r-cc", FailedAt: time.Now().UTC(),
		Job: json.RawMessage(`{"version":1,"message_id":"m-cc-console"}`)})
	if err := dq.Send(ctx, dl, ""); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := f.state.QueryRow(ctx, `SELECT id FROM segpub_dead_letters WHERE request_id = 'r-cc'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if code, body := f.post(t, fmt.Sprintf("/dead-letters/%d/replay", id), testToken, nil, nil); code != http.StatusSeeOther {
		t.Fatalf("replay of a claim check: %d %s", code, body)
	}
	sent := f.jobs.sent()
	if len(sent) != 1 {
		t.Fatalf("%d jobs sent", len(sent))
	}
	j, err := job.Parse(sent[0])
	if err != nil || !strings.HasPrefix(j.RequestID, "r-cc.replay-") || j.Campaign.ID != "c" {
		t.Fatalf("replayed job %s: %v", sent[0], err)
	}
}

// A link elsewhere cannot make a console page say what it likes: only the
// signed message of an action's own redirect is shown.
func TestHostileFlash(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	f.claim(t, "r-flash")
	if _, page := f.get(t, "/runs?done="+url.QueryEscape("Your session expired: sign in at evil.example")); strings.Contains(page, `id="flash"`) {
		t.Fatal("an unsigned message is shown")
	}
	code, _ := f.post(t, "/runs/r-flash/pause", testToken, nil, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("pause: %d", code)
	}
	req := form(http.MethodPost, f.srv.URL+"/runs/r-flash/cancel", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	_, _, resp := do(t, browser(), req)
	loc := resp.Header.Get("Location")
	if _, page := f.get(t, loc); !strings.Contains(page, `id="flash">cancel requested<`) {
		t.Fatalf("the action's own message at %s is not shown", loc)
	}
}

package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/cli"
	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

const e2eToken = "e2e-console-token"

// chromium finds a Chromium or Chrome binary: $SEGPUB_CHROMIUM, then the
// usual names on PATH.
func chromium() string {
	if p := os.Getenv("SEGPUB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// logBuffer is serve's standard output and error, read while it writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// project seeds a project of n users, dropped when the test ends.
func project(t *testing.T, n int) string {
	t.Helper()
	pool := dbtest.Pool(t)
	tables, _ := schema.For(dbtest.NewProjectID())
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if n > 0 {
		if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: tables.Project, Users: n}); err != nil {
			t.Fatal(err)
		}
	}
	return tables.Project
}

func jobFile(t *testing.T, requestID, projectID string) string {
	t.Helper()
	body := fmt.Sprintf(`{"version":1,"action":"publish","request_id":%q,"project_id":%q,"scheduled_at":"2026-12-01T18:00:00+09:00",
"campaign":{"id":"cmp_%s","channel":"email","audience":{"type":"all"},"experiment_id":"exp_ab","message":{"s":"hi"},
"throttle":{"max_per_interval":300,"interval_minutes":10}}}`, requestID, projectID, requestID)
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// e2e is serve with its console, and a browser on it.
type e2e struct {
	t    *testing.T
	vars map[string]string
	url  string
	log  *logBuffer
	tab  context.Context
	shot string
}

func (e *e2e) env() *cli.Env {
	return &cli.Env{Stdin: strings.NewReader(""), Stdout: &logBuffer{}, Stderr: &logBuffer{}, Getenv: func(k string) string { return e.vars[k] }}
}

// segpub runs a command against the service's settings and returns its
// output.
func (e *e2e) segpub(args ...string) string {
	e.t.Helper()
	env := e.env()
	if code := cli.Main(context.Background(), args, env); code != cli.ExitOK {
		e.t.Fatalf("segpub %v: exit %d: %s", args, code, env.Stderr)
	}
	return env.Stdout.(*logBuffer).String()
}

func (e *e2e) status(requestID string) *ledger.Run {
	e.t.Helper()
	var r ledger.Run
	if err := json.Unmarshal([]byte(e.segpub("status", requestID)), &r); err != nil {
		e.t.Fatal(err)
	}
	return &r
}

func (e *e2e) do(actions ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	if err := chromedp.Do(e.tab, actions...); err != nil {
		e.t.Fatalf("browser: %v\nserve log:\n%s", err, e.log)
	}
}

func (e *e2e) text(sel string) string {
	e.t.Helper()
	s, err := chromedp.Run(e.tab, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		e.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// until waits for a JavaScript predicate to hold on the page. A poll cut
// short by a navigation (a form just submitted) is polled again on the new
// page.
func (e *e2e) until(what, predicate string) {
	e.t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		err := chromedp.Do(e.tab, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingInterval(100*time.Millisecond),
			chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return
		}
		if time.Now().Before(deadline) && e.tab.Err() == nil && !strings.Contains(err.Error(), "timeout") {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		html, _ := chromedp.Run(e.tab, chromedp.OuterHTML(chromedp.CSS("main")))
		e.t.Fatalf("waiting for %s: %v\npage:\n%s\nserve log:\n%s", what, err, html, e.log)
	}
}

// submit clicks a form's button and waits until the page it leads to
// satisfies predicate (the old page is marked, so it cannot).
func (e *e2e) submit(button, what, predicate string) {
	e.t.Helper()
	e.do(chromedp.Evaluate[chromedp.Void](`window.oldPage = true`), chromedp.Click(chromedp.CSS(button)))
	e.until(what, `window.oldPage === undefined && document.readyState === "complete" && (`+predicate+`)`)
}

// textIs is a predicate: the element's text is want.
func textIs(sel, want string) string {
	return fmt.Sprintf(`(document.querySelector(%q) || {}).textContent === %q`, sel, want)
}

// screenshot saves the page as docs/img/console-NAME.png when
// SEGPUB_CONSOLE_SCREENSHOTS names the directory.
func (e *e2e) screenshot(name string) {
	e.t.Helper()
	if e.shot == "" {
		return
	}
	png, err := chromedp.Run(e.tab, chromedp.FullScreenshot(100))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.shot, "console-"+name+".png"), png, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// counts is what the run page shows of a finished run.
func (e *e2e) pageCounts() (candidates, published int64, skipped map[string]int64) {
	e.t.Helper()
	num := func(s string) int64 {
		n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
		if err != nil {
			e.t.Fatalf("not a count: %q", s)
		}
		return n
	}
	raw, err := chromedp.Run(e.tab, chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelectorAll("[data-reason]")].map(td => [td.dataset.reason, td.textContent]))`))
	if err != nil {
		e.t.Fatal(err)
	}
	skipped = map[string]int64{}
	for k, v := range raw {
		skipped[k] = num(v)
	}
	return num(e.text("#candidates")), num(e.text("#published")), skipped
}

// sameAsStatus checks that the run page shows what `segpub status` reports.
func (e *e2e) sameAsStatus(requestID string) {
	e.t.Helper()
	run := e.status(requestID)
	var res publish.Result
	if err := json.Unmarshal(run.Result, &res); err != nil {
		e.t.Fatalf("status of %s has no result: %s", requestID, run.Result)
	}
	c, p, skipped := e.pageCounts()
	if c != run.Candidates || p != run.Published || c != res.Candidates || p != res.Published {
		e.t.Fatalf("page shows %d candidates, %d published; status: %d, %d (result %d, %d)", c, p, run.Candidates, run.Published, res.Candidates, res.Published)
	}
	b, _ := json.Marshal(res.Skipped)
	var want map[string]int64
	_ = json.Unmarshal(b, &want)
	if fmt.Sprint(skipped) != fmt.Sprint(want) {
		e.t.Fatalf("page shows skipped %v; status %v", skipped, want)
	}
	if p == 0 {
		e.t.Fatal("the run published nothing: the comparison proves little")
	}
}

// TestConsoleInBrowser starts serve with the console on an embedded
// JetStream and the test PostgreSQL, submits jobs, and checks what a person
// sees in headless Chromium.
func TestConsoleInBrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium found (install Debian's chromium package, or set SEGPUB_CHROMIUM): the console's browser test needs one")
	}
	t.Parallel()
	shots := os.Getenv("SEGPUB_CONSOLE_SCREENSHOTS")
	if shots != "" && !filepath.IsAbs(shots) {
		// Relative to the repository, not to this package's directory.
		shots = filepath.Join("..", "..", shots)
	}
	fast := project(t, 2000)
	blocked := project(t, 300)
	e := &e2e{t: t, log: &logBuffer{}, shot: shots, vars: map[string]string{
		"SEGPUB_DATABASE_URL":  dbtest.URL(),
		"SEGPUB_STATE_URL":     dbtest.IsolatedURL(t),
		"SEGPUB_DATA_DIR":      t.TempDir(),
		"SEGPUB_CONSOLE_ADDR":  "127.0.0.1:0",
		"SEGPUB_CONSOLE_TOKEN": e2eToken,
		"SEGPUB_SCHEDULER":     "off",
		// Heartbeats every second: a stop request is seen quickly.
		"SEGPUB_LEASE": "3s",
	}}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan int, 1)
	go func() {
		served <- cli.Main(ctx, []string{"serve", "--listen", ""}, &cli.Env{Stdin: strings.NewReader(""), Stdout: e.log, Stderr: e.log,
			Getenv: func(k string) string { return e.vars[k] }})
	}()
	t.Cleanup(func() {
		stop()
		if code := <-served; code != cli.ExitOK {
			t.Errorf("serve exited %d", code)
		}
	})
	consoleURL := regexp.MustCompile(`serving the console" url=(http://\S+)`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m := consoleURL.FindStringSubmatch(e.log.String()); m != nil {
			e.url = strings.TrimSuffix(m[1], "/")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start its console:\n%s", e.log)
		}
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	tab, cancelTimeout := context.WithTimeout(tab, 90*time.Second)
	defer cancelTimeout()
	e.tab = tab

	// The runs page is open when a job arrives: the run appears, and ends
	// completed, without the page being reloaded.
	okID := "e2e-ok-" + fast
	e.do(chromedp.Navigate(e.url+"/runs"), chromedp.WaitVisible(chromedp.CSS("#group-running")))
	if n, _ := chromedp.Run(e.tab, chromedp.Evaluate[int](`document.querySelectorAll("tr.run").length`)); n != 0 {
		t.Fatalf("%d runs listed before any was submitted", n)
	}
	e.do(chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	e.segpub("submit", "--job", jobFile(t, okID, fast))
	e.until("the run in the completed section", fmt.Sprintf(`!!document.querySelector('#group-completed tr[data-request-id=%q]')`, okID))
	if v, _ := chromedp.Run(e.tab, chromedp.Evaluate[bool](`window.notReloaded === true`)); !v {
		t.Fatal("the page was reloaded")
	}
	// Its page shows what `segpub status` reports.
	e.submit(fmt.Sprintf(`tr[data-request-id=%q] a`, okID), "the run page", `!!document.querySelector("#run-status")`)
	e.until("the completed status", textIs("#run-status", "completed"))
	e.sameAsStatus(okID)
	if n, _ := chromedp.Run(e.tab, chromedp.Evaluate[int](`document.querySelectorAll("#waves tbody tr").length`)); n < 2 {
		t.Fatalf("%d waves listed for a throttled run", n)
	}
	e.screenshot("run")

	// A run that blocks on a lock of its audience table: running, then
	// paused from the browser.
	lock, err := dbtest.Pool(t).Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(context.Background()) }()
	tables, _ := schema.For(blocked)
	if _, err := lock.Exec(context.Background(), `LOCK TABLE `+tables.User+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	pauseID := "e2e-pause-" + blocked
	e.segpub("submit", "--job", jobFile(t, pauseID, blocked))
	e.do(chromedp.Navigate(e.url + "/runs/" + pauseID))
	for i := 0; ; i++ {
		// The run has no row until a worker claims it.
		ok, _ := chromedp.Run(e.tab, chromedp.Evaluate[bool](`!!document.querySelector("#run-status")`))
		if ok {
			break
		}
		if i > 200 {
			t.Fatalf("the run never appeared:\n%s", e.log)
		}
		time.Sleep(100 * time.Millisecond)
		e.do(chromedp.Reload())
	}
	e.until("the running status", textIs("#run-status", "running"))
	// Without the token the buttons are disabled, saying why; a pause
	// posted anyway is refused, and nothing changes.
	if ok, _ := chromedp.Run(e.tab, chromedp.Evaluate[bool](`document.querySelector("#pause").disabled && document.querySelector("#cancel").disabled &&
		document.querySelector("#pause").title.includes("sign in") && document.querySelector("#actions-why").textContent.includes("sign in")`)); !ok {
		t.Fatal("Pause and Cancel are not disabled, with why, before signing in")
	}
	e.screenshot("run-signed-out")
	e.do(chromedp.Evaluate[chromedp.Void](`window.oldPage = true; document.querySelector("#pause").form.submit()`))
	e.until("the refusal", `window.oldPage === undefined && document.readyState === "complete" && !!document.querySelector("#error")`)
	if msg := e.text("#error"); !strings.Contains(msg, "needs the console token") {
		t.Fatalf("refusal says %q", msg)
	}
	e.screenshot("refused")
	if st := e.status(pauseID).Status; st != ledger.Running {
		t.Fatalf("after a refused pause the run is %s", st)
	}
	// Signed in, the pause takes effect: the page shows paused.
	e.do(chromedp.Navigate(e.url+"/runs/"+pauseID), chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS(`#login input[name="token"]`), e2eToken))
	e.submit(`#login button`, "the sign-in", `!!document.querySelector("#signed-in")`)
	if html, _ := chromedp.Run(e.tab, chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, e2eToken) {
		t.Fatal("the page shows the console token")
	}
	e.submit("#pause", "the pause request", `!!document.querySelector("#flash")`)
	e.until("the paused status", textIs("#run-status", "paused"))
	if st := e.status(pauseID); st.Status != ledger.Paused || e.text("#published") != fmt.Sprint(st.Published) {
		t.Fatalf("the page shows paused with %s published; status says %s with %d", e.text("#published"), st.Status, st.Published)
	}
	pausedAt := e.text("#published")
	// Resumed once the table is free, it completes with the counts of
	// `segpub status`.
	if err := lock.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.submit("#resume", "the resume request", `!!document.querySelector("#flash")`)
	e.until("the resumed run's completion", textIs("#run-status", "completed"))
	e.sameAsStatus(pauseID)
	// Its progress advanced from where it paused.
	if done := e.text("#published"); done == pausedAt {
		t.Fatalf("published %s when paused and when completed", done)
	}
	// Its chart ends at the page's count, and its second attempt started
	// from what the first had published, not 0/0.
	if ok, _ := chromedp.Run(e.tab, chromedp.Evaluate[bool](`[...document.querySelectorAll(".charts svg text")].some(t => t.textContent === document.querySelector("#published").textContent)`)); !ok {
		t.Fatalf("the throughput chart does not reach the page's %s", e.text("#published"))
	}
	e.screenshot("run-resumed")

	// A job for a project not in the database yet is rejected and
	// dead-lettered; once the project exists, a replay from the browser
	// runs it under a new request_id.
	late := dbtest.NewProjectID()
	deadID := "e2e-dead-" + late
	e.segpub("submit", "--job", jobFile(t, deadID, late))
	row := fmt.Sprintf(`tr.dead-letter[data-request-id=%q]`, deadID)
	for i := 0; ; i++ {
		e.do(chromedp.Navigate(e.url + "/dead-letters"))
		if ok, _ := chromedp.Run(e.tab, chromedp.Evaluate[bool](fmt.Sprintf(`!!document.querySelector(%q)`, row))); ok {
			break
		}
		if i > 100 {
			t.Fatalf("no dead letter for %s:\n%s", deadID, e.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if reason := e.text(row + " td.reason"); !strings.Contains(reason, "no project") {
		t.Fatalf("dead letter reason %q", reason)
	}
	pool := dbtest.Pool(t)
	lateTables, _ := schema.For(late)
	t.Cleanup(func() {
		for _, s := range lateTables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: late, Users: 200}); err != nil {
		t.Fatal(err)
	}
	e.submit(row+" button", "the replay", `!!document.querySelector("#flash")`)
	flash := e.text("#flash")
	replayID, ok := strings.CutPrefix(flash, "replayed as ")
	if !ok || replayID == deadID {
		t.Fatalf("flash %q", flash)
	}
	if got := e.text(row + " .replayed a"); got != replayID {
		t.Fatalf("the dead letter shows the replay as %q, want %q", got, replayID)
	}
	e.screenshot("dead-letters")
	e.do(chromedp.Navigate(e.url + "/runs/" + replayID))
	for i := 0; ; i++ {
		ok, _ := chromedp.Run(e.tab, chromedp.Evaluate[bool](`!!document.querySelector("#run-status")`))
		if ok {
			break
		}
		if i > 200 {
			t.Fatalf("the replayed run never appeared:\n%s", e.log)
		}
		time.Sleep(100 * time.Millisecond)
		e.do(chromedp.Reload())
	}
	e.until("the replayed run's completion", textIs("#run-status", "completed"))
	e.sameAsStatus(replayID)

	// Campaigns and the audience preview, for the pictures; the preview's
	// size is the one `segpub size` reports.
	campaign := fmt.Sprintf(`{"project_id":%q,"campaign":{"id":"cmp_daily_%s","channel":"email","audience":{"type":"all"},"message":{"s":"hi"},
"throttle":{"max_per_interval":500,"interval_minutes":10}},"schedule":{"kind":"daily","time":"09:00","time_zone":"Asia/Seoul"}}`, fast, fast)
	cpath := filepath.Join(t.TempDir(), "campaign.json")
	if err := os.WriteFile(cpath, []byte(campaign), 0o644); err != nil {
		t.Fatal(err)
	}
	e.segpub("campaign", "add", "--file", cpath)
	e.do(chromedp.Navigate(e.url+"/campaigns"), chromedp.WaitVisible(chromedp.CSS("#campaigns")))
	if txt := e.text(fmt.Sprintf(`tr[data-campaign-id="cmp_daily_%s"]`, fast)); !strings.Contains(txt, "Asia/Seoul") || !strings.Contains(txt, "09:00 KST") {
		t.Fatalf("campaign row %q", txt)
	}
	e.screenshot("campaigns")
	// The link picks the campaign; the preview runs on the button (a POST).
	e.do(chromedp.Navigate(e.url+"/preview?campaign=cmp_daily_"+fast+"&user=ext-42"), chromedp.WaitVisible(chromedp.CSS("#run-preview")))
	if n, _ := chromedp.Run(e.tab, chromedp.Evaluate[int](`document.querySelectorAll("#preview-result").length`)); n != 0 {
		t.Fatal("GET /preview ran the preview")
	}
	e.submit("#run-preview", "the preview", `!!document.querySelector("#preview-result")`)
	var size struct {
		Candidates int64 `json:"candidates"`
	}
	if err := json.Unmarshal([]byte(e.segpub("size", "--job", jobFile(t, "size-"+fast, fast))), &size); err != nil || size.Candidates == 0 {
		t.Fatalf("size: %+v %v", size, err)
	}
	if got := e.text("#pv-candidates"); got != formatCount(size.Candidates) {
		t.Fatalf("preview shows %s candidates, size reports %d", got, size.Candidates)
	}
	e.screenshot("preview")

	// Hostile ids in the browser: the Pause button of run "x/cancel?"
	// pauses that run, not cancels run "x"; a right-to-left override in an
	// id shows escaped.
	state, err := pgxpool.New(context.Background(), e.vars["SEGPUB_STATE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	led, err := ledger.New(context.Background(), state)
	if err != nil {
		t.Fatal(err)
	}
	evil, victim, bidi := "e2e-x/cancel?", "e2e-x", "e2e-\u202egnp.exe"
	for _, id := range []string{evil, victim, bidi} {
		s := ledger.Start{RequestID: id, ProjectID: fast, CampaignID: "c", Action: "publish", Reference: time.Now()}
		if c, err := led.Claim(context.Background(), s, "a-worker-elsewhere", time.Hour); err != nil || !c.Granted {
			t.Fatalf("claim %s: %v", id, err)
		}
	}
	e.do(chromedp.Navigate(e.url+"/runs/"+url.PathEscape(evil)), chromedp.WaitVisible(chromedp.CSS("#pause")))
	e.submit("#pause", "the pause of "+evil, `!!document.querySelector("#flash")`)
	control := func(id string) string {
		var c *string
		if err := state.QueryRow(context.Background(), `SELECT control FROM segpub_runs WHERE request_id = $1`, id).Scan(&c); err != nil || c == nil {
			return ""
		}
		return *c
	}
	if control(evil) != "pause" || control(victim) != "" {
		t.Fatalf("after Pause on %q: it has %q, %q has %q", evil, control(evil), victim, control(victim))
	}
	e.do(chromedp.Navigate(e.url+"/runs"), chromedp.WaitVisible(chromedp.CSS("#group-running")))
	if txt, _ := chromedp.Run(e.tab, chromedp.Evaluate[string](`document.body.innerText`)); strings.ContainsRune(txt, '\u202e') ||
		!strings.Contains(txt, `e2e-\u202Egnp.exe`) {
		t.Fatalf("the runs page shows the override raw, or not its escape")
	}
	e.do(chromedp.Navigate(e.url+"/runs"), chromedp.WaitVisible(chromedp.CSS("#group-completed")))
	e.screenshot("runs")
}

func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

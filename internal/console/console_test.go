package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/claimcheck"
	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/events"
	"github.com/segpub/segpub/internal/inspect"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/ledger"
	"github.com/segpub/segpub/internal/msgstore"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/queue"
	"github.com/segpub/segpub/internal/scheduler"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
	"github.com/segpub/segpub/internal/worker"
)

const testToken = "tok-9f8e7d"

// sentQueue is a job queue that keeps what is sent to it.
type sentQueue struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (q *sentQueue) Send(_ context.Context, body []byte, _ string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bodies = append(q.bodies, append([]byte(nil), body...))
	return nil
}
func (q *sentQueue) MaxMessageBytes() int { return 1 << 20 }
func (q *sentQueue) Receive(ctx context.Context) (queue.Delivery, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (q *sentQueue) Close() error { return nil }

func (q *sentQueue) sent() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([][]byte(nil), q.bodies...)
}

type fixture struct {
	state *pgxpool.Pool
	led   *ledger.Ledger
	jobs  *sentQueue
	srv   *httptest.Server
	con   *Console
}

func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	return newFixtureWith(t, Config{Token: token}, nil)
}

// newFixtureWith serves a console of cfg, its State, Audience pool, Jobs
// and Databases filled in; store is the message store replays get.
func newFixtureWith(t *testing.T, cfg Config, store msgstore.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	state := dbtest.IsolatedPool(t)
	jobs := &sentQueue{}
	cfg.State = state
	if cfg.Audience.Pool == nil {
		cfg.Audience.Pool = dbtest.Pool(t)
	}
	cfg.Jobs = func(context.Context) (claimcheck.Sender, msgstore.Store, error) { return jobs, store, nil }
	cfg.Databases = []Database{{Name: "state", Redacted: "postgres@db:5432/segpub"}}
	con, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	led, err := ledger.New(ctx, state)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)
	return &fixture{state: state, led: led, jobs: jobs, srv: srv, con: con}
}

func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post sends a form the way a script does: no browser headers, an
// optional bearer token, no redirects followed.
func (f *fixture) post(t *testing.T, path, bearer string, form url.Values, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func start(id string) ledger.Start {
	return ledger.Start{RequestID: id, ProjectID: "p", CampaignID: "cmp-" + id, Action: "publish", Reference: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}
}

// claim creates a running run.
func (f *fixture) claim(t *testing.T, id string) {
	t.Helper()
	if c, err := f.led.Claim(context.Background(), start(id), "worker-1", time.Minute); err != nil || !c.Granted {
		t.Fatalf("claim %s: %+v %v", id, c, err)
	}
}

// section returns the runs page's section of a status group.
func section(body, group string) string {
	i := strings.Index(body, `id="group-`+group+`"`)
	if i < 0 {
		return ""
	}
	rest := body[i:]
	if j := strings.Index(rest, "</section>"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

func TestRunsPageByStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	f.claim(t, "r-running")
	f.claim(t, "r-done")
	res := json.RawMessage(`{"published":7,"candidates":9}`)
	if err := f.led.Finish(ctx, "r-done", "worker-1", ledger.Outcome{Status: ledger.Completed, Candidates: 9, Published: 7, Result: res}); err != nil {
		t.Fatal(err)
	}
	f.claim(t, "r-failed")
	if err := f.led.Release(ctx, "r-failed", "worker-1", ledger.Failed, "boom: audience query"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.led.Reject(ctx, start("r-rejected"), "campaign.channel: unknown"); err != nil {
		t.Fatal(err)
	}
	f.claim(t, "r-cancelled")
	if err := f.led.Release(ctx, "r-cancelled", "worker-1", ledger.Retrying, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.led.Cancel(ctx, "r-cancelled"); err != nil {
		t.Fatal(err)
	}
	f.claim(t, "r-paused")
	if err := f.led.Release(ctx, "r-paused", "worker-1", ledger.Retrying, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.led.Pause(ctx, "r-paused"); err != nil {
		t.Fatal(err)
	}
	code, body := f.get(t, "/runs")
	if code != http.StatusOK {
		t.Fatalf("GET /runs: %d %s", code, body)
	}
	for group, id := range map[string]string{"running": "r-running", "completed": "r-done", "failed": "r-failed",
		"rejected": "r-rejected", "cancelled": "r-cancelled", "paused": "r-paused"} {
		s := section(body, group)
		if !strings.Contains(s, `data-request-id="`+id+`"`) {
			t.Errorf("section %s does not list %s:\n%s", group, id, s)
		}
		for _, other := range []string{"r-running", "r-done", "r-failed", "r-rejected", "r-cancelled", "r-paused"} {
			if other != id && strings.Contains(s, `data-request-id="`+other+`"`) {
				t.Errorf("section %s lists %s too", group, other)
			}
		}
	}
	// The live region alone, for the page's refresh.
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/runs", nil)
	req.Header.Set("X-Console-Live", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "<html") || !strings.Contains(string(b), `data-request-id="r-running"`) {
		t.Fatalf("live fragment: %s", b)
	}
}

func TestRunPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	rec, err := NewRecorder(ctx, RecorderConfig{Pool: f.state, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := "r-page"
	f.claim(t, id)
	j := &job.Job{RequestID: id, Campaign: job.Campaign{Channel: "email", Throttle: &job.Throttle{MaxPerInterval: 4, IntervalMinutes: 10}}}
	// A runner that acknowledges three batches.
	run := rec.Runner(fakeRunner{acks: []int64{4, 8, 10}})
	rec.cfg.SampleEvery = time.Nanosecond
	ev := rec.Events(nil)
	_ = ev.Emit(ctx, events.Event{Type: "started", RequestID: id, Attempt: 1, At: time.Now().UTC()})
	if _, err := run.RunWith(ctx, j, nil, nil, publish.Checkpoint{}, publish.Hooks{}); err != nil {
		t.Fatal(err)
	}
	result := publish.Result{RequestID: id, Status: "completed", Candidates: 14, Published: 10,
		Skipped: publish.Skipped{NoContact: 3, DuplicateDestination: 1}, Variants: map[string]int64{"var_a": 6, "var_b": 4}}
	body, _ := json.Marshal(result)
	if err := f.led.Finish(ctx, id, "worker-1", ledger.Outcome{Status: ledger.Completed, Candidates: 14, Published: 10, Result: body}); err != nil {
		t.Fatal(err)
	}
	_ = ev.Emit(ctx, events.Event{Type: "completed", RequestID: id, Attempt: 1, At: time.Now().UTC(), Candidates: 14, Published: 10})
	code, page := f.get(t, "/runs/"+id)
	if code != http.StatusOK {
		t.Fatalf("GET run: %d %s", code, page)
	}
	for _, want := range []string{
		`data-reason="no_contact">3<`, `data-reason="duplicate_destination">1<`, // skip reasons
		`<td>var_a</td><td class="n">6</td>`,                          // variants
		`<td>3</td><td>2026-11-24 09:20:00Z</td><td class="n">2</td>`, // the third wave: 2 messages at +20 min
		`class="line"`, `wave 1 at 2026-11-24T09:00:00Z: 4 messages`, // the charts
		`<td>started</td>`, `<td>completed</td>`, // the timeline
		`id="run-status">completed<`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	// The samples, as the run's total over time.
	ps, err := f.con.samples(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) == 0 || ps[len(ps)-1].Published != 10 {
		t.Fatalf("samples %+v", ps)
	}
	if code, _ := f.get(t, "/runs/nope"); code != http.StatusNotFound {
		t.Fatalf("unknown run: %d", code)
	}
}

type fakeRunner struct{ acks []int64 }

func (r fakeRunner) RunWith(_ context.Context, j *job.Job, _ *publish.Range, _ publish.Sink, _ publish.Checkpoint, hooks publish.Hooks) (*publish.Result, error) {
	for _, n := range r.acks {
		if hooks.OnAck != nil {
			if err := hooks.OnAck(publish.Checkpoint{Published: n}); err != nil {
				return nil, err
			}
		}
	}
	return &publish.Result{RequestID: j.RequestID, Published: r.acks[len(r.acks)-1]}, nil
}

// Partitions' samples add up: the run's count is the sum of each lane's
// latest.
// A run with delivery.local_time: its base times are listed next to the
// waves, which count from each base time.
func TestRunPageBaseTimes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	rec, err := NewRecorder(ctx, RecorderConfig{Pool: f.state, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := "r-bases"
	f.claim(t, id)
	j := &job.Job{RequestID: id, Campaign: job.Campaign{Channel: "email", Throttle: &job.Throttle{MaxPerInterval: 2, IntervalMinutes: 10}}}
	if _, err := rec.Runner(fakeRunner{acks: []int64{5}}).RunWith(ctx, j, nil, nil, publish.Checkpoint{}, publish.Hooks{}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	result := publish.Result{RequestID: id, Status: "completed", Candidates: 5, Published: 5,
		BaseTimes: []publish.BaseTimeCount{{At: at, Messages: 3}, {At: at.Add(10 * time.Minute), Messages: 2}}}
	body, _ := json.Marshal(result)
	if err := f.led.Finish(ctx, id, "worker-1", ledger.Outcome{Status: ledger.Completed, Candidates: 5, Published: 5, Result: body}); err != nil {
		t.Fatal(err)
	}
	code, page := f.get(t, "/runs/"+id)
	if code != http.StatusOK {
		t.Fatalf("GET run: %d %s", code, page)
	}
	for _, want := range []string{
		`id="base-times"`, `<td>2026-11-24 09:10:00Z</td><td class="n">2</td>`, // the base times
		`<td>1</td><td>2026-11-24 09:00:00Z</td><td class="n">2</td>`, // the first base time's first wave
		`<td>2</td><td>2026-11-24 09:10:00Z</td><td class="n">3</td>`, // its second wave and the second base time's first
		`data-reason="older_device">0<`, `data-reason="local_time_passed">0<`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
}

func TestSamplesSumPartitions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	ctx := context.Background()
	rec, err := NewRecorder(ctx, RecorderConfig{Pool: f.state, Retention: time.Hour, SampleEvery: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	j := &job.Job{RequestID: "r-parts", Campaign: job.Campaign{Channel: "push_notification"}}
	run := rec.Runner(fakeRunner{acks: []int64{5, 10}})
	for _, from := range []string{"", "u5"} {
		if _, err := run.RunWith(ctx, j, &publish.Range{From: from}, nil, publish.Checkpoint{}, publish.Hooks{}); err != nil {
			t.Fatal(err)
		}
	}
	// A scan publishes nothing and is not sampled.
	if _, err := run.RunWith(ctx, j, &publish.Range{From: "u9", Collect: true}, nil, publish.Checkpoint{}, publish.Hooks{}); err != nil {
		t.Fatal(err)
	}
	ps, err := f.con.samples(ctx, "r-parts")
	if err != nil {
		t.Fatal(err)
	}
	if got := ps[len(ps)-1].Published; got != 20 {
		t.Fatalf("total %d, want 20 (%+v)", got, ps)
	}
}

func TestActionsNeedTheToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	f.claim(t, "r-ctl")
	stopRequested := func() bool {
		control, err := f.con.led.StopRequested(ctx, "r-ctl")
		if err != nil {
			t.Fatal(err)
		}
		return control == "pause"
	}
	// No token, a wrong one, and the right one from another site.
	if code, body := f.post(t, "/runs/r-ctl/pause", "", nil, nil); code != http.StatusForbidden || !strings.Contains(body, "needs the console token") {
		t.Fatalf("without a token: %d %s", code, body)
	}
	if code, _ := f.post(t, "/runs/r-ctl/pause", "wrong", nil, nil); code != http.StatusForbidden {
		t.Fatalf("wrong token: %d", code)
	}
	if code, body := f.post(t, "/runs/r-ctl/pause", testToken, nil, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden ||
		!strings.Contains(body, "cross-origin") {
		t.Fatalf("cross-site: %d %s", code, body)
	}
	if code, _ := f.post(t, "/runs/r-ctl/pause", testToken, nil, map[string]string{"Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Fatalf("another origin: %d", code)
	}
	if stopRequested() {
		t.Fatal("a refused action took effect")
	}
	// A browser: signed in, but a form without its CSRF value is refused.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.PostForm(f.srv.URL+"/login", url.Values{"token": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in with a wrong token: %d", resp.StatusCode)
	}
	resp, err = browser.PostForm(f.srv.URL+"/login", url.Values{"token": {testToken}, "back": {"/runs/r-ctl"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/runs/r-ctl" {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, ck := range resp.Cookies() {
		if strings.Contains(ck.Value, testToken) || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
			t.Fatalf("session cookie %+v", ck)
		}
	}
	resp, err = browser.PostForm(f.srv.URL+"/runs/r-ctl/pause", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || stopRequested() {
		t.Fatalf("signed in, no CSRF value: %d", resp.StatusCode)
	}
	// The run page carries the CSRF value in its forms (and never the token).
	resp, err = browser.Get(f.srv.URL + "/runs/r-ctl")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(page), testToken) {
		t.Fatal("the page shows the token")
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF value in the signed-in page:\n%s", page)
	}
	resp, err = browser.PostForm(f.srv.URL+"/runs/r-ctl/pause", url.Values{"csrf": {string(m[1])}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !stopRequested() {
		t.Fatalf("signed-in pause: %d, requested %v", resp.StatusCode, stopRequested())
	}
	// A script with the bearer token: cancel.
	if code, body := f.post(t, "/runs/r-ctl/cancel", testToken, nil, nil); code != http.StatusSeeOther {
		t.Fatalf("bearer cancel: %d %s", code, body)
	}
	// A finished run cannot be resumed: a conflict, said on the page.
	if code, body := f.post(t, "/runs/r-done-never/resume", testToken, nil, nil); code != http.StatusConflict || !strings.Contains(body, "no run") {
		t.Fatalf("resume of an unknown run: %d %s", code, body)
	}
}

func TestActionsDisabledWithoutToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	f.claim(t, "r-ro")
	if code, body := f.post(t, "/runs/r-ro/pause", "", nil, nil); code != http.StatusForbidden || !strings.Contains(body, "actions are disabled") {
		t.Fatalf("pause: %d %s", code, body)
	}
	// Even an empty bearer token does not match an empty setting.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/runs/r-ro/pause", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("empty bearer: %d", resp.StatusCode)
	}
	code, body := f.get(t, "/runs")
	if code != http.StatusOK || !strings.Contains(body, "actions disabled") || strings.Contains(body, `action="/login"`) {
		t.Fatalf("runs page without a token: %d", code)
	}
	if !strings.Contains(body, "postgres@db:5432/segpub") {
		t.Fatal("the footer lacks the redacted database")
	}
}

func TestDeadLetterReplay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	rec, err := NewRecorder(ctx, RecorderConfig{Pool: f.state, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dead := &sentQueue{}
	dq := rec.DeadLetters(dead)
	jobBody := `{"version":1,"action":"publish","request_id":"r-dl","project_id":"p1","campaign":{"id":"c","channel":"email","audience":{"type":"all"},"message":{"s":"x"}}}`
	dl, _ := json.Marshal(worker.DeadLetter{Reason: "audience query: connection reset", Kind: "exhausted", Attempts: 5, RequestID: "r-dl",
		FailedAt: time.Now().UTC(), Job: json.RawMessage(jobBody)})
	if err := dq.Send(ctx, dl, ""); err != nil {
		t.Fatal(err)
	}
	bad, _ := json.Marshal(worker.DeadLetter{Reason: "not JSON", Kind: "rejected", Attempts: 1, FailedAt: time.Now().UTC(), JobText: "{oops"})
	if err := dq.Send(ctx, bad, ""); err != nil {
		t.Fatal(err)
	}
	if len(dead.sent()) != 2 {
		t.Fatal("the dead letters did not reach the queue")
	}
	// The original run published part of its messages before it failed:
	// the page says a replay sends them again.
	f.claim(t, "r-dl")
	if err := f.led.Finish(ctx, "r-dl", "worker-1", ledger.Outcome{Status: ledger.Failed, Candidates: 40, Published: 25, Error: "audience query: connection reset"}); err != nil {
		t.Fatal(err)
	}
	code, page := f.get(t, "/dead-letters")
	if code != http.StatusOK || !strings.Contains(page, "audience query: connection reset") || !strings.Contains(page, "not replayable") ||
		!strings.Contains(page, "failed, 25 published") || !strings.Contains(page, "a replay sends these again") {
		t.Fatalf("dead letters page: %d %s", code, page)
	}
	var id int64
	if err := f.state.QueryRow(ctx, `SELECT id FROM segpub_dead_letters WHERE request_id = 'r-dl'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/dead-letters/%d/replay", id)
	if code, _ := f.post(t, path, "", nil, nil); code != http.StatusForbidden || len(f.jobs.sent()) != 0 {
		t.Fatalf("replay without the token: %d", code)
	}
	if code, body := f.post(t, path, testToken, nil, nil); code != http.StatusSeeOther {
		t.Fatalf("replay: %d %s", code, body)
	}
	sent := f.jobs.sent()
	if len(sent) != 1 {
		t.Fatalf("%d jobs sent", len(sent))
	}
	j, err := job.Parse(sent[0])
	if err != nil {
		t.Fatal(err)
	}
	if j.RequestID == "r-dl" || !strings.HasPrefix(j.RequestID, "r-dl.replay-") || j.Campaign.ID != "c" {
		t.Fatalf("replayed job: %+v", j)
	}
	// Recorded, and shown; a second replay is refused.
	_, page = f.get(t, "/dead-letters")
	if !strings.Contains(page, "as <a href=\"/runs/"+j.RequestID+"\">") {
		t.Fatalf("the page does not show the replay:\n%s", page)
	}
	if code, body := f.post(t, path, testToken, nil, nil); code != http.StatusConflict || !strings.Contains(body, "replayed already") {
		t.Fatalf("second replay: %d %s", code, body)
	}
	if len(f.jobs.sent()) != 1 {
		t.Fatal("a second replay sent the job again")
	}
}

func TestCampaignsPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	store, err := scheduler.NewStore(ctx, f.state)
	if err != nil {
		t.Fatal(err)
	}
	camp := json.RawMessage(`{"id":"cmp_ny","channel":"email","audience":{"type":"all"},"message":{"s":"x"}}`)
	sched := json.RawMessage(`{"kind":"daily","time":"09:30","time_zone":"America/New_York"}`)
	if err := store.Add(ctx, scheduler.Campaign{ProjectID: "p1", Campaign: camp, Schedule: sched}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.state.Exec(ctx, `INSERT INTO segpub_occurrences (campaign_id, occurrence, request_id, status) VALUES ('cmp_ny', '2026-11-20T14:30:00Z', 'sched:cmp_ny@2026-11-20T14:30:00Z', 'stale')`); err != nil {
		t.Fatal(err)
	}
	f.con.cfg.Now = func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	code, page := f.get(t, "/campaigns")
	if code != http.StatusOK {
		t.Fatalf("campaigns: %d %s", code, page)
	}
	// 09:30 in New York, in its own zone: the next three days.
	// Not signed in: Pause and End are shown disabled, saying why.
	for _, want := range []string{"daily at 09:30", "America/New_York", "2026-12-01 09:30 EST (Tue)", "2026-12-03 09:30 EST (Thu)",
		"sched:cmp_ny@2026-11-20T14:30:00Z", `type="submit" disabled title="actions need the console token: sign in">Pause<`,
		`type="submit" disabled title="actions need the console token: sign in">End<`, `id="actions-why"`} {
		if !strings.Contains(page, want) {
			t.Errorf("campaigns page lacks %q", want)
		}
	}
	if code, body := f.post(t, "/campaigns/cmp_ny/pause", testToken, nil, nil); code != http.StatusSeeOther {
		t.Fatalf("pause campaign: %d %s", code, body)
	}
	list, _ := store.List(ctx)
	if list[0].Status != scheduler.Paused {
		t.Fatalf("status %s", list[0].Status)
	}
	if code, _ := f.post(t, "/campaigns/cmp_ny/end", "", nil, nil); code != http.StatusForbidden {
		t.Fatalf("end without the token: %d", code)
	}
}

// The preview shows what explain and why report.
func TestPreview(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	pool := dbtest.Pool(t)
	tables, _ := schema.For(dbtest.NewProjectID())
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: tables.Project, Users: 300}); err != nil {
		t.Fatal(err)
	}
	jobText := fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"cmp","channel":"email","message":{"s":"hi"},"audience":{"type":"all"}}}`, tables.Project)
	j, _ := job.Parse([]byte(jobText))
	want, err := inspect.Explain(context.Background(), publish.Config{Pool: pool}, j, 1)
	if err != nil {
		t.Fatal(err)
	}
	var user string
	if err := pool.QueryRow(context.Background(), `SELECT external_user_id FROM `+tables.User+` ORDER BY notifly_user_id LIMIT 1`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	code, page := f.post(t, "/preview", testToken, url.Values{"job": {jobText}, "user": {user}}, nil)
	if code != http.StatusOK {
		t.Fatalf("preview: %d %s", code, page)
	}
	for _, w := range []string{
		fmt.Sprintf(`id="pv-candidates">%s<`, formatInt(want.Result.Candidates)),
		fmt.Sprintf(`id="pv-published">%s<`, formatInt(want.Result.Published)),
		`id="sql"`, `id="plan"`, "Why: user " + user, `class="message"`,
	} {
		if !strings.Contains(page, w) {
			t.Errorf("preview lacks %q", w)
		}
	}
	// Delivery targeting: what each rule removes, the base times and the
	// locales, and for the user the zone and language and what they did.
	delivery := strings.Replace(jobText, `"channel":"email",`, `"channel":"push_notification","delivery":{"local_time":{"time":"09:00","time_zone":"tz"},
"most_recent_device_only":true,"localized_messages":{"property":"lang","messages":{"en":{"s":"hi"}}}},`, 1)
	code, page = f.post(t, "/preview", testToken, url.Values{"job": {delivery}, "user": {user}}, nil)
	if code != http.StatusOK {
		t.Fatalf("preview: %d %s", code, page)
	}
	for _, w := range []string{
		`<h2>Delivery targeting</h2>`, `most recent device only removes`, `id="pv-base-times"`, `<td>2026-11-25 00:00:00Z</td>`,
		`id="pv-locales"`, `null (default message)`, `time zone: property "tz" is missing`, `fallback zone Asia/Seoul`,
	} {
		if !strings.Contains(page, w) {
			t.Errorf("delivery preview lacks %q", w)
		}
	}
	// A bad job: the rejection with its path.
	code, page = f.post(t, "/preview", testToken, url.Values{"job": {`{"version":1}`}}, nil)
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, "rejected") {
		t.Fatalf("bad job: %d", code)
	}
	// Without a token, the same preview shows counts and no people's data.
	open := newFixture(t, "")
	code, page = open.post(t, "/preview", "", url.Values{"job": {jobText}, "user": {user}}, nil)
	if code != http.StatusOK || !strings.Contains(page, `id="pv-candidates"`) || !strings.Contains(page, `id="preview-withheld"`) {
		t.Fatalf("tokenless preview: %d %s", code, page)
	}
	for _, leak := range []string{`class="message"`, "Why: user", `id="plan"`, user} {
		if strings.Contains(page, leak) {
			t.Errorf("tokenless preview shows %q", leak)
		}
	}
}

func TestStaticAndHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	resp, err := http.Get(f.srv.URL + "/static/console.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("static: %d %v", resp.StatusCode, resp.Header)
	}
}

// A partitioned run's page lists its partitions with the worker of each.
func TestRunPagePartitions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	parent := start("r-parted")
	if c, err := f.led.Claim(ctx, parent, "worker-1", time.Minute); err != nil || !c.Granted {
		t.Fatal(err)
	}
	// Split as the partition package splits a run: its scan phase, no owner.
	if _, err := f.state.Exec(ctx, `UPDATE segpub_runs SET status = 'scanning', job = '{}', plan = '{"bounds":["","u5",""]}', owner = NULL, lease_until = NULL
WHERE request_id = $1`, parent.RequestID); err != nil {
		t.Fatal(err)
	}
	for i, owner := range []string{"worker-a", "worker-b"} {
		child := start(fmt.Sprintf("r-parted#scan-%d", i))
		child.Parent = parent.RequestID
		if c, err := f.led.Claim(ctx, child, owner, time.Minute); err != nil || !c.Granted {
			t.Fatal(err)
		}
	}
	code, page := f.get(t, "/runs/r-parted")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, page)
	}
	for _, want := range []string{`id="run-status">scanning<`, `<td>r-parted#scan-0</td>`, `<td>worker-a</td>`, `<td>worker-b</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Partitions are not runs of their own in the list.
	_, list := f.get(t, "/runs")
	if !strings.Contains(section(list, "running"), `data-request-id="r-parted"`) || strings.Contains(list, `data-request-id="r-parted#scan-0"`) {
		t.Fatalf("runs list:\n%s", section(list, "running"))
	}
}

// A partitioned run paused as a whole shows paused once its partitions have
// stopped, in the paused section, with resume offered.
func TestPausedPartitionedRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testToken)
	ctx := context.Background()
	parent := start("r-held")
	if c, err := f.led.Claim(ctx, parent, "worker-1", time.Minute); err != nil || !c.Granted {
		t.Fatal(err)
	}
	if _, err := f.state.Exec(ctx, `UPDATE segpub_runs SET status = 'publishing', job = '{}', plan = '{"bounds":["","u5",""]}', owner = NULL, lease_until = NULL
WHERE request_id = $1`, parent.RequestID); err != nil {
		t.Fatal(err)
	}
	child := start("r-held#publish-0000")
	child.Parent = parent.RequestID
	if c, err := f.led.Claim(ctx, child, "worker-a", time.Minute); err != nil || !c.Granted {
		t.Fatal(err)
	}
	if _, err := f.led.Pause(ctx, parent.RequestID); err != nil {
		t.Fatal(err)
	}
	// Its partition still runs: publishing, pause requested.
	if _, page := f.get(t, "/runs/r-held"); !strings.Contains(page, `id="run-status">publishing<`) || !strings.Contains(page, `id="stopping"`) {
		t.Fatalf("pausing partitioned run's page:\n%s", page)
	}
	if err := f.led.Stopped(ctx, child.RequestID, "worker-a", ledger.Paused, 10, 10, []byte(`{}`), nil); err != nil {
		t.Fatal(err)
	}
	code, page := f.get(t, "/runs/r-held")
	if code != http.StatusOK || !strings.Contains(page, `id="run-status">paused<`) || !strings.Contains(page, "/runs/r-held/resume") {
		t.Fatalf("paused partitioned run's page: %d\n%s", code, page)
	}
	_, list := f.get(t, "/runs")
	if !strings.Contains(section(list, "paused"), `data-request-id="r-held"`) || strings.Contains(section(list, "running"), `data-request-id="r-held"`) {
		t.Fatalf("runs list:\n%s", list)
	}
}

// After signing in, the browser goes back to a console page, never
// elsewhere.
func TestBackStaysInTheConsole(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"/runs/x?y=1": "/runs/x?y=1", "//evil.example/": "/runs", "https://evil.example/": "/runs",
		"/\\evil.example": "/runs", "": "/runs"} {
		r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"back": {in}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if got := back(r); got != want {
			t.Errorf("back(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"dial postgres://app:s3cr3t@db:5432/x failed": "dial postgres://app:***@db:5432/x failed",
		"nats://user:pw@host:4222 and https://h/p":    "nats://user:***@host:4222 and https://h/p",
		"no URL here: a:b@c":                          "no URL here: a:b@c",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

// A run's error that quotes a URL with a password shows it hidden.
func TestRunErrorRedacted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	f.claim(t, "r-err")
	if err := f.led.Release(context.Background(), "r-err", "worker-1", ledger.Failed, "connect to postgres://app:hunter2@db/x: refused"); err != nil {
		t.Fatal(err)
	}
	_, page := f.get(t, "/runs/r-err")
	if strings.Contains(page, "hunter2") || !strings.Contains(page, "postgres://app:***@db/x") {
		t.Fatalf("run error shown as:\n%s", page)
	}
}

// One preview runs at a time: another is refused while it runs.
func TestOnePreviewAtATime(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "")
	f.con.previews <- struct{}{}
	code, page := f.post(t, "/preview", "", url.Values{"job": {`{"version":1}`}}, nil)
	<-f.con.previews
	if code != http.StatusTooManyRequests || !strings.Contains(page, "another preview is running") {
		t.Fatalf("%d %s", code, page)
	}
}

package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

// captureSink keeps every published message, decoded, in order.
type captureSink struct {
	Plain
	mu      sync.Mutex
	msgs    []map[string]any
	raw     []string
	batches int
}

func (s *captureSink) Publish(_ context.Context, b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	lines := strings.Split(strings.TrimSuffix(string(b.Data), "\n"), "\n")
	if len(lines) != len(b.Messages) {
		return fmt.Errorf("batch has %d lines but %d messages", len(lines), len(b.Messages))
	}
	for i, line := range lines {
		if string(b.Messages[i].Body) != line {
			return fmt.Errorf("message %d body does not match its line", i)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return fmt.Errorf("message %d is not JSON: %v: %s", i, err, line)
		}
		if m["idempotency_key"] != string(b.Messages[i].Key) {
			return fmt.Errorf("message %d key %s does not match body", i, b.Messages[i].Key)
		}
		s.msgs = append(s.msgs, m)
		s.raw = append(s.raw, line)
	}
	return nil
}

// testBundle is what every engine test starts from: a fresh project in a
// real PostgreSQL and a runner.
type testBundle struct {
	t      *testing.T
	pool   *pgxpool.Pool
	tables schema.Tables
	runner *Runner
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := dbtest.Pool(t)
	tables := dbtest.Project(t)
	runner, err := New(Config{Pool: pool, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{t: t, pool: pool, tables: tables, runner: runner}
}

func (b *testBundle) exec(sql string, args ...any) {
	b.t.Helper()
	if _, err := b.pool.Exec(context.Background(), sql, args...); err != nil {
		b.t.Fatalf("exec %s: %v", sql, err)
	}
}

// user inserts a user; nil arguments are NULL.
func (b *testBundle) user(id string, ext, email, phone any, props string, bucket int) {
	b.t.Helper()
	if props == "" {
		props = "{}"
	}
	b.exec(`INSERT INTO `+b.tables.User+` (notifly_user_id, external_user_id, email, phone_number, user_properties, random_bucket_number)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)`, id, ext, email, phone, props, bucket)
}

// device inserts a device with versions and sdk type.
func (b *testBundle) device(id, userID string, token, platform any, versions ...any) {
	b.t.Helper()
	v := []any{nil, nil, nil, nil}
	copy(v, versions)
	b.exec(`INSERT INTO `+b.tables.Device+` (notifly_device_id, notifly_user_id, external_device_id, device_token, platform, os_version, app_version, sdk_version, sdk_type, updated_at)
VALUES ($1, $2, 'ext-'||$1, $3, $4, $5, $6, $7, $8, '2026-01-02T03:04:05.123456Z')`, id, userID, token, platform, v[0], v[1], v[2], v[3])
}

func (b *testBundle) event(userID, name, dt string, count int) {
	b.t.Helper()
	b.exec(`INSERT INTO `+b.tables.EventCounts+` (notifly_user_id, name, dt, count) VALUES ($1, $2, $3::date, $4)`, userID, name, dt, count)
}

func (b *testBundle) delivery(campaignID, userID string, at time.Time) {
	b.t.Helper()
	b.exec(`INSERT INTO `+b.tables.DeliveryResult+` (campaign_id, notifly_user_id, channel, status, created_at) VALUES ($1, $2, 'email', 'sent', $3)`, campaignID, userID, at)
}

// jobJSON builds a job for the bundle's project around a campaign object
// given as JSON fields (without braces).
func (b *testBundle) jobJSON(campaignFields string) string {
	return fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r-1","project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"cmp1","message":{"title":"hi"},%s}}`, b.tables.Project, campaignFields)
}

// run parses and runs a job, failing the test on any error.
func (b *testBundle) run(jobText string) (*Result, *captureSink) {
	b.t.Helper()
	res, sink, err := b.tryRun(jobText)
	if err != nil {
		b.t.Fatalf("run: %v", err)
	}
	return res, sink
}

func (b *testBundle) tryRun(jobText string) (*Result, *captureSink, error) {
	b.t.Helper()
	sink := &captureSink{}
	j, err := job.Parse([]byte(jobText))
	if err != nil {
		return nil, sink, err
	}
	res, err := b.runner.Run(context.Background(), j, sink)
	if err == nil {
		checkInvariant(b.t, res)
	}
	return res, sink, err
}

func checkInvariant(t *testing.T, res *Result) {
	t.Helper()
	if res.Candidates != res.Published+res.Skipped.Total()+res.Unpublishable.Total() {
		t.Fatalf("candidates %d != published %d + skipped %d + unpublishable %d", res.Candidates, res.Published, res.Skipped.Total(), res.Unpublishable.Total())
	}
}

// destinations lists the published destinations in order.
func destinations(s *captureSink) []string {
	out := make([]string, 0, len(s.msgs))
	for _, m := range s.msgs {
		r := m["recipient"].(map[string]any)
		switch {
		case r["email"] != nil:
			out = append(out, r["email"].(string))
		case r["phone_number"] != nil:
			out = append(out, r["phone_number"].(string))
		case r["device"] != nil:
			out = append(out, r["device"].(map[string]any)["device_token"].(string))
		}
	}
	return out
}

func userIDs(s *captureSink) []string {
	out := make([]string, 0, len(s.msgs))
	for _, m := range s.msgs {
		id, _ := m["recipient"].(map[string]any)["notifly_user_id"].(string)
		out = append(out, id)
	}
	return out
}

// wantKey is the contract's idempotency key, computed independently of the
// encoder.
func wantKey(project, campaign, request, channel, dest string) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{project, campaign, request, channel, dest}, "\n")))
	return hex.EncodeToString(sum[:])
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

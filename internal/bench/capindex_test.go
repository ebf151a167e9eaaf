package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/schema"
)

// TestFrequencyCapIndexStudy measures the frequency cap's grouped scan of
// delivery_result (docs/governance.md) with the tables' keys only and
// with the index `segpub migrate indexes` creates for it. delivery_result
// grows with every message sent, so it holds months of every channel: the
// study spreads deliveries over 180 days and 6 channels and caps over 7
// days. It runs only on demand, as it loads millions of rows:
//
//	SEGPUB_CAP_STUDY_USERS=1000000 go test -run TestFrequencyCapIndexStudy -v ./internal/bench/
func TestFrequencyCapIndexStudy(t *testing.T) {
	users, _ := strconv.Atoi(os.Getenv("SEGPUB_CAP_STUDY_USERS"))
	if users <= 0 {
		t.Skip("set SEGPUB_CAP_STUDY_USERS to run the frequency cap index study")
	}
	ctx := context.Background()
	pool := dbtest.Pool(t)
	tb, err := schema.For(dbtest.NewProjectID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range tb.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	for _, s := range tb.CreateStatements(true) {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	deliveries := users * 6
	for _, s := range []string{
		fmt.Sprintf(`INSERT INTO %s (notifly_user_id, external_user_id, email, user_properties, random_bucket_number)
SELECT 'u' || i, 'e' || i, 'u' || i || '@x.com', '{"mk": true}', i %% 10000 FROM generate_series(1, %d) i`, tb.User, users),
		fmt.Sprintf(`INSERT INTO %s (campaign_id, notifly_user_id, channel, status, created_at)
SELECT 'c' || (i %% 300), 'u' || (1 + (hashint4(i) & 2147483647) %% %d),
  (ARRAY['email','push_notification','text_message','kakao_alimtalk','kakao_friendtalk','web_push_notification'])[1 + i %% 6],
  'sent', timestamptz '2026-11-24 09:00:00Z' - (hashint4(i + 7) & 2147483647) %% (180 * 86400) * interval '1 second'
FROM generate_series(1, %d) i`, tb.DeliveryResult, users, deliveries),
		`VACUUM ANALYZE ` + tb.User,
		`VACUUM ANALYZE ` + tb.DeliveryResult,
	} {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	runner, err := publish.New(publish.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	measure := func(name, fields string) {
		j, err := job.Parse(fmt.Appendf(nil, `{"version":1,"action":"calculate-size","request_id":"r","project_id":%q,"scheduled_at":"2026-11-24T18:00:00+09:00",
"campaign":{"id":"c","channel":"email","audience":{"type":"all"}%s}}`, tb.Project, fields))
		if err != nil {
			t.Fatal(err)
		}
		q, _, err := runner.AudienceQuery(ctx, j)
		if err != nil {
			t.Fatal(err)
		}
		best, used := 0.0, []string(nil)
		for range 3 {
			ms, u, err := explainAnalyze(ctx, pool, q, "_"+tb.Project)
			if err != nil {
				t.Fatal(err)
			}
			if best == 0 || ms < best {
				best, used = ms, u
			}
		}
		t.Logf("%-44s %8.0f ms  indexes %v", name, best, used)
	}
	t.Logf("%d users, %d deliveries over 180 days and 6 channels", users, deliveries)
	cap7 := `,"frequency_cap":{"max_messages":3,"within_days":7}`
	cap30 := `,"frequency_cap":{"max_messages":3,"within_days":30}`
	measure("email, all users, no cap", "")
	measure("email, all users, cap 3 in 7 days, keys only", cap7)
	measure("email, all users, cap 3 in 30 days, keys only", cap30)
	if _, err := indexes.Create(ctx, pool, tb, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+tb.DeliveryResult); err != nil {
		t.Fatal(err)
	}
	measure("email, all users, cap 3 in 7 days, migrate indexes", cap7)
	measure("email, all users, cap 3 in 30 days, migrate indexes", cap30)
}

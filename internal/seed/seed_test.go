package seed

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/progress"
	"github.com/segpub/segpub/internal/schema"
)

func seeded(t *testing.T, users int, s int64) schema.Tables {
	t.Helper()
	return seededWith(t, users, s, "")
}

func seededWith(t *testing.T, users int, s int64, g Generator) schema.Tables {
	t.Helper()
	pool := dbtest.Pool(t)
	id := dbtest.NewProjectID()
	tables, _ := schema.For(id)
	t.Cleanup(func() {
		for _, stmt := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), stmt)
		}
	})
	st, err := Run(context.Background(), pool, Config{ProjectID: id, Users: users, Seed: s, Generator: g, Now: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	count := func(table string) int64 {
		var n int64
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(tables.User) != st.Users || count(tables.Device) != st.Devices || count(tables.EventCounts) != st.Events ||
		count(tables.DeliveryResult) != st.Deliveries || count(tables.Variants) != 3 || st.Users != int64(users) {
		t.Fatalf("stats %+v do not match the tables", st)
	}
	return tables
}

func query[T any](t *testing.T, sql string) T {
	t.Helper()
	var v T
	if err := dbtest.Pool(t).QueryRow(context.Background(), sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func TestSeedData(t *testing.T) {
	t.Parallel()
	tb := seeded(t, 4000, 1)
	// The keys of the contract exist after the load.
	keys := query[int](t, `SELECT count(*) FROM pg_constraint WHERE conrelid IN ('`+tb.User+`'::regclass, '`+tb.Device+`'::regclass, '`+tb.EventCounts+`'::regclass) AND contype IN ('p', 'u')`)
	if keys != 4 {
		t.Fatalf("want 4 primary/unique keys, got %d", keys)
	}
	checks := map[string]string{
		"emails differing only in case and spaces": `SELECT count(*) FROM (SELECT lower(btrim(email, E' \t')) FROM ` + tb.User + ` WHERE email LIKE '%@%' GROUP BY 1 HAVING count(DISTINCT email) > 1) x`,
		"+82 phones":                 `SELECT count(*) FROM ` + tb.User + ` WHERE phone_number LIKE '+82%'`,
		"ages stored as strings":     `SELECT count(*) FROM ` + tb.User + ` WHERE jsonb_typeof(user_properties->'age') = 'string'`,
		"JSON null ages":             `SELECT count(*) FROM ` + tb.User + ` WHERE jsonb_typeof(user_properties->'age') = 'null'`,
		"version 3.10.0":             `SELECT count(*) FROM ` + tb.Device + ` WHERE app_version = '3.10.0'`,
		"version 3.9.2":              `SELECT count(*) FROM ` + tb.Device + ` WHERE app_version = '3.9.2'`,
		"blank tokens":               `SELECT count(*) FROM ` + tb.Device + ` WHERE btrim(device_token, E' \t') = ''`,
		"tokens with spaces":         `SELECT count(*) FROM ` + tb.Device + ` WHERE device_token LIKE ' %'`,
		"orphan devices":             `SELECT count(*) FROM ` + tb.Device + ` d WHERE NOT EXISTS (SELECT 1 FROM ` + tb.User + ` u WHERE u.notifly_user_id = d.notifly_user_id)`,
		"users without devices":      `SELECT count(*) FROM ` + tb.User + ` u WHERE NOT EXISTS (SELECT 1 FROM ` + tb.Device + ` d WHERE u.notifly_user_id = d.notifly_user_id)`,
		"users with several":         `SELECT count(*) FROM (SELECT notifly_user_id FROM ` + tb.Device + ` GROUP BY 1 HAVING count(*) > 1) x`,
		"web devices":                `SELECT count(*) FROM ` + tb.Device + ` WHERE platform = 'web'`,
		"shared tokens":              `SELECT count(*) FROM (SELECT device_token FROM ` + tb.Device + ` GROUP BY 1 HAVING count(DISTINCT notifly_user_id) > 1) x`,
		"invalid emails":             `SELECT count(*) FROM ` + tb.User + ` WHERE email NOT LIKE '%@%.%'`,
		"events in the last 30 days": `SELECT count(*) FROM ` + tb.EventCounts + ` WHERE dt BETWEEN '2026-10-26' AND '2026-11-24'`,
		"earlier deliveries":         `SELECT count(*) FROM ` + tb.DeliveryResult + ` WHERE campaign_id = 'cmp_prev1'`,
		"hostile names":              `SELECT count(*) FROM ` + tb.User + ` WHERE user_properties->>'name' LIKE '%DROP TABLE%'`,
	}
	for what, sql := range checks {
		if n := query[int64](t, sql); n == 0 {
			t.Errorf("no %s", what)
		}
	}
	if n := query[int64](t, `SELECT count(*) FROM `+tb.EventCounts+` WHERE dt > '2026-11-24' OR dt < '2026-10-26'`); n != 0 {
		t.Errorf("%d events outside the last 30 Seoul days", n)
	}
}

func TestSeedDeterministic(t *testing.T) {
	t.Parallel()
	digest := func(tb schema.Tables) string {
		return query[string](t, `SELECT md5(string_agg(u.notifly_user_id || coalesce(u.email, '') || coalesce(u.phone_number, '') || u.user_properties::text || u.random_bucket_number, ',' ORDER BY u.notifly_user_id)) FROM `+tb.User+` u`) +
			query[string](t, `SELECT md5(string_agg(d.notifly_device_id || coalesce(d.device_token, '') || coalesce(d.platform, ''), ',' ORDER BY d.notifly_device_id)) FROM `+tb.Device+` d`)
	}
	a, b, c := seeded(t, 1500, 7), seeded(t, 1500, 7), seeded(t, 1500, 8)
	if digest(a) != digest(b) {
		t.Fatal("same seed, different data")
	}
	if digest(a) == digest(c) {
		t.Fatal("different seeds, same data")
	}
}

func TestSeedRefusesExisting(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	_, err := Run(context.Background(), dbtest.Pool(t), Config{ProjectID: tables.Project, Users: 10})
	if err == nil || !strings.Contains(err.Error(), "already has tables: seed --replace drops and recreates them") || strings.Contains(err.Error(), "Replace (") {
		t.Fatalf("want refusal naming --replace, got %v", err)
	}
	if _, err := Run(context.Background(), dbtest.Pool(t), Config{ProjectID: tables.Project, Users: 10, Replace: true}); err != nil {
		t.Fatalf("replace: %v", err)
	}
}

// The progress bar counts users, not rows of the three tables loaded per
// user, and ends at its total when the user count is not a multiple of the
// batch it is counted in.
func TestSeedProgressEndsAtTotal(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	var tty bytes.Buffer
	if _, err := Run(context.Background(), dbtest.Pool(t), Config{ProjectID: tables.Project, Users: 5000, Replace: true,
		Progress: progress.NewTerminal(&tty)}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tty.String(), "5000/5000") || strings.Contains(tty.String(), "15000") {
		t.Fatalf("progress:\n%q", tty.String()[max(0, tty.Len()-200):])
	}
}

// The skewed generator's data has the shapes it promises: ids of other
// shapes, devices per user skewed both ways, short and long tokens,
// properties from empty to over 3 KB.
func TestSeedSkewed(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t)
	tb := seededWith(t, 6000, 3, Skewed)
	checks := map[string]string{
		"decimal user ids":            `SELECT count(*) FROM ` + tb.User + ` WHERE notifly_user_id ~ '^[0-9]+$'`,
		"UUID user ids":               `SELECT count(*) FROM ` + tb.User + ` WHERE notifly_user_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4'`,
		"device ids with - or _":      `SELECT count(*) FROM ` + tb.Device + ` WHERE notifly_device_id ~ '[-_]'`,
		"users with 10 or more":       `SELECT count(*) FROM (SELECT notifly_user_id FROM ` + tb.Device + ` GROUP BY 1 HAVING count(*) >= 10) x`,
		"APNs tokens (64 hex)":        `SELECT count(*) FROM ` + tb.Device + ` WHERE device_token ~ '^[0-9a-f]{64}$'`,
		"FCM tokens (150+ chars)":     `SELECT count(*) FROM ` + tb.Device + ` WHERE length(device_token) > 150 AND device_token LIKE '%:APA91b%'`,
		"blank tokens":                `SELECT count(*) FROM ` + tb.Device + ` WHERE btrim(device_token, E' \t') = ''`,
		"empty properties":            `SELECT count(*) FROM ` + tb.User + ` WHERE user_properties = '{}'`,
		"wide properties (over 2 KB)": `SELECT count(*) FROM ` + tb.User + ` WHERE length(user_properties::text) > 2048`,
		"time zones":                  `SELECT count(*) FROM ` + tb.User + ` WHERE user_properties ? 'timezone'`,
		"orphan devices":              `SELECT count(*) FROM ` + tb.Device + ` d WHERE NOT EXISTS (SELECT 1 FROM ` + tb.User + ` u WHERE u.notifly_user_id = d.notifly_user_id)`,
		"events of seeded users":      `SELECT count(*) FROM ` + tb.EventCounts + ` e JOIN ` + tb.User + ` u USING (notifly_user_id)`,
		"deliveries of seeded users":  `SELECT count(*) FROM ` + tb.DeliveryResult + ` e JOIN ` + tb.User + ` u USING (notifly_user_id)`,
	}
	for what, sql := range checks {
		if n := query[int64](t, sql); n == 0 {
			t.Errorf("no %s", what)
		}
	}
	// Skewed both ways: many users without a device, a mean above one.
	var none, users, devices float64
	if err := pool.QueryRow(context.Background(), `SELECT
  (SELECT count(*) FROM `+tb.User+` u WHERE NOT EXISTS (SELECT 1 FROM `+tb.Device+` d WHERE d.notifly_user_id = u.notifly_user_id)),
  (SELECT count(*) FROM `+tb.User+`), (SELECT count(*) FROM `+tb.Device+`)`).Scan(&none, &users, &devices); err != nil {
		t.Fatal(err)
	}
	if none/users < 0.4 || devices/users < 1.3 {
		t.Errorf("%.0f%% of users without devices, %.2f devices a user: not skewed", 100*none/users, devices/users)
	}
}

func TestSeedGeneratorsDeterministicAndDistinct(t *testing.T) {
	t.Parallel()
	ids := func(tb schema.Tables) string {
		return query[string](t, `SELECT md5(string_agg(u.notifly_user_id || u.user_properties::text, ',' ORDER BY u.notifly_user_id)) FROM `+tb.User+` u`) +
			query[string](t, `SELECT md5(string_agg(d.notifly_device_id || coalesce(d.device_token, ''), ',' ORDER BY d.notifly_device_id)) FROM `+tb.Device+` d`)
	}
	a, b, c := seededWith(t, 1500, 7, Skewed), seededWith(t, 1500, 7, Skewed), seededWith(t, 1500, 7, Uniform)
	if ids(a) != ids(b) {
		t.Fatal("same seed and generator, different data")
	}
	if ids(a) == ids(c) {
		t.Fatal("different generators, same data")
	}
}

func TestSeedUnknownGenerator(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), dbtest.Pool(t), Config{ProjectID: dbtest.NewProjectID(), Users: 10, Generator: "zipf"})
	if err == nil || !strings.Contains(err.Error(), `Generator: unknown generator "zipf": one of skewed, uniform`) {
		t.Fatalf("want the generator named, got %v", err)
	}
}

package indexes

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

func seededProject(t *testing.T, users int) (*pgxpool.Pool, schema.Tables) {
	t.Helper()
	pool := dbtest.Pool(t)
	tables, _ := schema.For(dbtest.NewProjectID())
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(context.Background(), pool, seed.Config{ProjectID: tables.Project, Users: users}); err != nil {
		t.Fatal(err)
	}
	return pool, tables
}

// The index is the one the engine's queries use: on a delivery table that
// holds many campaigns, excluding one campaign's recipients reads its rows
// through sp_drcu_, and an id list probes its devices through sp_dut_.
func TestIndexesUsed(t *testing.T) {
	t.Parallel()
	pool, tables := seededProject(t, 20000)
	ctx := context.Background()
	// History: deliveries of 200 other campaigns.
	dbtest.Exec(t, `INSERT INTO `+tables.DeliveryResult+` (campaign_id, notifly_user_id, channel, status)
SELECT 'old' || (i % 200), 'u' || i, 'email', 'sent' FROM generate_series(1, 200000) i`)
	dbtest.Exec(t, `ANALYZE `+tables.DeliveryResult)
	// An index an earlier version created, measured as not paying.
	retired := Retired(tables)[0]
	dbtest.Exec(t, `CREATE INDEX "`+retired+`" ON `+tables.User+` (notifly_user_id COLLATE "C")`)
	log := slog.New(slog.DiscardHandler)
	out, err := Create(ctx, pool, tables, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 5 || out[0].Action != "created" || out[1].Action != "created" || out[2].Action != "created" || out[3].Action != "created" ||
		out[4] != (Outcome{Index: retired, Table: schema.Unquoted(tables.User), Action: "dropped"}) {
		t.Fatalf("outcomes %+v", out)
	}
	q, err := audience.Compile(audience.Spec{Tables: tables, Channel: job.ChannelEmail, Audience: job.Audience{Type: job.AudienceAll},
		CampaignID: seed.PreviousCampaign, ExcludePrevious: true, Reference: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	rows, err := pool.Query(ctx, "EXPLAIN "+q.SQL, q.Args...)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "sp_drcu_"+tables.Project) {
		t.Fatalf("excluding previous recipients does not use sp_drcu_:\n%s", strings.Join(plan, "\n"))
	}
	// A frequency cap counts one channel's deliveries in its window
	// through sp_drch_ (the 200,000 rows of history are e-mail).
	q, err = audience.Compile(audience.Spec{Tables: tables, Channel: job.ChannelText, Audience: job.Audience{Type: job.AudienceAll},
		FrequencyCap: &job.FrequencyCap{MaxMessages: 2, WithinDays: 1}, Reference: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	rows, err = pool.Query(ctx, "EXPLAIN "+q.SQL, q.Args...)
	if err != nil {
		t.Fatal(err)
	}
	if plan, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || !strings.Contains(strings.Join(plan, "\n"), "sp_drch_"+tables.Project) {
		t.Fatalf("a frequency cap does not read sp_drch_ (%v):\n%s", err, strings.Join(plan, "\n"))
	}
	// An id list probes its users' devices through sp_dut_, planned as a
	// run plans it.
	var ids []string
	for i := 1; i <= 50; i++ {
		ids = append(ids, fmt.Sprintf("ext-%d", i*97))
	}
	q, err = audience.Compile(audience.Spec{Tables: tables, Channel: job.ChannelPush,
		Audience: job.Audience{Type: job.AudienceUserIDs, UserIDs: ids}, CampaignID: "c", Reference: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, audience.Probing); err != nil {
		t.Fatal(err)
	}
	rows, err = tx.Query(ctx, "EXPLAIN "+q.SQL, q.Args...)
	if err != nil {
		t.Fatal(err)
	}
	plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || !strings.Contains(strings.Join(plan, "\n"), "sp_dut_"+tables.Project) {
		t.Fatalf("an id list does not probe devices through sp_dut_ (%v):\n%s", err, strings.Join(plan, "\n"))
	}
	again, err := Create(ctx, pool, tables, log)
	if err != nil || len(again) != 4 || again[0].Action != "exists" || again[1].Action != "exists" || again[2].Action != "exists" || again[3].Action != "exists" {
		t.Fatalf("second run: %+v %v", again, err)
	}
}

// An index left invalid by an interrupted concurrent build is rebuilt.
func TestInvalidIndexRebuilt(t *testing.T) {
	t.Parallel()
	tables := dbtest.Project(t)
	pool := dbtest.Pool(t)
	ctx := context.Background()
	name := For(tables)[0].Name
	dbtest.Exec(t, `CREATE INDEX "`+name+`" ON `+tables.DeliveryResult+` (campaign_id)`)
	dbtest.Exec(t, `UPDATE pg_index SET indisvalid = false WHERE indexrelid = '"`+name+`"'::regclass`)
	out, err := Create(ctx, pool, tables, slog.New(slog.DiscardHandler))
	if err != nil || out[0].Action != "rebuilt" {
		t.Fatalf("%+v %v", out, err)
	}
	var valid bool
	if err := pool.QueryRow(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = '"`+name+`"'::regclass`).Scan(&valid); err != nil || !valid {
		t.Fatalf("valid=%v err=%v", valid, err)
	}
}

// explain warns "missing index …: it <Why>": every Why starts with what the
// index does, so the sentence reads (not "it event conditions sum …").
func TestWhyReadsAfterIt(t *testing.T) {
	t.Parallel()
	tables, _ := schema.For("p")
	verbs := map[string]bool{"reads": true, "lets": true, "counts": true}
	for _, ix := range For(tables) {
		if first, _, _ := strings.Cut(ix.Why, " "); !verbs[first] {
			t.Errorf("%s: \"it %s\" does not read; start Why with what the index does (%v)", ix.Name, ix.Why, verbs)
		}
	}
}

// Every index a condition kind names (job.KindInfo.Index) is one that
// segpub migrate indexes creates: segpub explain warns when it is missing.
func TestKindIndexesExist(t *testing.T) {
	tables, err := schema.For("p")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range job.Kinds() {
		if k.Index == "" {
			continue
		}
		found := false
		for _, ix := range For(tables) {
			if ix.Name == k.Index+tables.Project && ix.Table == k.Table(tables) {
				found = true
			}
		}
		if !found {
			t.Errorf("kind %s: no index %s%s on %s", k.Kind, k.Index, tables.Project, k.Table(tables))
		}
	}
}

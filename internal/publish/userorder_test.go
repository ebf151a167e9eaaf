package publish

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/dbtest"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// skewedProject seeds a keys-only project from the skewed generator: ids
// whose byte order differs from a locale's, users with up to 40 devices.
func skewedProject(t *testing.T, users int) schema.Tables {
	t.Helper()
	pool := dbtest.Pool(t)
	tables, err := schema.For(dbtest.NewProjectID())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range tables.DropStatements() {
			_, _ = pool.Exec(context.Background(), s)
		}
	})
	if _, err := seed.Run(t.Context(), pool, seed.Config{ProjectID: tables.Project, Users: users, Seed: 5,
		Generator: seed.Skewed, Now: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	return tables
}

// referenceKeys is the push audience's (user, device) keys of the users
// where holds ($1: arg), in the contract's order, read by a plain query.
func referenceKeys(t *testing.T, tables schema.Tables, where string, arg int) []streamedKey {
	t.Helper()
	args := []any{}
	if strings.Contains(where, "$1") {
		args = append(args, arg)
	}
	rows, err := dbtest.Pool(t).Query(t.Context(), `SELECT u.notifly_user_id, coalesce(d.notifly_device_id, '') FROM `+tables.User+` u
LEFT JOIN `+tables.Device+` d ON d.notifly_user_id = u.notifly_user_id AND d.platform IN ('ios', 'android')
WHERE `+where+`
ORDER BY u.notifly_user_id COLLATE "C", d.notifly_device_id COLLATE "C"`, args...)
	if err != nil {
		t.Fatal(err)
	}
	var want []streamedKey
	for rows.Next() {
		var k streamedKey
		if err := rows.Scan(&k.user, &k.device); err != nil {
			t.Fatal(err)
		}
		k.start = len(want) == 0 || want[len(want)-1].user != k.user
		want = append(want, k)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return want
}

type streamedKey struct {
	user, device string
	start        bool
}

// stream reads q as a run does and returns its rows' keys.
func stream(t *testing.T, r *Runner, q *audience.Query) []streamedKey {
	t.Helper()
	out, free := make(chan *rowBatch, 4), make(chan *rowBatch, 4)
	for range 4 {
		free <- newRowBatch()
	}
	done := make(chan error, 1)
	var users int64
	go func() {
		defer close(out)
		done <- r.streamDB(t.Context(), q, out, free, &users)
	}()
	var keys []streamedKey
	for b := range out {
		for _, c := range b.rows {
			keys = append(keys, streamedKey{string(c.UserID), string(c.DeviceID), c.Start})
		}
		free <- b
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return keys
}

// The push audience read joins ordered readings of the two tables and
// orders by the user alone; the rows a run streams are still in the
// contract's order, (notifly_user_id, notifly_device_id) in byte order,
// with Start on each user's first row, on data whose ids sort differently
// in a locale and whose users have up to 40 devices. A reading that hands
// each user's devices over in reverse is put right by the reader.
func TestUserOrderedReadStreamsTheContractsOrder(t *testing.T) {
	t.Parallel()
	tables := skewedProject(t, 3000)
	pool := dbtest.Pool(t)
	r, err := New(Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	j, err := job.Parse([]byte(fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r-1","project_id":%q,
"campaign":{"id":"c1","channel":"push_notification","audience":{"type":"all"},"message":{"title":"hi"}}}`, tables.Project)))
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := r.AudienceQuery(t.Context(), j)
	if err != nil {
		t.Fatal(err)
	}
	if !q.UserOrder || strings.Contains(q.SQL[strings.LastIndex(q.SQL, "ORDER BY"):], "notifly_device_id") {
		t.Fatalf("want a query ordered by the user alone:\n%s", q.SQL)
	}
	want := referenceKeys(t, tables, "true", 0)
	many := 0
	for i := 1; i < len(want); i++ {
		if !want[i].start && want[i].user != want[i-1].user {
			t.Fatal("bad expectation")
		}
		if i >= 10 && want[i].user == want[i-10].user {
			many++
		}
	}
	if many == 0 {
		t.Fatal("no user with 10 or more push devices: the data does not test the order within a user")
	}
	reversed := *q
	reversed.SQL = strings.Replace(q.SQL, `notifly_device_id COLLATE "C")`, `notifly_device_id COLLATE "C" DESC)`, 1)
	if reversed.SQL == q.SQL {
		t.Fatalf("no device reading to reverse in:\n%s", q.SQL)
	}
	for name, q := range map[string]*audience.Query{"as compiled": q, "devices reversed": &reversed} {
		got := stream(t, r, q)
		if len(got) != len(want) {
			t.Fatalf("%s: %d rows, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: row %d is %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}
}

func TestOrderDevices(t *testing.T) {
	t.Parallel()
	var rows []candidate
	for i, d := range []string{"b", "_a", "-c", "B"} {
		c := candidate{Start: i == 0}
		c.UserID, c.DeviceID = []byte("u"), []byte(d)
		rows = append(rows, c)
	}
	orderDevices(rows)
	var got []string
	for i, c := range rows {
		got = append(got, string(c.DeviceID))
		if c.Start != (i == 0) {
			t.Errorf("row %d Start %v", i, c.Start)
		}
	}
	if !bytes.Equal([]byte(strings.Join(got, ",")), []byte("-c,B,_a,b")) {
		t.Fatalf("byte order: got %v", got)
	}
}

// A segment of a third of the users reads only their devices; one of
// most users reads every device; both stream exactly the rows, in the
// contract's order, of the plain query.
func TestSegmentReadShapes(t *testing.T) {
	t.Parallel()
	tables := skewedProject(t, 3000)
	pool := dbtest.Pool(t)
	if _, err := pool.Exec(t.Context(), "ANALYZE "+tables.User); err != nil {
		t.Fatal(err)
	}
	// Every project is sampled (shapeRead).
	r, err := New(Config{Pool: pool, ShapeUsers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		below   int
		devices bool
	}{{3000, true}, {9000, false}} {
		j, err := job.Parse([]byte(fmt.Sprintf(`{"version":1,"action":"publish","request_id":"r-1","project_id":%q,
"campaign":{"id":"c1","channel":"push_notification","audience":{"type":"segment","groups":[{"conditions":[
{"kind":"user","attribute":"$random_bucket_number","operator":"<","value":%d}]}]},"message":{"title":"hi"}}}`, tables.Project, tc.below)))
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.prepare(t.Context(), j, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.spec.DevicesOfAudience != tc.devices || strings.Contains(p.query.SQL, "EXISTS") != tc.devices {
			t.Fatalf("below %d: DevicesOfAudience %v, want %v:\n%s", tc.below, p.spec.DevicesOfAudience, tc.devices, p.query.SQL)
		}
		want := referenceKeys(t, tables, "u.random_bucket_number < $1", tc.below)
		if len(want) < 500 {
			t.Fatalf("reference: %d rows", len(want))
		}
		got := stream(t, r, p.query)
		if len(got) != len(want) {
			t.Fatalf("below %d: %d rows, want %d", tc.below, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("below %d: row %d is %+v, want %+v", tc.below, i, got[i], want[i])
			}
		}
	}
}

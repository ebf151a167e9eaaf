package publish

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/failpoint"
)

// resultFormats asks for text for every column but the device's updated_at,
// which comes binary: text needs no decoding to be copied into messages, and
// binary time is cheaper to parse than text.
var resultFormats = func() pgx.QueryResultFormats {
	f := make(pgx.QueryResultFormats, audience.ColDeviceUpdatedAt+1)
	f[audience.ColDeviceUpdatedAt] = pgx.BinaryFormatCode
	return f
}()

// QueryArgs are the arguments a run queries q with: its parameters after
// the result formats it reads the rows in.
func QueryArgs(q *audience.Query) []any {
	formats := resultFormats
	if !q.Device {
		formats = formats[:audience.ColDeviceID]
	}
	return append([]any{formats}, q.Args...)
}

// streamDB runs the audience query once and streams its rows: one query,
// read as PostgreSQL sends it, never paged with OFFSET and never held whole.
// It counts the distinct users streamed into *users.
func (r *Runner) streamDB(ctx context.Context, q *audience.Query, out chan<- *rowBatch, free <-chan *rowBatch, users *int64) error {
	conn, err := r.cfg.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	args := QueryArgs(q)
	var db interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	} = conn
	if q.Listed {
		// The planner setting holds for this query only: a read-only
		// transaction around it (rolled back at the end: nothing to keep).
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			return fmt.Errorf("begin audience query: %w", err)
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := tx.Exec(ctx, audience.Probing); err != nil {
			return fmt.Errorf("set planner cost for id list: %w", err)
		}
		db = tx
	}
	rows, err := db.Query(ctx, q.SQL, args...)
	if err != nil {
		return fmt.Errorf("query audience: %w", err)
	}
	defer rows.Close()
	var prevUser []byte
	b, err := takeRows(ctx, free)
	if err != nil {
		return err
	}
	// A batch ends only where a user ends, so that a user's rows can be put
	// in device order (Query.UserOrder) and are never split.
	userStart := 0
	for rows.Next() {
		vals := rows.RawValues()
		start := !bytes.Equal(vals[audience.ColUserID], prevUser)
		if start {
			if q.UserOrder {
				orderDevices(b.rows[userStart:])
			}
			if b.full() {
				if err := r.cfg.Failpoints.Hit(failpoint.AfterFetch); err != nil {
					return err
				}
				if err := sendRows(ctx, out, b); err != nil {
					return err
				}
				if b, err = takeRows(ctx, free); err != nil {
					return err
				}
			}
			userStart = len(b.rows)
			*users++
		}
		b.rows = append(b.rows, candidate{})
		c := &b.rows[len(b.rows)-1]
		if err := decodeRow(b, c, vals, q.Device); err != nil {
			return err
		}
		c.Start = start
		prevUser = append(prevUser[:0], c.UserID...)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("stream audience: %w", err)
	}
	if q.UserOrder {
		orderDevices(b.rows[userStart:])
	}
	if len(b.rows) > 0 {
		if err := r.cfg.Failpoints.Hit(failpoint.AfterFetch); err != nil {
			return err
		}
		return sendRows(ctx, out, b)
	}
	return nil
}

// orderDevices puts one user's rows in notifly_device_id byte order, the
// contract's order within a user, and keeps Start on the first. They
// usually arrive in it already (see audience.Query.UserOrder): one pass
// checks that before anything moves.
func orderDevices(rows []candidate) {
	byDevice := func(a, b candidate) int { return bytes.Compare(a.DeviceID, b.DeviceID) }
	if len(rows) < 2 || slices.IsSortedFunc(rows, byDevice) {
		return
	}
	slices.SortFunc(rows, byDevice)
	for i := range rows {
		rows[i].Start = i == 0
	}
}

func takeRows(ctx context.Context, free <-chan *rowBatch) (*rowBatch, error) {
	select {
	case b := <-free:
		b.reset()
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func sendRows(ctx context.Context, out chan<- *rowBatch, b *rowBatch) error {
	select {
	case out <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// decodeRow fills c from one row of the audience query (columns as in
// package audience).
func decodeRow(b *rowBatch, c *candidate, v [][]byte, device bool) error {
	c.HasUser = true
	c.UserID = b.copy(v[audience.ColUserID])
	c.ExternalUserID = b.copy(v[audience.ColExternalUserID])
	c.Email = b.copy(v[audience.ColEmail])
	c.Phone = b.copy(v[audience.ColPhone])
	c.Properties = b.copy(v[audience.ColProperties])
	bucket, err := strconv.Atoi(string(v[audience.ColBucket]))
	if err != nil {
		return fmt.Errorf("decode random_bucket_number of user %s: %w", v[audience.ColUserID], err)
	}
	c.Bucket = bucket
	c.Previous = isTrue(v[audience.ColPrevious])
	c.NoConsent = !isTrue(v[audience.ColConsent])
	c.NightConsent = isTrue(v[audience.ColNightConsent])
	c.Capped = isTrue(v[audience.ColCapped])
	// Only a JSON string is a zone or a language tag.
	c.Zone = b.copy(audience.StringValue(v[audience.ColZone], b.scratch[:0]))
	c.Language = b.copy(audience.StringValue(v[audience.ColLanguage], b.scratch[:0]))
	if !device || v[audience.ColDeviceID] == nil {
		return nil
	}
	c.HasDevice = true
	c.DeviceID = b.copy(v[audience.ColDeviceID])
	c.ExternalDeviceID = b.copy(v[audience.ColExternalDeviceID])
	c.Token = b.copy(v[audience.ColToken])
	c.Platform = b.copy(v[audience.ColPlatform])
	c.OSVersion = b.copy(v[audience.ColOSVersion])
	c.AppVersion = b.copy(v[audience.ColAppVersion])
	c.SDKVersion = b.copy(v[audience.ColSDKVersion])
	c.SDKType = b.copy(v[audience.ColSDKType])
	c.DeviceUpdatedAt = pgTime(v[audience.ColDeviceUpdatedAt])
	return nil
}

// isTrue reads a boolean column in text format; NULL is false.
func isTrue(v []byte) bool { return len(v) == 1 && v[0] == 't' }

// pgEpochMicros is the zero of PostgreSQL's binary timestamps (2000-01-01)
// in Unix microseconds.
const pgEpochMicros = 946684800_000_000

// pgTime decodes a binary timestamptz; ±infinity become the far ends of
// time rather than failing the run.
func pgTime(v []byte) time.Time {
	if len(v) != 8 {
		return time.Time{}
	}
	us := int64(binary.BigEndian.Uint64(v))
	switch us {
	case 1<<63 - 1:
		return time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	case -1 << 63:
		return time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.UnixMicro(us + pgEpochMicros).UTC()
}

// maxEstimate caps the de-duplication set sized up front (about 470 MB); a
// larger audience grows it as it goes.
const maxEstimate = 50_000_000

// estimateRows asks the planner how many rows the audience query returns,
// so the de-duplication set is allocated once at its final size instead
// of growing (a growth holds the old and the new table at once). It is
// only a hint: on any error, or an estimate far off, the set grows.
func (r *Runner) estimateRows(ctx context.Context, q *audience.Query) int64 {
	var plan []byte
	if err := r.cfg.Pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+q.SQL, q.Args...).Scan(&plan); err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.Debug("estimate audience size", "err", err)
		}
		return 0
	}
	var out []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(plan, &out); err != nil || len(out) == 0 {
		return 0
	}
	return min(int64(out[0].Plan.Rows), maxEstimate)
}

// shapeSample is how many users a run samples to shape its reading.
const shapeSample = 2000

// devicesOfAudienceBelow is the share of the project's users a segment
// selects under which its device reading keeps only their devices
// (audience.Spec.DevicesOfAudience): measured on 1M users, a third
// selected read 21% faster that way, all of them 20% slower.
const devicesOfAudienceBelow = 0.5

// shapeRead chooses, from a sample of the project's users, how a segment
// read in user order reads its devices: when it selects few users, only
// theirs (audience.Spec.DevicesOfAudience). It leaves the plan as it is
// for other audiences, for projects under Config.ShapeUsers, and when
// the sample is too small to tell. The rows, their order and every key
// are the same either way.
func (r *Runner) shapeRead(ctx context.Context, p *plan) error {
	q, spec := p.query, p.spec
	if r.cfg.ShapeUsers < 0 || q == nil || !q.UserOrder || len(spec.Audience.Groups) == 0 {
		return nil
	}
	est, err := audience.UserEstimate(ctx, r.cfg.Pool, p.tables)
	if err != nil || est < float64(r.cfg.ShapeUsers) {
		return err
	}
	sample, err := audience.SampleUsers(ctx, r.cfg.Pool, spec, est, shapeSample)
	if err != nil {
		return err
	}
	if len(sample.All) < 16 || float64(len(sample.Selected)) >= devicesOfAudienceBelow*float64(len(sample.All)) {
		return nil
	}
	spec.DevicesOfAudience = true
	if p.query, err = compile(spec); err != nil {
		return err
	}
	p.spec = spec
	return nil
}

package publish

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
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

// streamDB runs the audience query and streams its rows: read as
// PostgreSQL sends them, never paged with OFFSET and never held whole. A
// query in several parts (consecutive key ranges, see headStart) is one
// stream: every part is started at once, so that the later parts sort
// while the earlier ones are read, and their rows are read in order. It
// counts the distinct users streamed into *users.
func (r *Runner) streamDB(ctx context.Context, parts []*audience.Query, out chan<- *rowBatch, free <-chan *rowBatch, users *int64) error {
	ctx, cancel := context.WithCancel(ctx)
	// Later parts are opened beside the first; each sends exactly one
	// opened on its channel.
	later := make([]chan openedRows, len(parts))
	for i := 1; i < len(parts); i++ {
		later[i] = make(chan openedRows, 1)
		go func() { later[i] <- r.openRows(ctx, parts[i], partConnWait) }()
	}
	next := 1
	defer func() {
		// A run that ends early ends the parts it did not read: their
		// queries are cancelled before their connections are released.
		cancel()
		for ; next < len(parts); next++ {
			(<-later[next]).close()
		}
	}()
	s := &dbStream{out: out, free: free, users: users}
	var err error
	if s.b, err = takeRows(ctx, free); err != nil {
		return err
	}
	for i, q := range parts {
		var o openedRows
		if i == 0 {
			o = r.openRows(ctx, q, 0)
		} else {
			o = <-later[i]
			next = i + 1
			if errors.Is(o.err, errNoPartConn) {
				// The pool had no second connection to spare: this part
				// runs now, on the connection the earlier one released.
				o = r.openRows(ctx, q, 0)
			}
		}
		if o.err != nil {
			return o.err
		}
		err := r.readRows(ctx, q, o.rows, s)
		o.close()
		if err != nil {
			return err
		}
	}
	if s.userOrder {
		orderDevices(s.b.rows[s.userStart:])
	}
	if len(s.b.rows) > 0 {
		if err := r.cfg.Failpoints.Hit(failpoint.AfterFetch); err != nil {
			return err
		}
		return sendRows(ctx, out, s.b)
	}
	return nil
}

// partConnWait bounds the wait for a connection of a part started beside
// an earlier one: a pool shared by several runs may have none to spare,
// and a run holding one connection must not wait for ever on a second.
const partConnWait = time.Second

var errNoPartConn = errors.New("no connection to spare for a later part")

// openedRows is a started audience query and how to end it.
type openedRows struct {
	rows pgx.Rows
	done func()
	err  error
}

func (o openedRows) close() {
	if o.rows != nil {
		o.rows.Close()
	}
	if o.done != nil {
		o.done()
	}
}

// openRows starts q on a connection of its own. wait > 0 bounds the wait
// for that connection (errNoPartConn when it passes).
func (r *Runner) openRows(ctx context.Context, q *audience.Query, wait time.Duration) openedRows {
	actx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	conn, err := r.cfg.Pool.Acquire(actx)
	if err != nil {
		if wait > 0 && ctx.Err() == nil {
			return openedRows{err: errNoPartConn}
		}
		return openedRows{err: fmt.Errorf("acquire connection: %w", err)}
	}
	args := QueryArgs(q)
	var db interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	} = conn
	done := conn.Release
	if q.Listed {
		// The planner setting holds for this query only: a read-only
		// transaction around it (rolled back at the end: nothing to keep).
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			conn.Release()
			return openedRows{err: fmt.Errorf("begin audience query: %w", err)}
		}
		done = func() {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			conn.Release()
		}
		if _, err := tx.Exec(ctx, audience.Probing); err != nil {
			done()
			return openedRows{err: fmt.Errorf("set planner cost for id list: %w", err)}
		}
		db = tx
	}
	rows, err := db.Query(ctx, q.SQL, args...)
	if err != nil {
		done()
		return openedRows{err: fmt.Errorf("query audience: %w", err)}
	}
	return openedRows{rows: rows, done: done}
}

// dbStream is where the stream's rows go, kept across the parts of a
// query.
type dbStream struct {
	out       chan<- *rowBatch
	free      <-chan *rowBatch
	users     *int64
	b         *rowBatch
	prevUser  []byte
	userStart int
	userOrder bool
}

// readRows appends the rows of one part to the stream. A batch ends only
// where a user ends, so that a user's rows can be put in device order
// (Query.UserOrder) and are never split.
func (r *Runner) readRows(ctx context.Context, q *audience.Query, rows pgx.Rows, s *dbStream) error {
	s.userOrder = q.UserOrder
	for rows.Next() {
		vals := rows.RawValues()
		start := !bytes.Equal(vals[audience.ColUserID], s.prevUser)
		if start {
			if q.UserOrder {
				orderDevices(s.b.rows[s.userStart:])
			}
			if s.b.full() {
				if err := r.cfg.Failpoints.Hit(failpoint.AfterFetch); err != nil {
					return err
				}
				if err := sendRows(ctx, s.out, s.b); err != nil {
					return err
				}
				var err error
				if s.b, err = takeRows(ctx, s.free); err != nil {
					return err
				}
			}
			s.userStart = len(s.b.rows)
			*s.users++
		}
		s.b.rows = append(s.b.rows, candidate{})
		c := &s.b.rows[len(s.b.rows)-1]
		if err := decodeRow(s.b, c, vals, q.Device); err != nil {
			return err
		}
		c.Start = start
		s.prevUser = append(s.prevUser[:0], c.UserID...)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("stream audience: %w", err)
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

// headFraction is the share of the audience's users in the first key
// range of a head start.
const headFraction = 0.125

// headSample is how many users a run samples to shape its reading.
const headSample = 2000

// devicesOfAudienceBelow is the share of the project's users a segment
// selects under which its device reading keeps only their devices
// (audience.Spec.DevicesOfAudience): measured on 1M users, a third
// selected read 21% faster that way, all of them 20% slower.
const devicesOfAudienceBelow = 0.5

// headStart shapes the reading of an audience read in user order, from
// a sample of the project's users (Config.HeadStartUsers and more):
//
//   - A segment that selects few of them reads only their devices
//     (audience.Spec.DevicesOfAudience), but in the first key range.
//   - A whole run streams a first key range beside the rest (streamDB),
//     returned as parts. Read in user order, an audience is sorted
//     before its first row is sent: at the default 4MB work_mem, 1.2 s
//     for 1M users of the skewed benchmark data, during which nothing is
//     published. The first range, an eighth of the audience's users,
//     sorts a fraction of that and is published while the rest sorts.
//
// The rows, their order and every key are those of the one query: the
// ranges are consecutive in byte order and each is ordered alike. No
// parts: one query (not read in user order, an id list, a range, a small
// project, or a sample too small to cut).
func (r *Runner) headStart(ctx context.Context, p *plan) ([]*audience.Query, error) {
	q, spec := p.query, p.spec
	if r.cfg.HeadStartUsers < 0 || q == nil || !q.UserOrder || q.Listed || spec.After != "" {
		return nil, nil
	}
	est, err := audience.UserEstimate(ctx, r.cfg.Pool, p.tables)
	if err != nil || est < float64(r.cfg.HeadStartUsers) {
		return nil, err
	}
	sample, err := audience.SampleUsers(ctx, r.cfg.Pool, spec, est, headSample)
	if err != nil {
		return nil, err
	}
	if len(sample.All) < 16 {
		return nil, nil
	}
	if len(spec.Audience.Groups) > 0 && float64(len(sample.Selected)) < devicesOfAudienceBelow*float64(len(sample.All)) {
		spec.DevicesOfAudience = true
		if p.query, err = compile(spec); err != nil {
			return nil, err
		}
		p.spec = spec
	}
	if spec.From != "" || spec.Before != "" || len(sample.Selected) < 16 {
		return nil, nil
	}
	key := sample.Selected[int(float64(len(sample.Selected))*headFraction)]
	head, tail := spec, spec
	head.Before, tail.From = key, key
	// The head's sort is small: a second scan of the users to shrink it
	// would cost more than it saves, and the head is what the first
	// message waits for.
	head.DevicesOfAudience = false
	hq, err := compile(head)
	if err != nil {
		return nil, err
	}
	tq, err := compile(tail)
	if err != nil {
		return nil, err
	}
	return []*audience.Query{hq, tq}, nil
}

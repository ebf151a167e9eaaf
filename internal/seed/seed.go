// Package seed fills a project's tables with realistic synthetic data, fast:
// rows are generated as COPY text and streamed into PostgreSQL, tables load
// concurrently, and keys are added after the load. The data holds the cases
// that break publishers: invalid and shared emails, phones in every format,
// users with no device or several, blank and shared tokens, versions that
// sort wrong as text, orphan devices, typed and mistyped properties.
//
// Data is deterministic for a seed: user i's rows come from a random stream
// of their own, so tables can be generated in parallel.
package seed

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/segpub/segpub/internal/progress"
	"github.com/segpub/segpub/internal/schema"
)

// Config configures Run.
type Config struct {
	ProjectID string
	Users     int
	// Seed selects the data; the same seed gives the same rows. Default 1.
	Seed int64
	// Now is the reference time of events and deliveries. Default:
	// time.Now.
	Now    time.Time
	Logger *slog.Logger
	// Progress is where a progress bar is drawn (when it is a terminal).
	Progress io.Writer
	// Replace drops the project's tables first if they exist.
	Replace bool
	// Targeting adds the properties delivery targeting reads
	// (docs/delivery.md): "timezone" and "language", from a stream of
	// their own, so the other columns are those of a seed without them.
	Targeting bool
	// Generator is the shape of the data (Generators); default Uniform.
	Generator Generator
}

// Stats counts the rows written.
type Stats struct {
	Users, Devices, Events, Deliveries, Variants int64
	Duration                                     time.Duration
}

// Experiment ids and campaigns the seeded data refers to.
const (
	ExperimentID       = "exp_ab"
	ExperimentCampaign = "cmp_ab"
	PreviousCampaign   = "cmp_prev1"
)

// Run creates the tables and loads them.
func Run(ctx context.Context, pool *pgxpool.Pool, cfg Config) (Stats, error) {
	start := time.Now()
	cfg.Seed = cmp.Or(cfg.Seed, 1)
	shapeName, err := ParseGenerator(string(cfg.Generator))
	if err != nil {
		return Stats{}, fmt.Errorf("seed: Generator: %w", err)
	}
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	log := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	t, err := schema.For(cfg.ProjectID)
	if err != nil {
		return Stats{}, err
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t.User).Scan(&exists); err != nil {
		return Stats{}, fmt.Errorf("seed %s: look up tables: %w", cfg.ProjectID, err)
	}
	if exists && !cfg.Replace {
		return Stats{}, fmt.Errorf("seed: project %s already has tables: seed --replace drops and recreates them", cfg.ProjectID)
	}
	stmts := append(t.DropStatements(), t.CreateStatements(false)...)
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			return Stats{}, fmt.Errorf("seed %s: %w", cfg.ProjectID, err)
		}
	}
	g := &gen{cfg: cfg, seoulToday: seoulDate(cfg.Now), shape: shapes[shapeName]}
	// The bar counts users: those whose rows every table has received (the
	// slowest of the three loads), so 100,000 users end at 100000/100000.
	bar := progress.New(progress.Config{Label: "seed users", Total: int64(cfg.Users), Out: cfg.Progress, Logger: log})
	var loaded [3]atomic.Int64
	var barMu sync.Mutex
	advance := func(table int, n int64) {
		loaded[table].Add(n)
		barMu.Lock()
		defer barMu.Unlock()
		bar.Set(min(loaded[0].Load(), loaded[1].Load(), loaded[2].Load()))
	}
	var st Stats
	eg, ectx := errgroup.WithContext(ctx)
	tables := 0
	load := func(table, columns string, n *int64, write func(w *bufio.Writer, i int) int) {
		idx := tables
		tables++
		eg.Go(func() error {
			c, err := copyRows(ectx, pool, table, columns, cfg.Users, func(w *bufio.Writer, i int) int {
				k := write(w, i)
				if i%4096 == 4095 {
					advance(idx, 4096)
				}
				return k
			})
			*n = c
			if err != nil {
				return fmt.Errorf("seed %s: load %s: %w", cfg.ProjectID, table, err)
			}
			// The users after the last full 4096: the bar ends at its total.
			advance(idx, int64(cfg.Users%4096))
			return nil
		})
	}
	load(t.User, "notifly_user_id, external_user_id, email, phone_number, user_properties, random_bucket_number", &st.Users, func(w *bufio.Writer, i int) int { return g.shape.user(g, w, i) })
	load(t.Device, "notifly_device_id, notifly_user_id, external_device_id, device_token, platform, os_version, app_version, sdk_version, sdk_type", &st.Devices, func(w *bufio.Writer, i int) int { return g.shape.devices(g, w, i) })
	load(t.EventCounts, "notifly_user_id, name, dt, count, sum_event_value", &st.Events, g.events)
	if err := eg.Wait(); err != nil {
		return st, err
	}
	bar.Done()
	n, err := copyRows(ctx, pool, t.DeliveryResult, "campaign_id, notifly_user_id, channel, status, created_at", cfg.Users, g.deliveries)
	if err != nil {
		return st, fmt.Errorf("seed %s: load deliveries: %w", cfg.ProjectID, err)
	}
	st.Deliveries = n
	if _, err := pool.Exec(ctx, `INSERT INTO `+t.Experiments+` VALUES ($1, $2, 'active')`, ExperimentID, ExperimentCampaign); err != nil {
		return st, fmt.Errorf("seed %s: experiment: %w", cfg.ProjectID, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO `+t.Variants+` VALUES ('var_a', $1, $2, 'A', 45), ('var_b', $1, $2, 'B', 45), ('var_control', $1, $2, 'control', 10)`,
		ExperimentID, ExperimentCampaign); err != nil {
		return st, fmt.Errorf("seed %s: variants: %w", cfg.ProjectID, err)
	}
	st.Variants = 3
	log.Info("adding keys", "project", cfg.ProjectID)
	// Keys build concurrently, one table each.
	eg, ectx = errgroup.WithContext(ctx)
	for _, s := range t.KeyStatements() {
		eg.Go(func() error {
			if _, err := pool.Exec(ectx, s); err != nil {
				return fmt.Errorf("seed %s: %s: %w", cfg.ProjectID, s, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return st, err
	}
	// VACUUM as well as ANALYZE: freshly loaded pages have no hint bits
	// and no visibility map, so the first readers (or autovacuum, in the
	// middle of a benchmark) would pay to set them. Production tables are
	// vacuumed; the seeded ones should read the same.
	for _, tbl := range t.All() {
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+tbl); err != nil {
			return st, fmt.Errorf("seed %s: vacuum: %w", cfg.ProjectID, err)
		}
	}
	st.Duration = time.Since(start)
	log.Info("seeded", "project", cfg.ProjectID, "users", st.Users, "devices", st.Devices, "events", st.Events,
		"deliveries", st.Deliveries, "duration", st.Duration.Round(time.Millisecond))
	return st, nil
}

// copyRows streams rows generated for users 0..n-1 into one COPY; write
// returns how many rows it wrote for user i.
func copyRows(ctx context.Context, pool *pgxpool.Pool, table, columns string, n int, write func(w *bufio.Writer, i int) int) (int64, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	pr, pw := io.Pipe()
	var rows int64
	go func() {
		w := bufio.NewWriterSize(pw, 1<<20)
		for i := 0; i < n; i++ {
			if i%1024 == 0 && ctx.Err() != nil {
				pw.CloseWithError(ctx.Err())
				return
			}
			rows += int64(write(w, i))
		}
		pw.CloseWithError(w.Flush())
	}()
	_, err = conn.Conn().PgConn().CopyFrom(ctx, pr, "COPY "+table+" ("+columns+") FROM STDIN")
	pr.CloseWithError(errors.New("copy ended"))
	return rows, err
}

func seoulDate(t time.Time) time.Time {
	loc, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		loc = time.FixedZone("KST", 9*3600)
	}
	s := t.In(loc)
	return time.Date(s.Year(), s.Month(), s.Day(), 0, 0, 0, 0, time.UTC)
}

// gen generates each table's rows for user i.
type gen struct {
	cfg        Config
	seoulToday time.Time
	shape      shape
}

// userID is user i's notifly_user_id in the generator's shape.
func (g *gen) userID(i int) string { return g.shape.userID(g, i) }

// Stream ids keep each table's random choices independent of the others'.
const (
	streamUser = iota + 1
	streamDevice
	streamEvent
	streamDelivery
	streamTargeting
)

func (g *gen) rng(stream uint64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(g.cfg.Seed)*16+stream, uint64(i)))
}

// UserID is user i's notifly_user_id: 32 hex digits from a hash, so id order
// is not insertion order (as in production).
func (g *gen) UserID(i int) string { return hex128(uint64(g.cfg.Seed), uint64(i)) }

func hex128(a, b uint64) string {
	x, y := mix(a*0x9e3779b97f4a7c15^b), mix(b*0xbf58476d1ce4e5b9^a^0x94d049bb133111eb)
	s := strconv.FormatUint(x, 16) + strconv.FormatUint(y, 16)
	for len(s) < 32 {
		s = "0" + s
	}
	return s
}

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

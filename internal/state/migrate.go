package state

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// migrations are segpub's schema, one numbered file per change, applied in
// order and recorded in VersionTable. A change of segpub's tables is a new
// file; an applied file is never edited (goose does not notice, and the
// databases that applied it keep the old version).
//
//go:embed migrations/*.sql
var migrations embed.FS

// VersionTable records which migrations a database has applied.
const VersionTable = "segpub_schema_migrations"

// lockKey is the advisory lock that serialises changes of segpub's
// tables. It is the key segpub took before its migrations were numbered
// (internal/ddl), so a process of that version starting beside one of
// this version waits for it rather than race it.
const lockKey int64 = 0x5e9b0b0dd1

// Migrate applies the migrations pool's database has not applied yet.
// Several processes start at once on a fresh database: one applies them
// under an advisory lock while the others wait. A database that has them
// all runs nothing but one read of VersionTable: idempotent DDL is not free
// (ALTER TABLE ... ADD COLUMN IF NOT EXISTS takes an ACCESS EXCLUSIVE lock
// even when the column exists, and while it waits for a running
// transaction every query on the table queues behind it).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer func() { _ = db.Close() }()
	p, err := provider(db)
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("migrate segpub tables: read %s: %w", VersionTable, err)
	}
	if !pending {
		return nil
	}
	// Up takes the lock, then reads again what is applied: another process
	// may have applied it meanwhile.
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate segpub tables: %w", err)
	}
	return nil
}

// Version returns the newest migration pool's database has applied (0:
// none) and the newest this build has.
func Version(ctx context.Context, pool *pgxpool.Pool) (current, latest int64, err error) {
	db := stdlib.OpenDBFromPool(pool)
	defer func() { _ = db.Close() }()
	p, err := provider(db)
	if err != nil {
		return 0, 0, err
	}
	current, latest, err = p.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", VersionTable, err)
	}
	return current, latest, nil
}

func provider(db *sql.DB) (*goose.Provider, error) {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(advisoryLock{}),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("segpub migrations: %w", err)
	}
	return p, nil
}

// advisoryLock is goose's session lock: pg_advisory_lock, which waits for
// the holder (goose's own Postgres locker polls, at most once a second,
// and several workers starting together would each wait that long).
type advisoryLock struct{}

func (advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		return fmt.Errorf("take the schema lock: %w", err)
	}
	return nil
}

func (advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, lockKey); err != nil {
		return fmt.Errorf("release the schema lock: %w", err)
	}
	return nil
}

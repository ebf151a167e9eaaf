// Package ddl applies segpub's own table definitions. Several workers start
// at once on a fresh database, and concurrent CREATE TABLE IF NOT EXISTS of
// the same table can fail on PostgreSQL's catalog unique index, so the
// statements run in one transaction under an advisory lock.
//
// Each definition is applied once per version: a digest of the statements
// is recorded in segpub_schema, and a process that finds its own digest
// there runs nothing. Idempotent DDL is not free: ALTER TABLE ... ADD
// COLUMN IF NOT EXISTS takes an ACCESS EXCLUSIVE lock even when the column
// exists, and while it waits for a running transaction every other query on
// the table queues behind it, so a worker starting beside busy ones could
// stall them all.
package ddl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lockKey is the advisory lock that serialises segpub's DDL.
const lockKey = 0x5e9b0b0dd1

// LockTimeout bounds how long a definition waits for a table lock: a
// change of segpub's tables queued behind a long transaction fails (and is
// retried by the caller's restart) rather than hold every query back.
const LockTimeout = "10s"

const registry = `CREATE TABLE IF NOT EXISTS segpub_schema (
  name       text PRIMARY KEY,
  digest     text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`

// Apply runs statements (idempotent DDL) under segpub's DDL lock, unless
// this version of them was applied already; what names them in errors and
// in segpub_schema.
func Apply(ctx context.Context, pool *pgxpool.Pool, what, statements string) error {
	sum := sha256.Sum256([]byte(statements))
	digest := hex.EncodeToString(sum[:])
	if current(ctx, pool, what, digest) {
		return nil
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKey)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '`+LockTimeout+`'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, registry); err != nil {
			return err
		}
		// Another process may have applied it while this one waited.
		var got string
		err := tx.QueryRow(ctx, `SELECT digest FROM segpub_schema WHERE name = $1`, what).Scan(&got)
		if err == nil && got == digest {
			return nil
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, statements); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO segpub_schema (name, digest) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET digest = EXCLUDED.digest, applied_at = now()`, what, digest)
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", what, err)
	}
	return nil
}

// current reports whether this version of the statements is applied; any
// error (no registry yet) means it must be applied.
func current(ctx context.Context, pool *pgxpool.Pool, what, digest string) bool {
	var got string
	err := pool.QueryRow(ctx, `SELECT digest FROM segpub_schema WHERE name = $1`, what).Scan(&got)
	return err == nil && got == digest
}

// Package ddl applies segpub's own table definitions. Several workers start
// at once on a fresh database, and concurrent CREATE TABLE IF NOT EXISTS of
// the same table can fail on PostgreSQL's catalog unique index, so the
// statements run in one transaction under an advisory lock.
package ddl

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lockKey is the advisory lock that serialises segpub's DDL.
const lockKey = 0x5e9b0b0dd1

// Apply runs statements (idempotent DDL) under segpub's DDL lock; what
// names them in errors.
func Apply(ctx context.Context, pool *pgxpool.Pool, what, statements string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKey)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, statements)
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", what, err)
	}
	return nil
}

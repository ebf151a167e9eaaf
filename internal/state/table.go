package state

// A message store's table may have a name of the operator's choosing
// (pgstore), which no numbered migration can name: it is created by
// applyOnce, which applies a definition once per version of its text.
//
// Several workers start at once on a fresh database, and concurrent CREATE
// TABLE IF NOT EXISTS of the same table can fail on PostgreSQL's catalog
// unique index, so the statements run in one transaction under the schema
// lock. A digest of the statements is recorded in segpub_schema, and a
// process that finds its own digest there runs nothing.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LockTimeout bounds how long a definition waits for a table lock: a
// change of segpub's tables queued behind a long transaction fails (and is
// retried by the caller's restart) rather than hold every query back.
const LockTimeout = "10s"

const registry = `CREATE TABLE IF NOT EXISTS segpub_schema (
  name       text PRIMARY KEY,
  digest     text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`

// applyOnce runs statements (idempotent DDL) under segpub's DDL lock, unless
// this version of them was applied already; what names them in errors and
// in segpub_schema.
func applyOnce(ctx context.Context, pool *pgxpool.Pool, what, statements string) error {
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

// DefaultMessageTable is the message store's table unless configured
// otherwise; migration 00004 creates it.
const DefaultMessageTable = "segpub_messages"

var messageTableRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// MessageTable migrates pool's database and creates the message store's
// table name when it is not the default one.
func MessageTable(ctx context.Context, pool *pgxpool.Pool, name string) error {
	if !messageTableRe.MatchString(name) {
		return fmt.Errorf("message table name %q: want [a-z_][a-z0-9_]*", name)
	}
	if err := Migrate(ctx, pool); err != nil {
		return err
	}
	if name == DefaultMessageTable {
		return nil
	}
	return applyOnce(ctx, pool, "message table "+name,
		`CREATE TABLE IF NOT EXISTS "`+name+`" (id text PRIMARY KEY, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`)
}

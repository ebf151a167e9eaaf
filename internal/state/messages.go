package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/msgstore"
)

// Messages is the claim-check message store's table (pgstore): id text
// primary key, body text (the same shape as the DynamoDB item).
type Messages struct {
	pool  *pgxpool.Pool
	table string
}

// NewMessages returns the message store in table (default
// DefaultMessageTable) of pool's database, migrating it and creating the
// table if needed.
func NewMessages(ctx context.Context, pool *pgxpool.Pool, table string) (*Messages, error) {
	if table == "" {
		table = DefaultMessageTable
	}
	if err := MessageTable(ctx, pool, table); err != nil {
		return nil, err
	}
	return &Messages{pool: pool, table: `"` + table + `"`}, nil
}

// Get returns the body stored under id. A body over maxBytes never leaves
// the database: its length is read first (octet_length does not detoast).
func (s *Messages) Get(ctx context.Context, id string, maxBytes int64) ([]byte, error) {
	var size int64
	var body *string
	err := s.pool.QueryRow(ctx, `SELECT octet_length(body), CASE WHEN octet_length(body) <= $2 THEN body END FROM `+s.table+` WHERE id = $1`,
		id, maxBytes).Scan(&size, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, msgstore.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get message %s: %w", id, err)
	}
	if body == nil {
		return nil, fmt.Errorf("message %s is %d bytes: %w", id, size, msgstore.ErrTooLarge)
	}
	return []byte(*body), nil
}

// Put stores body under id, replacing what was there.
func (s *Messages) Put(ctx context.Context, id string, body []byte) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body`, id, string(body)); err != nil {
		return fmt.Errorf("put message %s: %w", id, err)
	}
	return nil
}

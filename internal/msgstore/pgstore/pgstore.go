// Package pgstore is a claim-check message store in a PostgreSQL table:
// id text primary key, body text (the same shape as the DynamoDB item).
// The table is one of segpub's own: internal/state creates it and holds
// the SQL on it.
package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/state"
)

// Store is a table of job bodies.
type Store = state.Messages

// New returns a Store on table (default segpub_messages), creating it if
// needed.
func New(ctx context.Context, pool *pgxpool.Pool, table string) (*Store, error) {
	s, err := state.NewMessages(ctx, pool, table)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return s, nil
}

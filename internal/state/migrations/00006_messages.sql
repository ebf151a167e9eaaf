-- The claim-check message store's default table (pgstore), as created
-- before migrations were numbered. A store configured with another table
-- name creates that one itself (state.MessageTable).
-- +goose Up
SET LOCAL lock_timeout = '10s';
CREATE TABLE IF NOT EXISTS segpub_messages (id text PRIMARY KEY, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());

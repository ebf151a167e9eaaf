-- A dead letter's body that jsonb cannot hold (a \u0000 escape, a number
-- past numeric's range) is kept as its bytes. Idempotent: segpub created
-- it before this file (console.Schema).
-- +goose Up
SET LOCAL lock_timeout = '10s';
ALTER TABLE segpub_dead_letters ADD COLUMN IF NOT EXISTS raw bytea;
ALTER TABLE segpub_dead_letters ALTER COLUMN body DROP NOT NULL;

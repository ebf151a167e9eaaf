-- The fingerprint of the job a run was claimed for: a copy of another job
-- under the same request_id is a conflict, never run under it. Idempotent:
-- segpub created it before this file (ledger.Schema).
-- +goose Up
SET LOCAL lock_timeout = '10s';
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS job_fingerprint text;

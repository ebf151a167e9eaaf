-- The run ledger and the destinations of partitioned runs, as segpub
-- created them before its migrations were numbered: every statement is
-- idempotent, so a database created then is taken over as it is.
-- +goose Up
SET LOCAL lock_timeout = '10s';
CREATE TABLE IF NOT EXISTS segpub_runs (
  request_id     text PRIMARY KEY,
  project_id     text NOT NULL,
  campaign_id    text NOT NULL,
  action         text NOT NULL,
  status         text NOT NULL,
  attempts       int  NOT NULL DEFAULT 0,
  owner          text,
  lease_until    timestamptz,
  reference_time timestamptz NOT NULL,
  candidates     bigint NOT NULL DEFAULT 0,
  published      bigint NOT NULL DEFAULT 0,
  result         jsonb,
  error          text,
  checkpoint     jsonb,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS parent text;
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS job jsonb;
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS plan jsonb;
CREATE INDEX IF NOT EXISTS segpub_runs_parent ON segpub_runs (parent) WHERE parent IS NOT NULL;
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS control text;
CREATE TABLE IF NOT EXISTS segpub_partition_destinations (
  request_id text NOT NULL,
  part       int  NOT NULL,
  fp         bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS segpub_partition_destinations_fp ON segpub_partition_destinations (request_id, fp, part);

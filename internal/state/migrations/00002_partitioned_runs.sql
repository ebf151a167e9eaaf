-- Partitioned runs: a range's run names its partitioned run (parent), which
-- keeps its job and plan; the destinations each range's scan found.
-- +goose Up
SET LOCAL lock_timeout = '10s';
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS parent text;
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS job jsonb;
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS plan jsonb;
CREATE INDEX IF NOT EXISTS segpub_runs_parent ON segpub_runs (parent) WHERE parent IS NOT NULL;
CREATE TABLE IF NOT EXISTS segpub_partition_destinations (
  request_id text NOT NULL,
  part       int  NOT NULL,
  fp         bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS segpub_partition_destinations_fp ON segpub_partition_destinations (request_id, fp, part);

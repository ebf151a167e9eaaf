-- The run ledger as segpub first created it. Migrations 1 to 6 are the
-- definitions segpub applied before its migrations were numbered, each as
-- idempotent as it was, so a database created then is taken over as it
-- is: goose records them and they change nothing that exists.
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

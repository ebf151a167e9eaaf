-- segpub's tables as created before its migrations were numbered (the
-- definitions of ledger.Schema, scheduler.Schema, console.Schema and
-- pgstore's table, applied by internal/ddl with its digest registry).

CREATE TABLE IF NOT EXISTS segpub_schema (
  name       text PRIMARY KEY,
  digest     text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
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
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS job_fingerprint text;
CREATE TABLE IF NOT EXISTS segpub_partition_destinations (
  request_id text NOT NULL,
  part       int  NOT NULL,
  fp         bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS segpub_partition_destinations_fp ON segpub_partition_destinations (request_id, fp, part);
CREATE TABLE IF NOT EXISTS segpub_campaigns (
  id         text PRIMARY KEY,
  project_id text NOT NULL,
  action     text NOT NULL DEFAULT 'publish',
  campaign   jsonb NOT NULL,
  schedule   jsonb NOT NULL,
  status     text NOT NULL DEFAULT 'active',
  created_at timestamptz NOT NULL DEFAULT date_trunc('second', now()),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS segpub_occurrences (
  campaign_id text NOT NULL,
  occurrence  timestamptz NOT NULL,
  request_id  text NOT NULL UNIQUE,
  status      text NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (campaign_id, occurrence)
);
CREATE TABLE IF NOT EXISTS segpub_console_events (
  id          bigserial PRIMARY KEY,
  request_id  text NOT NULL,
  type        text NOT NULL,
  at          timestamptz NOT NULL,
  attempt     int NOT NULL DEFAULT 0,
  part        text NOT NULL DEFAULT '',
  candidates  bigint NOT NULL DEFAULT 0,
  published   bigint NOT NULL DEFAULT 0,
  error       text NOT NULL DEFAULT '',
  detail      jsonb
);
CREATE INDEX IF NOT EXISTS segpub_console_events_run ON segpub_console_events (request_id, at);
CREATE INDEX IF NOT EXISTS segpub_console_events_at ON segpub_console_events (at);
CREATE TABLE IF NOT EXISTS segpub_dead_letters (
  id                bigserial PRIMARY KEY,
  request_id        text NOT NULL DEFAULT '',
  kind              text NOT NULL,
  reason            text NOT NULL,
  attempts          int NOT NULL,
  failed_at         timestamptz NOT NULL,
  body              jsonb NOT NULL,
  replayed_at       timestamptz,
  replay_request_id text
);
CREATE INDEX IF NOT EXISTS segpub_dead_letters_failed_at ON segpub_dead_letters (failed_at);
ALTER TABLE segpub_dead_letters ADD COLUMN IF NOT EXISTS raw bytea;
ALTER TABLE segpub_dead_letters ALTER COLUMN body DROP NOT NULL;
CREATE TABLE IF NOT EXISTS "segpub_messages" (id text PRIMARY KEY, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());

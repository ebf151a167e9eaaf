-- What the console reads besides runs and campaigns (run events,
-- throughput samples, dead letters), as created before migrations were
-- numbered.
-- +goose Up
SET LOCAL lock_timeout = '10s';
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

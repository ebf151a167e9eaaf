-- Scheduled campaigns and the occurrences the scheduler enqueued, as
-- created before migrations were numbered.
-- +goose Up
SET LOCAL lock_timeout = '10s';
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

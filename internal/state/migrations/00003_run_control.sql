-- An operator's pause or cancel of a run, until its worker carries it out.
-- +goose Up
SET LOCAL lock_timeout = '10s';
ALTER TABLE segpub_runs ADD COLUMN IF NOT EXISTS control text;

-- A run's status is one of state.Status's values: a status the code
-- writes that the table does not know fails at once, in tests
-- (TestStatusesMatchSchema), not in an operator's console.
-- +goose Up
SET LOCAL lock_timeout = '10s';
ALTER TABLE segpub_runs DROP CONSTRAINT IF EXISTS segpub_runs_status_check, ADD CONSTRAINT segpub_runs_status_check CHECK (status IN (
  'running', 'retrying', 'handed_back', 'scanning', 'publishing', 'completed', 'rejected', 'failed', 'paused', 'cancelled'));

-- +goose Down
ALTER TABLE segpub_runs DROP CONSTRAINT segpub_runs_status_check;

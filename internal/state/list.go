package state

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// List returns the most recently updated runs that are not partitions, at
// most limit, newest first; with statuses, only runs in one of them, as
// operators see them (a paused partitioned run is paused). A
// partitioned run in progress shows the sums of its partitions' counts, as
// Get does.
func (l *Runs) List(ctx context.Context, statuses []Status, limit int) ([]*Run, error) {
	names := make([]string, len(statuses))
	for i, s := range statuses {
		names[i] = string(s)
	}
	rows, err := l.pool.Query(ctx, `SELECT `+partsColumns+` FROM segpub_runs r
WHERE r.parent IS NULL AND (cardinality($1::text[]) = 0 OR `+shownStatus+` = ANY($1))
ORDER BY r.updated_at DESC, r.request_id LIMIT $2`, names, limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return collect(rows, "list runs")
}

// Partitions returns the runs of a partitioned run's partitions (scan and
// publish phases), by request_id.
func (l *Runs) Partitions(ctx context.Context, parent string) ([]*Run, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+columns+` FROM segpub_runs WHERE parent = $1 ORDER BY request_id`, parent)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", parent, err)
	}
	return collect(rows, "partitions of "+parent)
}

// PreviousOf returns the latest completed run of a campaign other than
// requestID: what a run in progress can expect to publish.
func (l *Runs) PreviousOf(ctx context.Context, campaignID, requestID string) (*Run, error) {
	rows, err := l.pool.Query(ctx, `SELECT `+columns+` FROM segpub_runs
WHERE campaign_id = $1 AND request_id <> $2 AND parent IS NULL AND status = 'completed' AND action = 'publish'
ORDER BY finished_at DESC LIMIT 1`, campaignID, requestID)
	if err != nil {
		return nil, fmt.Errorf("previous run of %s: %w", campaignID, err)
	}
	runs, err := collect(rows, "previous run of "+campaignID)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return runs[0], nil
}

func collect(rows pgx.Rows, op string) ([]*Run, error) {
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Expiring is a kind of row that is deleted once it is past its
// retention (internal/cleaner).
type Expiring string

const (
	// ExpiredDestinations are the destination fingerprints of a
	// partitioned run that finished before the cut-off.
	ExpiredDestinations Expiring = "segpub_partition_destinations"
	// ExpiredRuns are runs that finished before the cut-off, never a
	// partition whose partitioned run has not finished.
	ExpiredRuns Expiring = "segpub_runs"
	// ExpiredOccurrences are scheduler occurrences before the cut-off.
	ExpiredOccurrences Expiring = "segpub_occurrences"
)

// Expirings are the kinds of expiring rows, in the order a pass deletes
// them: destinations first, while their run's row still says when it
// finished.
var Expirings = []Expiring{ExpiredDestinations, ExpiredRuns, ExpiredOccurrences}

// expire deletes one batch of each kind; every statement takes its cut-off
// as $1 and the batch size as $2.
var expire = map[Expiring]string{
	ExpiredDestinations: `DELETE FROM segpub_partition_destinations WHERE ctid = ANY(ARRAY(
  SELECT d.ctid FROM segpub_partition_destinations d JOIN segpub_runs r ON r.request_id = d.request_id
  WHERE r.status IN ('completed', 'rejected', 'failed', 'cancelled') AND r.finished_at < $1 LIMIT $2))`,
	ExpiredRuns: `DELETE FROM segpub_runs WHERE request_id = ANY(ARRAY(
  SELECT request_id FROM segpub_runs WHERE status IN ('completed', 'rejected', 'failed', 'cancelled') AND finished_at < $1
  AND (parent IS NULL OR parent NOT IN (SELECT request_id FROM segpub_runs WHERE status NOT IN ('completed', 'rejected', 'failed', 'cancelled')))
  LIMIT $2))`,
	ExpiredOccurrences: `DELETE FROM segpub_occurrences WHERE (campaign_id, occurrence) IN (
  SELECT campaign_id, occurrence FROM segpub_occurrences WHERE occurrence < $1 LIMIT $2)`,
}

// Execer runs a statement: a pool, a connection or a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// DeleteExpired deletes at most limit rows of kind k from before cutoff and
// returns how many it deleted.
func DeleteExpired(ctx context.Context, db Execer, k Expiring, cutoff time.Time, limit int) (int64, error) {
	sql, ok := expire[k]
	if !ok {
		return 0, fmt.Errorf("delete expired %s: no such kind of row", k)
	}
	tag, err := db.Exec(ctx, sql, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired %s: %w", k, err)
	}
	return tag.RowsAffected(), nil
}

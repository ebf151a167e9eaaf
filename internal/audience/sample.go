package audience

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

// Querier is what sampling needs of a pool or a connection.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// UserEstimate is the planner's estimate of the project's users (0 when
// the table was never analyzed).
func UserEstimate(ctx context.Context, db Querier, t schema.Tables) (float64, error) {
	var est float64
	if err := db.QueryRow(ctx, `SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = to_regclass($1)`, t.User).Scan(&est); err != nil {
		return 0, fmt.Errorf("estimate users of %s: %w", t.User, err)
	}
	return est, nil
}

// Sample is a sample of a project's users, each list in byte order of
// notifly_user_id: the order the audience query streams, from which key
// ranges are cut (ids are not assumed to be evenly spread, or hex).
type Sample struct {
	// All are the sampled users; Selected those of them the spec's groups
	// select (all of them without groups).
	All, Selected []string
}

// SampleUsers reads about n users from a sample of the user table's pages
// (est: UserEstimate) and which of them the spec's groups select. The
// groups must hold user conditions only (a sample reads no other table).
// The sample is the same for the same table contents (REPEATABLE), so a
// run and its retry cut the same ranges.
func SampleUsers(ctx context.Context, db Querier, s Spec, est float64, n int) (Sample, error) {
	t := s.Tables
	if est <= 0 {
		return Sample{}, nil
	}
	b := &builder{spec: s}
	for _, g := range s.Audience.Groups {
		for _, c := range g.Conditions {
			if c.Kind != job.KindUser {
				return Sample{}, fmt.Errorf("sample users of %s: a %s condition is not a user condition", t.User, c.Kind)
			}
		}
	}
	selected := "true"
	where, err := b.groupsWhere(s.Audience.Groups)
	if err != nil {
		return Sample{}, err
	}
	if where != "" {
		selected = "(" + where + ") IS TRUE"
	}
	pct := math.Min(100, math.Max(0.01, 100*float64(n)/est))
	sql := `SELECT u.notifly_user_id, ` + selected + ` FROM ` + t.User + ` u TABLESAMPLE SYSTEM (` + b.arg(pct) + `::float8) REPEATABLE (0)`
	rows, err := db.Query(ctx, sql, b.args...)
	if err != nil {
		return Sample{}, fmt.Errorf("sample users of %s: %w", t.User, err)
	}
	var out Sample
	var id string
	var sel bool
	_, err = pgx.ForEachRow(rows, []any{&id, &sel}, func() error {
		out.All = append(out.All, id)
		if sel {
			out.Selected = append(out.Selected, id)
		}
		return nil
	})
	if err != nil {
		return Sample{}, fmt.Errorf("sample users of %s: %w", t.User, err)
	}
	// Go compares strings bytewise, as COLLATE "C" does.
	slices.Sort(out.All)
	slices.Sort(out.Selected)
	return out, nil
}

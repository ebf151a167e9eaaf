package partition

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

// wavesPerBaseTime reports a job whose throttle waves are counted per base
// time (delivery.local_time with a throttle, docs/delivery.md). A
// range's place in the run is one message offset, which cannot say how many
// messages of each base time the earlier ranges publish, so such a job runs
// whole (docs/decisions.md).
func wavesPerBaseTime(j *job.Job) bool {
	d := j.Campaign.Delivery
	return d != nil && d.LocalTime != nil && j.Campaign.Throttle != nil
}

// maxParts bounds the number of ranges of one run.
const maxParts = 256

// Bounds plans a partitioned run: it estimates the job's audience and, when
// it is over rowsPerPart, returns the edges of ranges of notifly_user_id
// holding about rowsPerPart users each, chosen from a sample of the data
// (ids are not assumed to be evenly spread, or hex). The first and last
// edges are "" (unbounded). nil means: run it whole. unknown is the number
// of listed ids with no user, which the ranges do not count. A job the
// whole run would reject is rejected here, before any range runs.
func (c *Coordinator) Bounds(ctx context.Context, j *job.Job, rowsPerPart int) (bounds []string, unknown int64, err error) {
	a := j.Campaign.Audience
	if rowsPerPart <= 0 || a.Type == job.AudienceCSV || wavesPerBaseTime(j) {
		return nil, 0, nil
	}
	if err := c.cfg.Engine.Precheck(ctx, j); err != nil {
		return nil, 0, err
	}
	t, err := schema.For(j.ProjectID)
	if err != nil {
		return nil, 0, job.Rejectf("project_id", "%v", err)
	}
	pool := c.cfg.Audience
	var est float64
	if a.Type == job.AudienceUserIDs {
		est = float64(len(a.UserIDs))
	} else if est, err = audience.UserEstimate(ctx, pool, t); err != nil {
		return nil, 0, fmt.Errorf("estimate audience of %s: %w", j.RequestID, err)
	}
	k := int(math.Ceil(est / float64(rowsPerPart)))
	if k < 2 {
		return nil, 0, nil
	}
	k = min(k, maxParts)
	var sample []string
	if a.Type == job.AudienceUserIDs {
		rows, err := pool.Query(ctx, `SELECT notifly_user_id FROM `+t.User+` WHERE external_user_id = ANY($1::text[])`, a.UserIDs)
		if err == nil {
			sample, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			return nil, 0, fmt.Errorf("sample audience of %s: %w", j.RequestID, err)
		}
		slices.Sort(sample) // byte order, as the audience query streams
	} else {
		s, err := audience.SampleUsers(ctx, pool, audience.Spec{Tables: t}, est, 2000*k)
		if err != nil {
			return nil, 0, fmt.Errorf("sample audience of %s: %w", j.RequestID, err)
		}
		sample = s.All
	}
	if len(sample) < 2*k {
		return nil, 0, nil
	}
	bounds = []string{""}
	for i := 1; i < k; i++ {
		if b := sample[i*len(sample)/k]; b > bounds[len(bounds)-1] {
			bounds = append(bounds, b)
		}
	}
	bounds = append(bounds, "")
	if len(bounds) < 3 {
		return nil, 0, nil
	}
	if unknown, err = c.cfg.Engine.UnknownUsers(ctx, j); err != nil {
		return nil, 0, err
	}
	return bounds, unknown, nil
}

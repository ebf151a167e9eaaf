package publish

import (
	"context"
	"fmt"
	"strings"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

// checkProject rejects a job whose project has none of the tables the run
// reads: otherwise PostgreSQL's "relation does not exist" would look like
// an outage, and the job would be retried.
func (r *Runner) checkProject(ctx context.Context, j *job.Job, t schema.Tables) error {
	names := neededTables(j, t)
	if len(names) == 0 {
		return nil
	}
	var missing []string
	if err := r.cfg.Pool.QueryRow(ctx, `SELECT coalesce(array_agg(n ORDER BY i), '{}') FROM unnest($1::text[]) WITH ORDINALITY AS x(n, i)
WHERE to_regclass(n) IS NULL`, names).Scan(&missing); err != nil {
		return fmt.Errorf("check tables of project %s: %w", j.ProjectID, err)
	}
	if len(missing) == 0 {
		return nil
	}
	if len(missing) == len(names) || missing[0] == t.User {
		return job.Rejectf("project_id", "no project %q in the database", j.ProjectID)
	}
	for i := range missing {
		missing[i] = schema.Unquoted(missing[i])
	}
	return job.Rejectf("project_id", "project %q has no table %s", j.ProjectID, strings.Join(missing, ", "))
}

// neededTables lists the tables a run of j reads.
func neededTables(j *job.Job, t schema.Tables) []string {
	c := j.Campaign
	a := c.Audience
	var names []string
	if a.Type != job.AudienceCSV || c.Channel.IsDevice() {
		names = append(names, t.User)
		if c.Channel.IsDevice() {
			names = append(names, t.Device)
		}
		if c.ExcludePreviousRecipients {
			names = append(names, t.DeliveryResult)
		}
	}
	for _, g := range a.Groups {
		for _, cond := range g.Conditions {
			if k, ok := cond.Kind.Info(); ok {
				if name := k.Table(t); name != "" {
					names = append(names, name)
				}
			}
		}
	}
	if c.ExperimentID != "" {
		names = append(names, t.Variants)
	}
	// Distinct, first use first.
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// checkParams rejects a query with more bind parameters than PostgreSQL's
// protocol can carry. The job limits keep compiled audiences far below it;
// this names the cause should a query ever reach it.
func checkParams(q *audience.Query) error {
	// QueryArgs adds one parameter: the result formats.
	if n := len(q.Args) + 1; n > job.MaxQueryParams {
		return job.Rejectf("campaign.audience", "the audience needs %d query parameters, more than PostgreSQL's %d", n, job.MaxQueryParams)
	}
	return nil
}

// countThreshold: a throttle that fits at least this many messages before
// year 9999 needs no count before the run (no audience is that large); one
// that fits fewer has its audience counted first.
const countThreshold = 1 << 31

// checkThrottle rejects, before anything is published, a run whose throttle
// waves would be sent after job.MaxTime. The number of messages is bounded
// by what is known before the run: the listed ids (one message per user),
// the CSV rows (non-device channels) or a count of the audience query.
// When nothing bounds it cheaply, the run's own check (checker.run) stops
// it at the first message past the limit. A run of a Range is not counted:
// the whole audience was, by Precheck, before it was split.
func (r *Runner) checkThrottle(ctx context.Context, p *plan) error {
	th := p.job.Campaign.Throttle
	if th == nil || !p.publish || p.rng != nil {
		return nil
	}
	capacity := job.ThrottleCapacity(p.reference, th)
	c := p.job.Campaign
	var n int64
	switch {
	case p.csv != nil && !c.Channel.IsDevice():
		n = p.csv.rows
	case p.csv != nil:
		return nil // devices per row are unknown: the run's own check
	case c.Audience.Type == job.AudienceUserIDs && !c.Channel.IsDevice():
		n = int64(len(c.Audience.UserIDs))
	case capacity >= countThreshold:
		return nil
	default:
		if err := r.cfg.Pool.QueryRow(ctx, `SELECT count(*) FROM (`+p.query.SQL+`) a`, p.query.Args...).Scan(&n); err != nil {
			return fmt.Errorf("count audience for the throttle: %w", err)
		}
	}
	if n > capacity {
		return job.ThrottleOverflow("campaign.throttle", p.reference, th, n)
	}
	return nil
}

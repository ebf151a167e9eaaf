// Package inspect is segpub's operator tools: explain (what a job would do,
// and how PostgreSQL would run it), why (what happens to one user in a job)
// and diff (two channel outputs compared by destination, for running the old
// publisher and segpub side by side).
package inspect

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/schema"
)

// Explanation is what `segpub explain` reports.
type Explanation struct {
	Result *publish.Result `json:"result"`
	// Sample holds the first channel messages the job would publish.
	Sample []json.RawMessage `json:"sample"`
	// SQL is the audience query; Params its parameters, in order.
	SQL    string   `json:"sql,omitempty"`
	Params []any    `json:"params,omitempty"`
	Plan   []string `json:"plan,omitempty"`
	// Warnings name missing indexes and other things an operator should
	// fix.
	Warnings []string `json:"warnings,omitempty"`
	// Governance says how many candidates each delivery governance rule
	// removes or defers; nil when the job has none.
	Governance *GovernanceCounts `json:"governance,omitempty"`
	// Delivery says what each delivery targeting rule removes, the base
	// times and the locales chosen; nil when the job has none.
	Delivery *DeliveryCounts `json:"delivery,omitempty"`
}

// sampler keeps the first n messages and drops the rest: explain encodes
// every message, as a run would, and publishes none.
type sampler struct {
	publish.Plain
	n   int
	out []json.RawMessage
}

func (s *sampler) Publish(_ context.Context, b *publish.Batch) error {
	for _, m := range b.Messages {
		if len(s.out) >= s.n {
			return nil
		}
		s.out = append(s.out, append(json.RawMessage(nil), m.Body...))
	}
	return nil
}

// Explain runs the job without publishing: counts, a sample of messages,
// the SQL with its parameters and PostgreSQL's plan for it. base is the
// runner configuration every audience read of the caller shares (its pool,
// CSV opener and limits): a preview reads no file the service would not.
func Explain(ctx context.Context, base publish.Config, j *job.Job, sample int) (*Explanation, error) {
	var tally governanceTally
	var targeted deliveryTally
	pool := base.Pool
	cfg := base
	cfg.Trace = func(o publish.Outcome) {
		tally.trace(o)
		targeted.trace(o)
	}
	runner, err := publish.New(cfg)
	if err != nil {
		return nil, err
	}
	ex := &Explanation{}
	q, _, err := runner.AudienceQuery(ctx, j)
	if err != nil {
		return nil, err
	}
	if q != nil {
		ex.SQL, ex.Params = q.SQL, q.Args
		if ex.Plan, err = explainQuery(ctx, pool, q); err != nil {
			return nil, fmt.Errorf("explain audience query: %w", err)
		}
	}
	tables, _ := schema.For(j.ProjectID)
	if ex.Warnings, err = missingIndexes(ctx, pool, tables, j); err != nil {
		return nil, err
	}
	run := *j
	run.Action = job.ActionPublish
	if run.Campaign.Message == nil {
		run.Campaign.Message = json.RawMessage(`{}`)
	}
	s := &sampler{n: sample}
	if ex.Result, err = runner.Run(ctx, &run, s); err != nil {
		return ex, err
	}
	ex.Result.Action = j.Action
	ex.Sample = s.out
	ex.Governance = tally.counts(j.Campaign, ex.Result)
	ex.Delivery = targeted.counts(j.Campaign, ex.Result)
	return ex, nil
}

// missingIndexes warns about each index of `segpub migrate indexes` that the
// project lacks and the job's queries would use.
func missingIndexes(ctx context.Context, pool *pgxpool.Pool, t schema.Tables, j *job.Job) ([]string, error) {
	var out []string
	for _, ix := range indexes.For(t) {
		if !usesIndex(j, strings.TrimSuffix(ix.Name, t.Project)) {
			continue
		}
		var ok bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND relkind = 'i')`, ix.Name).Scan(&ok); err != nil {
			return nil, fmt.Errorf("look up index %s: %w", ix.Name, err)
		}
		if !ok {
			out = append(out, fmt.Sprintf("missing index %s on %s (segpub migrate indexes --project %s): it %s", ix.Name, schema.Unquoted(ix.Table), t.Project, ix.Why))
		}
	}
	return out, nil
}

// usesIndex reports whether the job's queries read the index named by its
// prefix (indexes.For): the deliveries index for delivery conditions and
// previous recipients, the device index for id lists on device channels,
// the event index for event conditions, the channel-deliveries index for
// frequency caps.
func usesIndex(j *job.Job, prefix string) bool {
	c := j.Campaign
	perDevice := false
	for _, g := range c.Audience.Groups {
		for _, cond := range g.Conditions {
			k, _ := cond.Kind.Info()
			if k.Index != "" && k.Index == prefix {
				return true
			}
			perDevice = perDevice || k.PerDevice
		}
	}
	switch prefix {
	case "sp_drcu_":
		return c.ExcludePreviousRecipients
	case "sp_dut_":
		return c.Audience.Type == job.AudienceUserIDs && (c.Channel.IsDevice() || perDevice)
	case "sp_drch_":
		return c.FrequencyCap != nil
	}
	// A condition kind's index the job does not use, or one this list
	// does not know (warn as before).
	return !slices.ContainsFunc(job.Kinds(), func(k job.KindInfo) bool { return k.Index == prefix })
}

// ConditionResult is one condition evaluated for one user (and device).
type ConditionResult struct {
	Path     string `json:"path"`
	Kind     string `json:"kind"`
	Meaning  string `json:"condition"`
	DeviceID string `json:"device_id,omitempty"`
	// Value is the user's actual value, as text (null when missing).
	Value *string `json:"value"`
	Holds bool    `json:"holds"`
}

// Answer is what `segpub why` reports for one user.
type Answer struct {
	ExternalUserID string `json:"external_user_id"`
	UserID         string `json:"notifly_user_id,omitempty"`
	Found          bool   `json:"found"`
	// Conditions lists every condition on every (user, device) pair:
	// device conditions once per device.
	Conditions []ConditionResult `json:"conditions,omitempty"`
	// Governance shows the user's consent properties and deliveries in
	// the frequency cap's window; nil when the job has no such rule.
	Governance *GovernanceAnswer `json:"governance,omitempty"`
	// Delivery shows the user's stored zone and language values; nil when
	// the job has neither local_time nor localized_messages.
	Delivery *DeliveryAnswer `json:"delivery,omitempty"`
	// Outcomes are the user's candidates in the run: a skip reason, or
	// published with the message.
	Outcomes []Outcome `json:"outcomes"`
}

// Outcome is what happened to one of the user's candidates.
type Outcome struct {
	DeviceID  string `json:"device_id,omitempty"`
	Reason    string `json:"reason"`
	VariantID string `json:"variant_id,omitempty"`
	// Deferred: the night-time rule moved the message to 08:00.
	Deferred bool `json:"deferred,omitempty"`
	// Detail says why a governance rule applied.
	Detail string `json:"detail,omitempty"`
	// BaseTime and Zone are the candidate's base time and the zone used
	// (local_time); Targeting says how delivery targeting treated it: the
	// base time, the device chosen and why, the locale chosen.
	BaseTime  *time.Time      `json:"base_time,omitempty"`
	Zone      string          `json:"zone,omitempty"`
	Targeting string          `json:"targeting,omitempty"`
	Message   json.RawMessage `json:"message,omitempty"`
}

// Why evaluates a job for one user: each condition with the user's value,
// and the outcome of the user's candidates in a full run of the job (a full
// run, because whether a destination is a duplicate depends on everyone
// else). Nothing is published.
//
// base is as Explain's.
func Why(ctx context.Context, base publish.Config, j *job.Job, externalID string) (*Answer, error) {
	ans := &Answer{ExternalUserID: externalID, Outcomes: []Outcome{}}
	pool := base.Pool
	probe, err := publish.New(base)
	if err != nil {
		return nil, err
	}
	_, spec, err := probe.AudienceQuery(ctx, j)
	if err != nil {
		return nil, err
	}
	csv := j.Campaign.Audience.Type == job.AudienceCSV
	if !csv {
		if err := evaluate(ctx, pool, spec, externalID, ans); err != nil {
			return nil, err
		}
	}
	if ans.Governance, err = governanceOf(ctx, pool, j, spec, externalID); err != nil {
		return nil, err
	}
	if ans.Delivery, err = deliveryOf(ctx, pool, j, spec, externalID); err != nil {
		return nil, err
	}
	var traced []publish.Outcome
	cfg := base
	cfg.Trace = func(o publish.Outcome) {
		if o.ExternalUserID != externalID {
			return
		}
		o.Message = append(json.RawMessage(nil), o.Message...)
		traced = append(traced, o)
	}
	runner, err := publish.New(cfg)
	if err != nil {
		return nil, err
	}
	run := *j
	run.Action = job.ActionPublish
	if run.Campaign.Message == nil {
		run.Campaign.Message = json.RawMessage(`{}`)
	}
	if _, err := runner.Run(ctx, &run, &sampler{}); err != nil {
		return nil, err
	}
	// The device most_recent_device_only kept: the one of the user's
	// candidates that reached the de-duplication check.
	var chosen *publish.Outcome
	for i, o := range traced {
		if o.Reason == "published" || o.Reason == "duplicate_destination" || o.Reason == publish.ReasonMessageTooLarge {
			chosen = &traced[i]
		}
	}
	for _, o := range traced {
		out := Outcome{DeviceID: o.DeviceID, Reason: o.Reason, VariantID: o.VariantID,
			Deferred: o.Deferred, Detail: ans.Governance.detail(o, csv), Zone: o.Zone,
			Targeting: deliveryDetail(j, o, chosen), Message: o.Message}
		if !o.BaseTime.IsZero() {
			at := o.BaseTime.UTC()
			out.BaseTime = &at
		}
		ans.Outcomes = append(ans.Outcomes, out)
	}
	if len(ans.Outcomes) == 0 && ans.Found {
		ans.Outcomes = append(ans.Outcomes, Outcome{Reason: "not in the audience (no group holds)"})
	}
	if !ans.Found && len(ans.Outcomes) == 0 {
		reason := "no user has this external_user_id"
		if j.Campaign.Audience.Type == job.AudienceUserIDs && slices.Contains(j.Campaign.Audience.UserIDs, externalID) {
			// Listed, but not in the database: the run counts it so.
			reason = "unknown_user"
		}
		ans.Outcomes = append(ans.Outcomes, Outcome{Reason: reason})
	}
	return ans, nil
}

func evaluate(ctx context.Context, pool *pgxpool.Pool, spec audience.Spec, externalID string, ans *Answer) error {
	q, refs, err := audience.ExplainUser(spec, externalID)
	if err != nil {
		return err
	}
	rows, err := pool.Query(ctx, q.SQL, q.Args...)
	if err != nil {
		return fmt.Errorf("evaluate conditions: %w", err)
	}
	defer rows.Close()
	seenUserLevel := map[int]bool{}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		ans.Found = true
		ans.UserID, _ = vals[0].(string)
		device, _ := vals[1].(string)
		for i, ref := range refs {
			c := ref.Condition
			if !c.Kind.PerDevice() && seenUserLevel[i] {
				continue // user-level conditions: once, not per device
			}
			seenUserLevel[i] = true
			r := ConditionResult{Path: c.Path, Kind: string(c.Kind), Meaning: describe(c, spec.Render)}
			if v, ok := vals[3+2*i].(string); ok {
				r.Value = &v
			}
			r.Holds, _ = vals[4+2*i].(bool)
			if c.Kind.PerDevice() {
				r.DeviceID = device
			}
			ans.Conditions = append(ans.Conditions, r)
		}
	}
	return rows.Err()
}

// describe renders a condition the way an operator wrote it, with the value
// each template rendered for this run.
func describe(c job.Condition, render func(string) (string, error)) string {
	if k, ok := c.Kind.Info(); ok {
		return k.Describe(c, valueText(c.Value, render))
	}
	return string(c.Kind)
}

func valueText(v job.Value, render func(string) (string, error)) string {
	switch v.Type {
	case job.ValueString:
		b, _ := json.Marshal(v.Str)
		return string(b)
	case job.ValueNumber:
		return v.Str
	case job.ValueBool:
		return fmt.Sprint(v.Bool)
	case job.ValueTemplate:
		if render != nil {
			if out, err := render(v.Str); err == nil {
				b, _ := json.Marshal(out)
				return string(b)
			}
		}
		return "{template " + v.Str + "}"
	case job.ValueArray:
		parts := make([]string, len(v.Items))
		for i, it := range v.Items {
			parts[i] = valueText(it, render)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return ""
}

// explainQuery is the plan of q as a run plans it: with the planner
// setting of id lists, inside a read-only transaction of its own.
func explainQuery(ctx context.Context, pool *pgxpool.Pool, q *audience.Query) ([]string, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if q.Listed {
		if _, err := tx.Exec(ctx, audience.Probing); err != nil {
			return nil, err
		}
	}
	rows, err := tx.Query(ctx, "EXPLAIN "+q.SQL, q.Args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

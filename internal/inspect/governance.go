package inspect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
)

// RuleCount is what one governance rule did in a run.
type RuleCount struct {
	// Removed counts the candidates skipped under the rule's reason (the
	// result's skipped count: candidates an earlier check skipped are not
	// in it).
	Removed int64 `json:"removed"`
	// Applies counts every candidate the rule holds for, whatever reason
	// it was finally counted under: how many the rule would remove alone.
	Applies int64 `json:"applies"`
}

// GovernanceCounts is explain's account of the delivery governance rules
// (docs/governance.md); nil when the job has none.
type GovernanceCounts struct {
	NoConsent       *RuleCount `json:"no_consent,omitempty"`
	FrequencyCapped *RuleCount `json:"frequency_capped,omitempty"`
	// Deferred counts the messages the night-time rule moves to 08:00
	// Asia/Seoul; present when the job has night_consent.
	Deferred *int64 `json:"deferred,omitempty"`
}

// governanceTally counts rule hits from a run's trace.
type governanceTally struct {
	noConsent, capped int64
}

func (g *governanceTally) trace(o publish.Outcome) {
	if o.NoConsent {
		g.noConsent++
	}
	if o.Capped {
		g.capped++
	}
}

func (g *governanceTally) counts(c job.Campaign, res *publish.Result) *GovernanceCounts {
	if c.Advertising == nil && c.FrequencyCap == nil {
		return nil
	}
	out := &GovernanceCounts{}
	if c.Advertising != nil {
		out.NoConsent = &RuleCount{Removed: res.Skipped.NoConsent, Applies: g.noConsent}
		if c.Advertising.NightConsent != "" {
			d := res.Deferred
			out.Deferred = &d
		}
	}
	if c.FrequencyCap != nil {
		out.FrequencyCapped = &RuleCount{Removed: res.Skipped.FrequencyCapped, Applies: g.capped}
	}
	return out
}

// PropertyValue is a consent property of one user.
type PropertyValue struct {
	Property string `json:"property"`
	// Value is the property's JSON text; nil when missing.
	Value *string `json:"value"`
	// Holds: the value is the JSON value true.
	Holds bool `json:"holds"`
}

// FrequencyAnswer is one user's deliveries counted by the frequency cap.
type FrequencyAnswer struct {
	Channel     job.Channel `json:"channel"`
	From        time.Time   `json:"window_from"`
	To          time.Time   `json:"window_to"`
	Deliveries  int64       `json:"deliveries_in_window"`
	MaxMessages int64       `json:"max_messages"`
	Capped      bool        `json:"capped"`
}

// GovernanceAnswer is why's account of the governance rules for one user.
type GovernanceAnswer struct {
	// Consent and NightConsent are the user's properties; for CSV
	// audiences consent comes from the file's columns, shown in the
	// outcomes instead.
	Consent      *PropertyValue   `json:"consent,omitempty"`
	NightConsent *PropertyValue   `json:"night_consent,omitempty"`
	Frequency    *FrequencyAnswer `json:"frequency,omitempty"`
}

// governanceOf looks up one user's consent properties and delivery count.
func governanceOf(ctx context.Context, pool *pgxpool.Pool, j *job.Job, spec audience.Spec, externalID string) (*GovernanceAnswer, error) {
	c := j.Campaign
	if c.Advertising == nil && c.FrequencyCap == nil {
		return nil, nil
	}
	csv := c.Audience.Type == job.AudienceCSV
	s := spec
	s.Consent, s.NightConsent, s.FrequencyCap = "", "", c.FrequencyCap
	if c.Advertising != nil && !csv {
		s.Consent, s.NightConsent = c.Advertising.Consent, c.Advertising.NightConsent
	}
	q := audience.GovernanceUser(s, externalID)
	var userID string
	var consent, night *string
	var n int64
	err := pool.QueryRow(ctx, q.SQL, q.Args...).Scan(&userID, &consent, &night, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up governance of user %s: %w", externalID, err)
	}
	out := &GovernanceAnswer{}
	if s.Consent != "" {
		out.Consent = &PropertyValue{Property: s.Consent, Value: consent, Holds: consent != nil && *consent == "true"}
	}
	if s.NightConsent != "" {
		out.NightConsent = &PropertyValue{Property: s.NightConsent, Value: night, Holds: night != nil && *night == "true"}
	}
	if fc := c.FrequencyCap; fc != nil {
		from, to := audience.CapWindow(spec.Reference, fc)
		out.Frequency = &FrequencyAnswer{Channel: c.Channel, From: from, To: to, Deliveries: n, MaxMessages: fc.MaxMessages, Capped: n >= fc.MaxMessages}
	}
	return out, nil
}

// detail explains a governance outcome in words.
func (g *GovernanceAnswer) detail(o publish.Outcome, csv bool) string {
	switch {
	case o.Reason == "no_consent" && csv:
		return "the file's consent column is not true"
	case o.Reason == "no_consent" && g != nil && g.Consent != nil:
		if g.Consent.Value == nil {
			return fmt.Sprintf("user property %q is missing; consent is the JSON value true", g.Consent.Property)
		}
		return fmt.Sprintf("user property %q is %s, not the JSON value true", g.Consent.Property, *g.Consent.Value)
	case o.Reason == "frequency_capped" && g != nil && g.Frequency != nil:
		f := g.Frequency
		return fmt.Sprintf("%d %s deliveries between %s and %s, at or over max_messages %d",
			f.Deliveries, f.Channel, f.From.Format(time.RFC3339), f.To.Format(time.RFC3339), f.MaxMessages)
	case o.Deferred:
		who := "the file's night_consent column is not true"
		if !csv && g != nil && g.NightConsent != nil {
			v := "missing"
			if g.NightConsent.Value != nil {
				v = *g.NightConsent.Value
			}
			who = fmt.Sprintf("user property %q is %s, not the JSON value true", g.NightConsent.Property, v)
		}
		return "send_at falls between 21:00 and 08:00 Asia/Seoul and " + who + ": deferred to 08:00"
	}
	return ""
}

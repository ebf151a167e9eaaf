package publish

import (
	"time"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/render"
	"github.com/segpub/segpub/internal/schema"
)

// Check applies to a parsed job the rules a run applies before it reads
// the database: its templates rendered at the reference time (the job's
// scheduled_at, else now) and its audience compiled within PostgreSQL's
// limits. A run rejects what Check rejects, with the same error; what only
// the database can tell (an experiment's variants, the project's tables, a
// CSV file's header) is left to the run. segpub check is built on it.
func Check(j *job.Job, now time.Time) error {
	tables, err := schema.For(j.ProjectID)
	if err != nil {
		return job.Rejectf("project_id", "%v", err)
	}
	ref := j.ScheduledAt
	if ref.IsZero() {
		ref = now.Truncate(time.Second)
	}
	// A CSV audience compiles per chunk of the file's user ids: nothing to
	// compile without the file.
	if j.Campaign.Audience.Type == job.AudienceCSV {
		return nil
	}
	_, err = compile(specFor(j, tables, ref, j.Action == job.ActionPublish))
	return err
}

// specFor is the audience query's specification for a run of j at
// reference time ref.
func specFor(j *job.Job, tables schema.Tables, ref time.Time, withProperties bool) audience.Spec {
	c := j.Campaign
	spec := audience.Spec{
		Tables:          tables,
		Channel:         c.Channel,
		Audience:        c.Audience,
		CampaignID:      c.ID,
		ExcludePrevious: c.ExcludePreviousRecipients,
		Reference:       ref,
		Render:          render.New(ref).Render,
		WithProperties:  withProperties,
	}
	// CSV consents come from the file and its caps from one lookup of
	// the file's user_ids (source_csv.go), never from the audience query.
	if c.Audience.Type != job.AudienceCSV {
		if a := c.Advertising; a != nil {
			spec.Consent, spec.NightConsent = a.Consent, a.NightConsent
		}
		spec.FrequencyCap = c.FrequencyCap
		if d := c.Delivery; d != nil {
			if d.LocalTime != nil {
				spec.ZoneKey = d.LocalTime.ZoneKey
			}
			if d.Localized != nil {
				spec.LanguageKey = d.Localized.Property
			}
		}
	}
	return spec
}

// compile compiles an audience within the bind parameters one statement
// can carry.
func compile(spec audience.Spec) (*audience.Query, error) {
	q, err := audience.Compile(spec)
	if err != nil {
		return nil, err
	}
	if err := checkParams(q); err != nil {
		return nil, err
	}
	return q, nil
}

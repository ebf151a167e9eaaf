package audience

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

// consentExpr is true when the user's property key holds the JSON value
// true; a missing key, false, "true" and 1 are all not consent.
func (b *builder) consentExpr(key string) string {
	return "((u.user_properties -> " + b.arg(key) + "::text) = 'true'::jsonb) IS TRUE"
}

// governanceColumns are the consent, night-consent and capped columns of
// the audience query (ColConsent, ColNightConsent, ColCapped).
func (b *builder) governanceColumns() string {
	s := b.spec
	consent, night, capped := "true", "false", "false"
	if s.Consent != "" {
		consent = b.consentExpr(s.Consent)
	}
	if s.NightConsent != "" {
		night = b.consentExpr(s.NightConsent)
	}
	if s.FrequencyCap != nil {
		capped = "(" + b.cappedJoin() + ".notifly_user_id IS NOT NULL)"
	}
	return consent + ", " + night + ", " + capped
}

// CapWindow is the frequency cap's window: within_days×24 hours before the
// reference time, both ends included. It ends at the reference time, so
// the run's own deliveries (created after it) never count, and a resumed
// run sees the same counts.
func CapWindow(ref time.Time, fc *job.FrequencyCap) (from, to time.Time) {
	to = ref.UTC()
	return to.Add(-time.Duration(fc.WithinDays) * 24 * time.Hour), to
}

// cappedUsers is the grouped scan of delivery_result that finds the users
// at or over the cap: one pass over the window's rows of the channel (an
// index range with sp_drch), never a probe per user.
func (b *builder) cappedUsers() string {
	from, to := CapWindow(b.spec.Reference, b.spec.FrequencyCap)
	return fmt.Sprintf("SELECT r.notifly_user_id FROM %s r WHERE r.channel = %s::text AND r.created_at >= %s::timestamptz AND r.created_at <= %s::timestamptz GROUP BY r.notifly_user_id HAVING count(*) >= %s::int8",
		b.spec.Tables.DeliveryResult, b.arg(string(b.spec.Channel)), b.arg(from), b.arg(to), b.arg(b.spec.FrequencyCap.MaxMessages))
}

// cappedJoin joins the capped users once and returns the join's alias.
func (b *builder) cappedJoin() string {
	return b.join("fc", "fc", b.cappedUsers)
}

// CappedExternalIDs compiles the query of the users among ids (by
// external_user_id) who are at or over the spec's frequency cap: for CSV
// audiences, whose rows name users but are not streamed from the database.
// One query for the whole file.
func CappedExternalIDs(s Spec, ids []string) *Query {
	b := &builder{spec: s}
	sql := fmt.Sprintf("SELECT u.external_user_id FROM %s u JOIN (%s) fc ON fc.notifly_user_id = u.notifly_user_id WHERE u.external_user_id = ANY(%s::text[])",
		s.Tables.User, b.cappedUsers(), b.arg(ids))
	return &Query{SQL: sql, Args: b.args, Listed: true}
}

// GovernanceUser compiles the query behind `segpub why`'s governance
// section for one user, by external_user_id: the consent property's value
// as JSON text (NULL when missing), the night-consent property's, and the
// number of the channel's deliveries in the frequency cap's window (0 without
// a cap). One row, or none when no user has the id.
func GovernanceUser(s Spec, externalID string) *Query {
	b := &builder{spec: s}
	prop := func(key string) string {
		if key == "" {
			return "NULL::text"
		}
		return "(u.user_properties -> " + b.arg(key) + "::text)::text"
	}
	consent, night := prop(s.Consent), prop(s.NightConsent)
	count := "0::int8"
	if fc := s.FrequencyCap; fc != nil {
		from, to := CapWindow(s.Reference, fc)
		count = fmt.Sprintf("(SELECT count(*) FROM %s r WHERE r.notifly_user_id = u.notifly_user_id AND r.channel = %s::text AND r.created_at >= %s::timestamptz AND r.created_at <= %s::timestamptz)",
			s.Tables.DeliveryResult, b.arg(string(s.Channel)), b.arg(from), b.arg(to))
	}
	sql := fmt.Sprintf("SELECT u.notifly_user_id, %s, %s, %s FROM %s u WHERE u.external_user_id = %s",
		consent, night, count, s.Tables.User, b.arg(externalID))
	return &Query{SQL: sql, Args: b.args}
}

// stringProperty is the user's property key as JSON text (NULL when
// missing, or for every row when key is ""): the zone and language
// columns. One look-up in the jsonb per row; the reader keeps only JSON
// strings (StringValue), so a number or an object is never a zone.
func (b *builder) stringProperty(key string) string {
	if key == "" {
		return "NULL::text"
	}
	return "(u.user_properties -> " + b.arg(key) + "::text)::text"
}

// StringValue returns the string a property's JSON text holds (the zone
// and language columns), or nil when the text is not a JSON string (nil
// too for NULL). buf may receive the value when it has escapes.
func StringValue(v []byte, buf []byte) []byte {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1]
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil
	}
	return append(buf[:0], s...)
}

// PropertiesOf compiles the query behind `segpub why`'s delivery section
// for one user, by external_user_id: the JSON text of the zone and
// language properties (NULL when missing or when the key is ""). One row,
// or none when no user has the id.
func PropertiesOf(t schema.Tables, externalID, zoneKey, languageKey string) *Query {
	b := &builder{}
	prop := func(key string) string {
		if key == "" {
			return "NULL::text"
		}
		return "(u.user_properties -> " + b.arg(key) + "::text)::text"
	}
	zone, lang := prop(zoneKey), prop(languageKey)
	sql := fmt.Sprintf("SELECT %s, %s FROM %s u WHERE u.external_user_id = %s", zone, lang, t.User, b.arg(externalID))
	return &Query{SQL: sql, Args: b.args}
}

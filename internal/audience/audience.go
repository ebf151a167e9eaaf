// Package audience compiles a job's audience (docs/job.md) into one
// SQL query that streams the candidates in (notifly_user_id,
// notifly_device_id) byte order.
//
// Every value, attribute name, event name and id reaches PostgreSQL as a bind
// parameter: the SQL text is built only from this package's own fragments and
// the quoted table names of a validated project id.
package audience

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/schema"
)

// DefaultZone is the job format's time zone (docs/job.md, docs/governance.md):
// event windows count its calendar days, and the night-time rule reads
// its clock. It is where Spec.Zone and publish.Config.Zone default to.
const DefaultZone = "Asia/Seoul"

// LoadZone loads a zone by IANA name; "" is DefaultZone.
func LoadZone(name string) (*time.Location, error) {
	if name == "" {
		name = DefaultZone
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		// time/tzdata is linked into the binary (cmd/segpub), so the
		// contract's zone only fails to load on a broken build.
		return nil, fmt.Errorf("load time zone %s: %w", name, err)
	}
	return loc, nil
}

// Columns of the compiled query, in order. Device columns are present only
// when the query has them (device channels).
const (
	ColUserID = iota
	ColExternalUserID
	ColEmail
	ColPhone
	ColProperties
	ColBucket
	ColPrevious
	ColConsent
	ColNightConsent
	ColCapped
	ColZone
	ColLanguage
	ColDeviceID
	ColExternalDeviceID
	ColToken
	ColPlatform
	ColOSVersion
	ColAppVersion
	ColSDKVersion
	ColSDKType
	ColDeviceUpdatedAt
)

// Spec says what to compile.
type Spec struct {
	Tables   schema.Tables
	Channel  job.Channel
	Audience job.Audience
	// CampaignID is the campaign whose earlier deliveries mark
	// previously_received users.
	CampaignID string
	// ExcludePrevious fills the previous-recipient column; otherwise it is
	// false for every row.
	ExcludePrevious bool
	// Consent and NightConsent are the user_properties keys of the
	// advertising consents (docs/governance.md); "" when off. The
	// consent column is true for every row when Consent is "", the
	// night-consent column false when NightConsent is "".
	Consent, NightConsent string
	// FrequencyCap fills the capped column; nil: false for every row.
	FrequencyCap *job.FrequencyCap
	// ZoneKey and LanguageKey are the user_properties keys of the
	// recipient's time zone and language tag (docs/delivery.md);
	// their columns hold the property as JSON text, NULL when missing
	// ("" keys: NULL for every row). StringValue reads them.
	ZoneKey, LanguageKey string
	// Reference is the run's reference time.
	Reference time.Time
	// Zone is the zone whose calendar days event windows count; nil:
	// DefaultZone.
	Zone *time.Location
	// Render renders {"template": ...} values. Templates are rejected when
	// it is nil.
	Render func(src string) (string, error)
	// WithProperties selects user_properties; a size-only run does not need
	// them, and they are the widest column.
	WithProperties bool
	// ExternalIDs, when set, replaces the audience's own id list (for a
	// CSV chunk whose user_id values are looked up).
	ExternalIDs []string
	// After and Before bound the users streamed, exclusively, in byte order
	// of notifly_user_id: Before ends a partition's range; After is used by
	// the index study (a resumed run streams from its range's start and
	// skips what its checkpoint covers, so that its keys stay the same).
	After, Before string
	// From bounds them inclusively from below: a partition's first key.
	From string
	// PlainInputs joins the tables themselves instead of their ordered
	// readings (see orderedInputs): the join as an operator writes it, the
	// benchmark's floor.
	PlainInputs bool
	// DevicesOfAudience keeps, in the ordered device reading, only the
	// devices of users the groups select (a semi-join on those users'
	// ids): for a segment of a few users, hashing their ids costs less
	// than sorting every device; for most of the project it costs more
	// (docs/decisions.md). Without groups or ordered readings it changes
	// nothing.
	DevicesOfAudience bool
}

// Query is a compiled statement and its parameters.
type Query struct {
	SQL  string
	Args []any
	// Device reports whether the rows carry device columns.
	Device bool
	// Listed reports an id-list audience: a few users of a possibly large
	// project, whose devices are best probed through an index on
	// notifly_user_id (see Probing).
	Listed bool
	// UserOrder reports that the rows come in notifly_user_id byte order
	// with a user's devices in no particular order: the reader puts each
	// user's rows in notifly_device_id byte order (see orderedInputs).
	UserOrder bool
}

// propertiesText is the ordered user reading's column holding
// user_properties as text, cast by the parallel workers that read and sort
// the users rather than by the leader after the join.
const propertiesText = "segpub_properties_text"

// orderedInputs reports whether the query joins the users and the devices
// each read in byte order of notifly_user_id (the devices then of
// notifly_device_id) and orders only by the user. On tables with only
// their keys, sorting the joined rows sorts every user's columns once per
// device (850 MB of external sort for 1.8M rows of the skewed generator's
// 1M users); sorting the two inputs sorts each row once, in parallel
// workers, and PostgreSQL merge-joins them in order. The merge join hands
// a user's devices on in the device reading's order, but the planner does
// not know it, so the final ORDER BY names the user alone and the reader
// orders each user's few rows (bounded by one user's devices).
//
// Only when every condition is a user condition: an event, delivery or
// cap join, or a device condition's EXISTS, is a hash join above the
// merge whose output PostgreSQL would sort again, and the sorted readings
// would sort users the conditions drop. Id lists keep the probe plan and
// the full ORDER BY: their sort is small.
func (b *builder) orderedInputs() bool {
	s := b.spec
	if !s.Channel.IsDevice() || b.listed || s.PlainInputs || s.ExcludePrevious || s.FrequencyCap != nil {
		return false
	}
	for _, g := range s.Audience.Groups {
		for _, c := range g.Conditions {
			if c.Kind != job.KindUser {
				return false
			}
		}
	}
	return true
}

// Probing is the planner setting under which a listed audience's query
// runs (set_config, transaction-local). PostgreSQL's default
// random_page_cost (4, a spinning disk's) makes the planner hash the whole
// device table rather than probe the devices of each listed user, and
// probing is 2.8x faster at 10M users. The setting only ever lowers it.
const Probing = `SELECT set_config('random_page_cost', least(current_setting('random_page_cost')::float8, 1.1)::text, true)`

// Compile builds the audience query. Errors are job rejections with the
// offending condition's path.
func Compile(s Spec) (*Query, error) {
	b := &builder{spec: s}
	return b.compile()
}

type builder struct {
	spec Spec
	args []any
	// joinEvents compiles event sums as one grouped scan of the event
	// table per distinct (event, window), joined to users, instead of a
	// probe per user: a whole-project or segment audience visits most
	// users, and the grouped scan reads the table once. Id lists keep the
	// probes, which cost only as much as the list is long.
	joinEvents bool
	// joinDeliveries compiles delivery tests (conditions and the
	// previous-recipient column) as joins; see deliveryJoin.
	joinDeliveries bool
	// events are the joined derived tables: event sums and deliveries.
	events []eventJoin
	// listed: the audience is an id list (Query.Listed).
	listed bool
}

// eventJoin is one grouped event sum, joined as alias.
type eventJoin struct {
	key, alias, sql string
}

// arg binds v and returns its placeholder.
func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

func (b *builder) compile() (*Query, error) {
	s := b.spec
	t := s.Tables
	device := s.Channel.IsDevice()
	var sb strings.Builder
	// The ids are selected in the ORDER BY's own collation: the sort then
	// keys on output columns instead of carrying a collated copy of each.
	sb.WriteString("SELECT u.notifly_user_id COLLATE \"C\", u.external_user_id, u.email, u.phone_number, ")
	ids := s.ExternalIDs
	if ids == nil && s.Audience.Type == job.AudienceUserIDs {
		ids = s.Audience.UserIDs
	}
	b.joinEvents = ids == nil
	b.listed = ids != nil
	ordered := b.orderedInputs()
	switch {
	case !s.WithProperties:
		sb.WriteString("NULL::text, ")
	case ordered:
		sb.WriteString("u." + propertiesText + ", ")
	default:
		// Cast here, the text is what the run reads anyway: in a parallel
		// plan the workers then run jsonb's output function below the
		// Gather, instead of the leader alone for every row it sends.
		sb.WriteString("u.user_properties::text, ")
	}
	sb.WriteString("u.random_bucket_number, ")
	b.joinDeliveries = true
	if s.ExcludePrevious {
		sb.WriteString("(" + b.deliveryJoin(s.CampaignID, nil, nil) + ".notifly_user_id IS NOT NULL)")
	} else {
		sb.WriteString("false")
	}
	sb.WriteString(", " + b.governanceColumns())
	sb.WriteString(", " + b.stringProperty(s.ZoneKey) + ", " + b.stringProperty(s.LanguageKey))
	if device {
		sb.WriteString(", d.notifly_device_id COLLATE \"C\", d.external_device_id, d.device_token, d.platform, d.os_version, d.app_version, d.sdk_version, d.sdk_type, d.updated_at")
	}

	groups := s.Audience.Groups
	where, err := b.groupsWhere(groups)
	if err != nil {
		return nil, err
	}
	var deviceOn string
	if device {
		deviceOn = b.sameUser("d") + ` AND d.platform = ANY(` + b.arg(s.Channel.Platforms()) + "::text[])"
		pair, err := b.pairQualifies(groups, "d")
		if err != nil {
			return nil, err
		}
		if pair != "" {
			deviceOn += " AND (" + pair + ")"
		}
	}
	// The key range's bounds, on the users and, for ordered readings, on
	// the devices too: PostgreSQL carries equalities across a join but
	// not ranges, and a range's reading would otherwise sort every
	// device of the project.
	var bounds []string
	for _, bd := range []struct{ op, key string }{{">", s.After}, {">=", s.From}, {"<", s.Before}} {
		if bd.key != "" {
			bounds = append(bounds, `notifly_user_id COLLATE "C" `+bd.op+" "+b.arg(bd.key))
		}
	}
	users, devices := t.User, t.Device
	if ordered {
		users = `(SELECT *, user_properties::text AS ` + propertiesText + ` FROM ` + t.User + whereAll(bounds) + ` ORDER BY notifly_user_id COLLATE "C")`
		devWhere := bounds
		if s.DevicesOfAudience && where != "" {
			// The groups' conditions are user conditions on alias u (see
			// orderedInputs), which here names the inner reading: the
			// outer u is not visible in a derived table.
			in := []string{"u.notifly_user_id = dv.notifly_user_id"}
			for _, bd := range bounds {
				in = append(in, "u."+bd)
			}
			devWhere = append(slices.Clip(devWhere), `EXISTS (SELECT 1 FROM `+t.User+` u WHERE `+strings.Join(in, " AND ")+` AND (`+where+`))`)
		}
		devices = `(SELECT * FROM ` + t.Device + ` dv` + whereAll(devWhere) + ` ORDER BY notifly_user_id COLLATE "C", notifly_device_id COLLATE "C")`
	}
	fmt.Fprintf(&sb, "\nFROM %s u", users)
	for _, e := range b.events {
		fmt.Fprintf(&sb, "\nLEFT JOIN (%s) %s ON %s.notifly_user_id = u.notifly_user_id", e.sql, e.alias, e.alias)
	}
	if device {
		fmt.Fprintf(&sb, "\nLEFT JOIN %s d ON %s", devices, deviceOn)
	}
	var conds []string
	if ids != nil {
		conds = append(conds, "u.external_user_id = ANY("+b.arg(ids)+"::text[])")
	}
	if !ordered {
		for _, bd := range bounds {
			conds = append(conds, "u."+bd)
		}
	}
	if where != "" {
		conds = append(conds, "("+where+")")
	}
	if len(conds) > 0 {
		sb.WriteString("\nWHERE ")
		sb.WriteString(strings.Join(conds, "\n  AND "))
	}
	sb.WriteString("\nORDER BY u.notifly_user_id COLLATE \"C\"")
	if device && !ordered {
		sb.WriteString(", d.notifly_device_id COLLATE \"C\"")
	}
	return &Query{SQL: sb.String(), Args: b.args, Device: device, Listed: b.listed, UserOrder: ordered}, nil
}

// whereAll is a WHERE clause of every condition, "" for none.
func whereAll(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// sameUser joins a device alias to the user. Byte order ("C") lets a
// whole-project query merge in its stream order; an id list compares in
// the column's own collation instead, so that an index on the device
// table's notifly_user_id (segpub migrate indexes) can serve the join. Both
// are the same equality: the columns' collation is deterministic.
func (b *builder) sameUser(alias string) string {
	if b.listed {
		return alias + ".notifly_user_id = u.notifly_user_id"
	}
	return alias + `.notifly_user_id COLLATE "C" = u.notifly_user_id COLLATE "C"`
}

// groupsWhere is the user-level qualification: some group holds on some
// (user, device) pair. A group with device conditions needs a device that
// satisfies them (the null device of a user without devices satisfies none).
func (b *builder) groupsWhere(groups []job.Group) (string, error) {
	if len(groups) == 0 {
		return "", nil
	}
	ors := make([]string, 0, len(groups))
	for _, g := range groups {
		userPart, devPart, err := b.group(g, "dx")
		if err != nil {
			return "", err
		}
		parts := userPart
		if len(devPart) > 0 {
			parts = append(parts, fmt.Sprintf(`EXISTS (SELECT 1 FROM %s dx WHERE %s AND %s)`,
				b.spec.Tables.Device, b.sameUser("dx"), strings.Join(devPart, " AND ")))
		}
		ors = append(ors, andAll(parts))
	}
	return strings.Join(ors, "\n   OR "), nil
}

// pairQualifies is the per-device qualification for device channels: the
// pair (u, alias) satisfies some group. It is "" when no group has device
// conditions, as the user-level WHERE then already implies it for every
// device of the user.
func (b *builder) pairQualifies(groups []job.Group, alias string) (string, error) {
	hasDevice := false
	for _, g := range groups {
		for _, c := range g.Conditions {
			if c.Kind.PerDevice() {
				hasDevice = true
			}
		}
	}
	if !hasDevice {
		return "", nil
	}
	ors := make([]string, 0, len(groups))
	for _, g := range groups {
		userPart, devPart, err := b.group(g, alias)
		if err != nil {
			return "", err
		}
		ors = append(ors, andAll(append(userPart, devPart...)))
	}
	return strings.Join(ors, " OR "), nil
}

func andAll(parts []string) string {
	if len(parts) == 0 {
		return "true"
	}
	return "(" + strings.Join(parts, " AND ") + ")"
}

// group compiles a group's conditions, split into user-level ones and device
// ones (on the device alias).
func (b *builder) group(g job.Group, alias string) (userPart, devPart []string, err error) {
	for _, c := range g.Conditions {
		var expr string
		mark, events := len(b.args), len(b.events)
		if k, ok := kindSQL[c.Kind]; ok {
			expr, err = k.truth(b, c, alias)
		} else {
			err = job.Rejectf(c.Path+".kind", "unknown condition kind %q", c.Kind)
		}
		if err != nil {
			return nil, nil, err
		}
		switch expr {
		case "NOT true":
			expr = "false"
		case "NOT false":
			expr = "true"
		}
		if expr == "true" || expr == "false" {
			// A condition that folded to a constant binds nothing:
			// PostgreSQL rejects parameters the text does not use.
			b.args, b.events = b.args[:mark], b.events[:events]
		}
		if c.Kind.PerDevice() {
			devPart = append(devPart, expr)
		} else {
			userPart = append(userPart, expr)
		}
	}
	return userPart, devPart, nil
}

// Package schema knows the audience database's per-project tables
// (docs/tables.md): it validates project ids and yields quoted table
// identifiers, so no caller ever builds a table name from raw input.
package schema

import (
	"fmt"
	"regexp"
	"strings"
)

var projectIDRe = regexp.MustCompile(`^[a-z0-9_]{1,48}$`)

// ValidateProjectID reports whether id may name a project's tables.
func ValidateProjectID(id string) error {
	if !projectIDRe.MatchString(id) {
		return fmt.Errorf("invalid project id %q: want 1 to 48 characters of [a-z0-9_]", id)
	}
	return nil
}

// Tables holds the quoted identifiers of one project's tables. The zero value
// is unusable; build it with For.
type Tables struct {
	Project        string
	User           string
	Device         string
	DeliveryResult string
	EventCounts    string
	Experiments    string
	Variants       string
}

// For returns the table identifiers of a validated project id.
func For(projectID string) (Tables, error) {
	if err := ValidateProjectID(projectID); err != nil {
		return Tables{}, err
	}
	// The id is [a-z0-9_] only, so quoting is belt and braces; it also keeps
	// names that start with a digit valid.
	q := func(prefix string) string { return `"` + prefix + projectID + `"` }
	return Tables{
		Project:        projectID,
		User:           q("user_"),
		Device:         q("device_"),
		DeliveryResult: q("delivery_result_"),
		EventCounts:    q("event_intermediate_counts_"),
		Experiments:    q("experiments_"),
		Variants:       q("variants_"),
	}, nil
}

// Unquoted returns the bare table name behind a quoted identifier, for
// catalog look-ups that take names as values.
func Unquoted(ident string) string { return strings.Trim(ident, `"`) }

// All lists the identifiers in creation order.
func (t Tables) All() []string {
	return []string{t.User, t.Device, t.DeliveryResult, t.EventCounts, t.Experiments, t.Variants}
}

// CreateStatements returns the contract's DDL for the project, with
// IF NOT EXISTS so it can be re-run. withKeys=false leaves out primary keys,
// unique and check constraints, for bulk loads that add them afterwards with
// KeyStatements (loading into an indexed table is several times slower).
func (t Tables) CreateStatements(withKeys bool) []string {
	pk, uniq, check := " PRIMARY KEY", " UNIQUE", " CHECK (random_bucket_number BETWEEN 0 AND 9999)"
	eventPK, weightCheck := ",\n  PRIMARY KEY (notifly_user_id, name, dt)", " CHECK (weight >= 0)"
	if !withKeys {
		pk, uniq, check, eventPK, weightCheck = "", "", "", "", ""
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + t.User + ` (
  notifly_user_id      text NOT NULL` + pk + `,
  external_user_id     text` + uniq + `,
  email                text,
  phone_number         text,
  user_properties      jsonb NOT NULL DEFAULT '{}',
  random_bucket_number int  NOT NULL` + check + `,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Device + ` (
  notifly_device_id  text NOT NULL` + pk + `,
  notifly_user_id    text NOT NULL,
  external_device_id text,
  device_token       text,
  platform           text,
  os_version text, app_version text, sdk_version text, sdk_type text,
  updated_at         timestamptz NOT NULL DEFAULT now()
)`,
		`CREATE TABLE IF NOT EXISTS ` + t.DeliveryResult + ` (
  campaign_id text NOT NULL, notifly_user_id text NOT NULL,
  channel text NOT NULL, status text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`,
		`CREATE TABLE IF NOT EXISTS ` + t.EventCounts + ` (
  notifly_user_id text NOT NULL, name text NOT NULL, dt date NOT NULL,
  count bigint NOT NULL, sum_event_value double precision NOT NULL DEFAULT 0` + eventPK + `
)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Experiments + ` (id text NOT NULL` + pk + `, campaign_id text NOT NULL, experiment_status text NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + t.Variants + ` (
  id text NOT NULL` + pk + `, experiment_id text NOT NULL, campaign_id text NOT NULL,
  name text NOT NULL, weight int NOT NULL` + weightCheck + `
)`,
	}
}

// KeyStatements adds the keys and checks that CreateStatements(false) left
// out, giving the same schema as CreateStatements(true).
func (t Tables) KeyStatements() []string {
	return []string{
		`ALTER TABLE ` + t.User + ` ADD PRIMARY KEY (notifly_user_id), ADD UNIQUE (external_user_id), ADD CHECK (random_bucket_number BETWEEN 0 AND 9999)`,
		`ALTER TABLE ` + t.Device + ` ADD PRIMARY KEY (notifly_device_id)`,
		`ALTER TABLE ` + t.EventCounts + ` ADD PRIMARY KEY (notifly_user_id, name, dt)`,
		`ALTER TABLE ` + t.Experiments + ` ADD PRIMARY KEY (id)`,
		`ALTER TABLE ` + t.Variants + ` ADD PRIMARY KEY (id), ADD CHECK (weight >= 0)`,
	}
}

// DropStatements drops every table of the project.
func (t Tables) DropStatements() []string {
	all := t.All()
	out := make([]string, len(all))
	for i, name := range all {
		out[i] = `DROP TABLE IF EXISTS ` + name
	}
	return out
}

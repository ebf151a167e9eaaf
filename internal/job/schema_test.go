package job_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/segpub/segpub/internal/job"
)

// rejected lists every fixture of testdata/jobs/rejected: the JSON path the
// parser names, and whether the schema can say it too (false: a rule only
// segpub's parser applies, such as a size in bytes or a sum over the whole
// audience).
var rejected = map[string]struct {
	path   string
	schema bool
}{
	"advertising-dollar-consent":          {"campaign.advertising.consent", true},
	"advertising-unknown-key":             {"campaign.advertising.hours", true},
	"all-with-groups":                     {"campaign.audience.groups", true},
	"array-without-in":                    {"campaign.audience.groups[0].conditions[0].value", true},
	"blank-request-id":                    {"request_id", true},
	"boolean-greater":                     {"campaign.audience.groups[0].conditions[0].value", true},
	"claim-check-extra-field":             {"action", true},
	"contains-number":                     {"campaign.audience.groups[0].conditions[0].value", true},
	"csv-http-url":                        {"campaign.audience.url", true},
	"delivery-bad-time":                   {"campaign.delivery.local_time.time", true},
	"delivery-condition-no-received":      {"campaign.audience.groups[0].conditions[0].received", true},
	"delivery-condition-operator":         {"campaign.audience.groups[0].conditions[0].operator", true},
	"delivery-if-passed-unknown":          {"campaign.delivery.local_time.if_passed", true},
	"delivery-localized-bad-tag":          {"campaign.delivery.localized_messages.messages.en_US", true},
	"delivery-localized-case-duplicate":   {"campaign.delivery.localized_messages.messages.en", false},
	"delivery-localized-empty":            {"campaign.delivery.localized_messages.messages", true},
	"delivery-localized-with-experiment":  {"campaign.delivery.localized_messages", true},
	"delivery-most-recent-on-email":       {"campaign.delivery.most_recent_device_only", true},
	"delivery-most-recent-string":         {"campaign.delivery.most_recent_device_only", true},
	"delivery-time-zone-dollar":           {"campaign.delivery.local_time.time_zone", true},
	"delivery-unknown-fallback-zone":      {"campaign.delivery.local_time.fallback_time_zone", false},
	"delivery-unknown-key":                {"campaign.delivery.send_in_local_time", true},
	"device-unknown-attribute":            {"campaign.audience.groups[0].conditions[0].attribute", true},
	"empty-conditions":                    {"campaign.audience.groups[0].conditions", true},
	"empty-groups":                        {"campaign.audience.groups", true},
	"event-within-days-zero":              {"campaign.audience.groups[0].conditions[0].within_days", true},
	"exists-with-value":                   {"campaign.audience.groups[0].conditions[0].value", true},
	"experiment-on-csv":                   {"campaign.experiment_id", true},
	"frequency-cap-too-long":              {"campaign.frequency_cap.within_days", true},
	"in-without-array":                    {"campaign.audience.groups[0].conditions[0].value", true},
	"message-string":                      {"campaign.message", true},
	"missing-channel":                     {"campaign.channel", true},
	"missing-request-id":                  {"request_id", true},
	"missing-value":                       {"campaign.audience.groups[0].conditions[0].value", true},
	"nested-array":                        {"campaign.audience.groups[0].conditions[0].value[0]", true},
	"nul-character":                       {"campaign.id", false},
	"null-value":                          {"campaign.audience.groups[0].conditions[0].value", true},
	"project-id-uppercase":                {"project_id", true},
	"publish-without-message":             {"campaign.message", true},
	"request-id-over-512-bytes":           {"request_id", false},
	"scheduled-at-no-offset":              {"scheduled_at", true},
	"scheduled-at-offset-24":              {"scheduled_at", false},
	"segment-without-groups":              {"campaign.audience.groups", true},
	"template-extra-key":                  {"campaign.audience.groups[0].conditions[0].value", true},
	"throttle-string":                     {"campaign.throttle", true},
	"throttle-zero":                       {"campaign.throttle.max_per_interval", true},
	"too-many-joined-conditions":          {"campaign.audience.groups[0].conditions[32]", false},
	"unknown-action":                      {"action", true},
	"unknown-audience-type":               {"campaign.audience.type", true},
	"unknown-campaign-field":              {"campaign.subject", true},
	"unknown-channel":                     {"campaign.channel", true},
	"unknown-condition-field":             {"campaign.audience.groups[0].conditions[0].attribute", true},
	"unknown-field":                       {"priority", true},
	"unknown-kind":                        {"campaign.audience.groups[0].conditions[0].kind", true},
	"unknown-operator":                    {"campaign.audience.groups[0].conditions[0].operator", true},
	"user-ids-null-id":                    {"campaign.audience.user_ids[1]", true},
	"user-unknown-column":                 {"campaign.audience.groups[0].conditions[0].attribute", true},
	"variant-messages-without-experiment": {"campaign.variant_messages", true},
	"version-2":                           {"version", true},
	"version-string":                      {"version", true},
}

func compileSchema(t *testing.T, path string) *jsonschema.Schema {
	t.Helper()
	s, err := jsonschema.NewCompiler().Compile(path)
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	return s
}

func readInstance(t *testing.T, path string) (data []byte, inst any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inst, err = jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data, inst
}

// parserReadsDelivery reports whether this build's parser knows
// campaign.delivery; until it does, delivery fixtures are only checked
// against the schema.
func parserReadsDelivery() bool {
	_, err := job.Parse([]byte(`{"version":1,"action":"calculate-size","request_id":"r","project_id":"p",
		"campaign":{"id":"c","channel":"email","audience":{"type":"all"},"delivery":null}}`))
	return err == nil
}

func isUnreadDelivery(err error) bool {
	var e *job.Error
	return errors.As(err, &e) && e.Path == "campaign.delivery" && e.Msg == "unknown field"
}

// Every valid job fixture and example passes both the schema and the
// parser; every rejected fixture is rejected by the parser at its path, and
// by the schema when a schema can say why.
func TestJobSchema(t *testing.T) {
	t.Parallel()
	schema := compileSchema(t, "../../docs/job.schema.json")
	delivery := parserReadsDelivery()
	valid, _ := filepath.Glob("testdata/jobs/valid/*.json")
	examples, _ := filepath.Glob("../../examples/*.json")
	if len(valid) < 10 || len(examples) < 3 {
		t.Fatalf("%d valid fixtures, %d examples", len(valid), len(examples))
	}
	for _, f := range append(valid, examples...) {
		data, inst := readInstance(t, f)
		if err := schema.Validate(inst); err != nil {
			t.Errorf("%s: the schema refuses a valid job: %v", f, err)
		}
		_, err := job.ParseEnvelope(data)
		if err != nil && !(isUnreadDelivery(err) && !delivery) {
			t.Errorf("%s: the parser rejects a valid job: %v", f, err)
		}
	}
	files, _ := filepath.Glob("testdata/jobs/rejected/*.json")
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		seen[name] = true
		want, ok := rejected[name]
		if !ok {
			t.Errorf("%s: not listed in rejected", f)
			continue
		}
		data, inst := readInstance(t, f)
		_, err := job.ParseEnvelope(data)
		var e *job.Error
		switch {
		case isUnreadDelivery(err) && !delivery && strings.HasPrefix(want.path, "campaign.delivery"):
		case !errors.As(err, &e):
			t.Errorf("%s: the parser accepts it (err %v); want a rejection at %s", f, err, want.path)
		case e.Path != want.path:
			t.Errorf("%s: rejected at %q (%v); want %q", f, e.Path, err, want.path)
		}
		serr := schema.Validate(inst)
		if want.schema && serr == nil {
			t.Errorf("%s: the schema accepts it; want it refused (%s)", f, want.path)
		}
		if !want.schema && serr != nil {
			// Then the schema says more than expected: mark it true.
			t.Errorf("%s: the schema refuses it, but rejected says it cannot: %v", f, serr)
		}
	}
	for name := range rejected {
		if !seen[name] {
			t.Errorf("rejected lists %s, which has no fixture", name)
		}
	}
}

// The schema's enumerations are the parser's tables, so neither can change
// alone.
func TestJobSchemaEnumerations(t *testing.T) {
	t.Parallel()
	var s struct {
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	data, err := os.ReadFile("../../docs/job.schema.json")
	if err != nil || json.Unmarshal(data, &s) != nil {
		t.Fatalf("read schema: %v", err)
	}
	enum := func(def, path string) []string {
		t.Helper()
		var v any
		if err := json.Unmarshal(s.Defs[def], &v); err != nil {
			t.Fatalf("$defs.%s: %v", def, err)
		}
		for _, k := range strings.Split(path, "/") {
			switch x := v.(type) {
			case map[string]any:
				v = x[k]
			case []any:
				i := int(k[0] - '0')
				v = x[i]
			}
		}
		var out []string
		for _, e := range v.([]any) {
			out = append(out, e.(string))
		}
		return out
	}
	devAttrs := slices.Sorted(maps.Keys(job.DeviceAttributes))
	for _, c := range []struct {
		what           string
		schema, parser []string
	}{
		{"channels", enum("channel", "enum"), names(job.Channels)},
		{"actions", enum("inlineJob", "properties/action/enum"), names(job.Actions)},
		{"audience types", enum("audience", "properties/type/enum"), names(job.AudienceTypes)},
		{"condition kinds", enum("condition", "properties/kind/enum"), names(job.ConditionKinds)},
		{"operators", enum("operator", "enum"), names(job.Operators)},
		{"device attributes", slices.Sorted(slices.Values(enum("condition", "allOf/1/then/properties/attribute/enum"))), devAttrs},
	} {
		if !slices.Equal(c.schema, c.parser) {
			t.Errorf("%s: the schema has %q, the parser %q", c.what, c.schema, c.parser)
		}
	}
}

// Every example campaign file passes docs/campaign.schema.json, whose
// campaign is the job schema's; a campaign of an unknown channel does not.
func TestCampaignSchema(t *testing.T) {
	t.Parallel()
	schema := compileSchema(t, "../../docs/campaign.schema.json")
	files, _ := filepath.Glob("../../examples/campaigns/*.json")
	if len(files) < 4 {
		t.Fatalf("%d example campaign files", len(files))
	}
	for _, f := range files {
		data, inst := readInstance(t, f)
		if err := schema.Validate(inst); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		bad := bytes.Replace(data, []byte(`"channel": "`), []byte(`"channel": "fax_`), 1)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(bad))
		if err != nil || !bytes.Contains(bad, []byte("fax_")) {
			t.Fatalf("%s: could not make a bad copy: %v", f, err)
		}
		if schema.Validate(inst) == nil {
			t.Errorf("%s with an unknown channel: the schema accepts it", f)
		}
		// A publish campaign (the default action) needs a message.
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		if doc["action"] == "calculate-size" {
			continue
		}
		delete(doc["campaign"].(map[string]any), "message")
		b, _ := json.Marshal(doc)
		if inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b)); schema.Validate(inst) == nil {
			t.Errorf("%s without a message: the schema accepts it", f)
		}
	}
}

func names[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// The schema never refuses a job the parser accepts: thousands of
// mutations of the valid fixtures (a member removed, added or replaced by
// a value of another type or an edge value), each either rejected by the
// parser or accepted by the schema.
func TestJobSchemaAcceptsWhatTheParserAccepts(t *testing.T) {
	t.Parallel()
	schema := compileSchema(t, "../../docs/job.schema.json")
	valid, _ := filepath.Glob("testdata/jobs/valid/*.json")
	rng := rand.New(rand.NewPCG(27, 1))
	accepted := 0
	for _, f := range valid {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for range 400 {
			var doc any
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			doc = mutate(rng, doc, 1+rng.IntN(3))
			b, _ := json.Marshal(doc)
			if _, err := job.ParseEnvelope(b); err != nil {
				continue
			}
			accepted++
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(inst); err != nil {
				t.Errorf("the parser accepts and the schema refuses %s: %v", b, err)
			}
		}
	}
	t.Logf("%d valid mutations", accepted)
	if accepted < 200 {
		t.Errorf("only %d mutations were valid jobs: too few to say anything", accepted)
	}
}

// edgeValues replace a member's value in mutations.
var edgeValues = []any{nil, "", " ", "x", "$email", "$x", "09:00", "24:00", "2026-11-24T18:00:00Z", "s3://b/k.csv",
	float64(0), float64(1), float64(-1), 1.5, float64(36500), float64(36501), float64(1e9), true, false,
	[]any{}, []any{"a"}, []any{float64(1), true}, map[string]any{}, map[string]any{"template": "x"},
	"push_notification", "email", "all", "segment", "user", "device", "event", "delivery", "=", "in", "exists", "contains", "skip"}

// edge is a copy of a random edge value (a copy: an array or object put
// in the document twice would alias).
func edge(rng *rand.Rand) any {
	b, _ := json.Marshal(edgeValues[rng.IntN(len(edgeValues))])
	var v any
	_ = json.Unmarshal(b, &v)
	return v
}

// mutate applies n random changes to doc and returns it.
func mutate(rng *rand.Rand, doc any, n int) any {
	for range n {
		// Collect every container, then change one member of one.
		var objs []map[string]any
		var arrs [][]any
		var collect func(v any)
		collect = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				objs = append(objs, x)
				for _, c := range x {
					collect(c)
				}
			case []any:
				arrs = append(arrs, x)
				for _, c := range x {
					collect(c)
				}
			}
		}
		collect(doc)
		if len(arrs) > 0 && rng.IntN(4) == 0 {
			a := arrs[rng.IntN(len(arrs))]
			if len(a) > 0 {
				a[rng.IntN(len(a))] = edge(rng)
			}
			continue
		}
		o := objs[rng.IntN(len(objs))]
		keys := slices.Sorted(maps.Keys(o))
		switch r := rng.IntN(10); {
		case r < 2 && len(keys) > 0:
			delete(o, keys[rng.IntN(len(keys))])
		case r < 3:
			o[[]string{"extra", "within_days", "groups", "value", "delivery", "throttle", "message"}[rng.IntN(7)]] = edge(rng)
		case len(keys) > 0:
			o[keys[rng.IntN(len(keys))]] = edge(rng)
		}
	}
	return doc
}

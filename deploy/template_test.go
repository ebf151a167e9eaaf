// Package deploy holds segpub's CloudFormation template (segpub.yaml) and
// the test that keeps it deployable: its references resolve, the settings
// it sets are ones the binary reads, and the structure docs/deployment.md
// promises is there.
package deploy

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/segpub/segpub/internal/cli"
)

// template is the parsed template: maps, lists and scalars, with the short
// forms of the intrinsic functions (!Ref, !Sub, …) in their long form
// ({"Ref": …}, {"Fn::Sub": …}).
type template map[string]any

func loadTemplate(t *testing.T) template {
	t.Helper()
	data, err := os.ReadFile("segpub.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("segpub.yaml: %v", err)
	}
	v, err := fromNode(doc.Content[0])
	if err != nil {
		t.Fatalf("segpub.yaml: %v", err)
	}
	return v.(map[string]any)
}

func fromNode(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i < len(n.Content); i += 2 {
			val, err := fromNode(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			val, err := fromNode(c)
			if err != nil {
				return nil, err
			}
			l = append(l, val)
		}
		v = l
	case yaml.ScalarNode:
		if intrinsic(n.Tag) {
			v = n.Value
		} else if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
	case yaml.AliasNode:
		return fromNode(n.Alias)
	default:
		return nil, fmt.Errorf("line %d: unexpected node kind %d", n.Line, n.Kind)
	}
	switch tag := n.Tag; {
	case tag == "!Ref":
		return map[string]any{"Ref": v}, nil
	case tag == "!GetAtt":
		if s, ok := v.(string); ok {
			res, attr, _ := strings.Cut(s, ".")
			v = []any{res, attr}
		}
		return map[string]any{"Fn::GetAtt": v}, nil
	case tag == "!Condition":
		return map[string]any{"Condition": v}, nil
	case intrinsic(tag):
		return map[string]any{"Fn::" + tag[1:]: v}, nil
	}
	return v, nil
}

// intrinsic reports a CloudFormation short form (!Sub); YAML's own tags
// start with !!.
func intrinsic(tag string) bool { return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") }

func (tp template) section(name string) map[string]any {
	m, _ := tp[name].(map[string]any)
	return m
}

func (tp template) resource(t *testing.T, name string) map[string]any {
	t.Helper()
	r, ok := tp.section("Resources")[name].(map[string]any)
	if !ok {
		t.Fatalf("no resource %s", name)
	}
	p, _ := r["Properties"].(map[string]any)
	return p
}

// walk calls fn on every value of v, depth first.
func walk(v any, fn func(any)) {
	fn(v)
	switch x := v.(type) {
	case map[string]any:
		for _, c := range x {
			walk(c, fn)
		}
	case []any:
		for _, c := range x {
			walk(c, fn)
		}
	}
}

// alternatives are the values v may take: both branches of an Fn::If, and
// nothing for AWS::NoValue.
func alternatives(v any) []any {
	m, ok := v.(map[string]any)
	if !ok {
		return []any{v}
	}
	if ref, ok := m["Ref"]; ok && ref == "AWS::NoValue" {
		return nil
	}
	if args, ok := m["Fn::If"].([]any); ok && len(args) == 3 {
		return append(alternatives(args[1]), alternatives(args[2])...)
	}
	return []any{v}
}

// list is a list's elements, or a scalar as a list of one (IAM takes
// either), with every alternative of an Fn::If.
func list(v any) []any {
	l, ok := v.([]any)
	if !ok {
		return alternatives(v)
	}
	var out []any
	for _, e := range l {
		out = append(out, alternatives(e)...)
	}
	return out
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	}
	return ""
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

// Every Ref, GetAtt, Sub variable and condition names something the
// template defines.
func TestTemplateReferencesResolve(t *testing.T) {
	t.Parallel()
	tp := loadTemplate(t)
	if tp["AWSTemplateFormatVersion"] != "2010-09-09" {
		t.Errorf("AWSTemplateFormatVersion %v", tp["AWSTemplateFormatVersion"])
	}
	params, resources, conds := tp.section("Parameters"), tp.section("Resources"), tp.section("Conditions")
	if len(params) == 0 || len(resources) == 0 {
		t.Fatalf("%d parameters, %d resources", len(params), len(resources))
	}
	known := func(name string) bool {
		_, p := params[name]
		_, r := resources[name]
		return p || r || strings.HasPrefix(name, "AWS::")
	}
	for name, r := range resources {
		res := r.(map[string]any)
		if typ := str(res["Type"]); !strings.HasPrefix(typ, "AWS::") {
			t.Errorf("resource %s: type %q", name, typ)
		}
		if c, ok := res["Condition"]; ok && conds[str(c)] == nil {
			t.Errorf("resource %s: unknown condition %v", name, c)
		}
	}
	walk(map[string]any(tp), func(v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if ref, ok := m["Ref"]; ok && !known(str(ref)) {
			t.Errorf("Ref to unknown %v", ref)
		}
		if ga, ok := m["Fn::GetAtt"].([]any); ok && resources[str(ga[0])] == nil {
			t.Errorf("GetAtt of unknown resource %v", ga[0])
		}
		if args, ok := m["Fn::If"].([]any); ok && conds[str(args[0])] == nil {
			t.Errorf("Fn::If on unknown condition %v", args[0])
		}
		if c, ok := m["Condition"].(string); ok && len(m) == 1 && conds[c] == nil {
			t.Errorf("unknown condition %v", c)
		}
		if sub, ok := m["Fn::Sub"]; ok {
			text, locals := str(sub), map[string]any{}
			if l, ok := sub.([]any); ok && len(l) == 2 {
				text = str(l[0])
				locals, _ = l[1].(map[string]any)
			}
			for _, v := range subVar.FindAllStringSubmatch(text, -1) {
				name, _, _ := strings.Cut(v[1], ".")
				if _, ok := locals[name]; !ok && !known(name) {
					t.Errorf("Fn::Sub %q: unknown ${%s}", text, v[1])
				}
			}
		}
	})
}

// container is the segpub container's definition and its variables, with
// every alternative of an Fn::If.
func container(t *testing.T, tp template) (def map[string]any, env map[string][]any, secrets map[string]any) {
	t.Helper()
	defs := list(tp.resource(t, "TaskDefinition")["ContainerDefinitions"])
	if len(defs) != 1 {
		t.Fatalf("%d container definitions", len(defs))
	}
	def = defs[0].(map[string]any)
	env, secrets = map[string][]any{}, map[string]any{}
	for _, e := range list(def["Environment"]) {
		kv := e.(map[string]any)
		env[str(kv["Name"])] = append(env[str(kv["Name"])], kv["Value"])
	}
	for _, e := range list(def["Secrets"]) {
		kv := e.(map[string]any)
		secrets[str(kv["Name"])] = kv["ValueFrom"]
	}
	return def, env, secrets
}

// The variables the template sets are settings the binary reads: a
// misspelt or retired one would be ignored without a word.
func TestTemplateSetsOnlySettingsTheBinaryReads(t *testing.T) {
	t.Parallel()
	tp := loadTemplate(t)
	_, env, secrets := container(t, tp)
	read := cli.Variables()
	names := slices.Collect(func(yield func(string) bool) {
		for n := range env {
			if !yield(n) {
				return
			}
		}
		for n := range secrets {
			if !yield(n) {
				return
			}
		}
	})
	if len(names) < 10 {
		t.Fatalf("%d variables", len(names))
	}
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "SEGPUB_"):
			if !slices.Contains(read, n) {
				t.Errorf("the template sets %s, which segpub does not read", n)
			}
		case n != "AWS_REGION":
			t.Errorf("the template sets %s, which is neither a segpub setting nor the SDK's region", n)
		}
	}
	for _, n := range []string{"SEGPUB_JOB_QUEUE_URL", "SEGPUB_CHANNEL_URL", "SEGPUB_DEAD_LETTER_URL", "SEGPUB_MESSAGE_STORE_URL"} {
		if len(env[n]) != 1 {
			t.Errorf("%s: want it set once, got %v", n, env[n])
		}
	}
	for _, n := range []string{"SEGPUB_DATABASE_URL", "SEGPUB_STATE_URL"} {
		if secrets[n] == nil {
			t.Errorf("%s is not injected from a secret", n)
		}
		if len(env[n]) > 0 {
			t.Errorf("%s is a plain variable: database URLs carry passwords", n)
		}
	}
}

// The points docs/deployment.md promises.
func TestTemplateStructure(t *testing.T) {
	t.Parallel()
	tp := loadTemplate(t)
	def, env, secrets := container(t, tp)
	one := func(name string) string {
		t.Helper()
		if len(env[name]) != 1 {
			t.Fatalf("%s: %v", name, env[name])
		}
		return str(env[name][0])
	}

	// Stopping: the shutdown grace ends within stopTimeout, which is at
	// most Fargate's 120 s (a Spot interruption's warning).
	stop, _ := def["StopTimeout"].(int)
	grace, err := time.ParseDuration(one("SEGPUB_SHUTDOWN_GRACE"))
	if err != nil || grace <= 0 {
		t.Fatalf("SEGPUB_SHUTDOWN_GRACE %q: %v", one("SEGPUB_SHUTDOWN_GRACE"), err)
	}
	if stop > 120 || time.Duration(stop)*time.Second < grace+10*time.Second {
		t.Errorf("StopTimeout %d s for a shutdown grace of %s: want at most 120 s and the grace plus 10 s to exit", stop, grace)
	}

	// The task size segpub cost prices.
	task := tp.resource(t, "TaskDefinition")
	if str(task["Cpu"]) != "2048" || str(task["Memory"]) != "4096" {
		t.Errorf("task size %v CPU units, %v MiB; segpub cost assumes 2 vCPU and 4 GB", task["Cpu"], task["Memory"])
	}
	if !slices.Contains([]string{"on", "true", "1", "yes"}, one("SEGPUB_SCHEDULER")) {
		t.Errorf("SEGPUB_SCHEDULER=%s: no scheduler runs, so campaigns never fire", one("SEGPUB_SCHEDULER"))
	}

	// Fargate Spot above an on-demand base.
	svc := tp.resource(t, "Service")
	if _, ok := svc["LaunchType"]; ok {
		t.Error("the service has a LaunchType, which excludes a capacity provider strategy")
	}
	strategy := map[string]map[string]any{}
	for _, s := range list(svc["CapacityProviderStrategy"]) {
		m := s.(map[string]any)
		strategy[str(m["CapacityProvider"])] = m
	}
	spot, ondemand := strategy["FARGATE_SPOT"], strategy["FARGATE"]
	if spot == nil || ondemand == nil || spot["Weight"] == 0 || ondemand["Base"] == nil {
		t.Errorf("capacity provider strategy %v: want FARGATE_SPOT with a weight and an on-demand FARGATE base", strategy)
	}
	if cp := list(tp.resource(t, "Cluster")["CapacityProviders"]); !slices.Contains(cp, any("FARGATE_SPOT")) || !slices.Contains(cp, any("FARGATE")) {
		t.Errorf("cluster capacity providers %v", cp)
	}
	if base := tp.section("Parameters")["OnDemandBase"].(map[string]any); base["MinValue"] != 1 {
		t.Errorf("OnDemandBase MinValue %v: the scheduler needs a task Spot cannot take", base["MinValue"])
	}

	// The job queue redrives to its dead-letter queue only after segpub
	// itself has given up on a job.
	q := tp.resource(t, "JobQueue")
	rp, _ := q["RedrivePolicy"].(map[string]any)
	attempts, _ := strconv.Atoi(one("SEGPUB_MAX_ATTEMPTS"))
	if rp == nil || fmt.Sprint(rp["deadLetterTargetArn"]) != fmt.Sprint(map[string]any{"Fn::GetAtt": []any{"JobDeadLetterQueue", "Arn"}}) {
		t.Errorf("JobQueue RedrivePolicy %v: want JobDeadLetterQueue", rp)
	} else if mrc, _ := rp["maxReceiveCount"].(int); attempts < 1 || mrc <= attempts {
		t.Errorf("maxReceiveCount %v with SEGPUB_MAX_ATTEMPTS %d: SQS would drop a job before segpub dead-letters it with its reason", rp["maxReceiveCount"], attempts)
	}
	if vt, _ := q["VisibilityTimeout"].(int); time.Duration(vt)*time.Second < mustDuration(t, one("SEGPUB_LEASE")) {
		t.Errorf("VisibilityTimeout %d s is under SEGPUB_LEASE", vt)
	}

	// Target tracking on backlog per task.
	pol := tp.resource(t, "BacklogPerTaskScaling")
	if pol["PolicyType"] != "TargetTrackingScaling" {
		t.Errorf("scaling policy type %v", pol["PolicyType"])
	}
	var metrics []string
	walk(pol, func(v any) {
		if m, ok := v.(map[string]any); ok && m["MetricName"] != nil {
			metrics = append(metrics, str(m["MetricName"]))
		}
	})
	slices.Sort(metrics)
	if want := []string{"ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesVisible", "RunningTaskCount"}; !slices.Equal(metrics, want) {
		t.Errorf("scaling metrics %v, want %v", metrics, want)
	}

	// Alarms on both dead-letter queues and on the oldest job's age.
	alarms := map[string]bool{}
	for name, r := range tp.section("Resources") {
		res := r.(map[string]any)
		if res["Type"] != "AWS::CloudWatch::Alarm" {
			continue
		}
		p := res["Properties"].(map[string]any)
		var queue string
		for _, d := range list(p["Dimensions"]) {
			dm := d.(map[string]any)
			if dm["Name"] == "QueueName" {
				walk(dm["Value"], func(v any) {
					if m, ok := v.(map[string]any); !ok {
						return
					} else if ga, ok := m["Fn::GetAtt"].([]any); ok {
						queue = str(ga[0])
					}
				})
			}
		}
		alarms[str(p["MetricName"])+" "+queue] = true
		_ = name
	}
	for _, want := range []string{"ApproximateNumberOfMessagesVisible DeadLetterQueue", "ApproximateNumberOfMessagesVisible JobDeadLetterQueue", "ApproximateAgeOfOldestMessage JobQueue"} {
		if !alarms[want] {
			t.Errorf("no alarm on %s (alarms: %v)", want, alarms)
		}
	}

	// Least privilege: "*" only for the ECR token; secrets only through
	// the execution role, and only the ones injected.
	for _, role := range []string{"ExecutionRole", "TaskRole"} {
		walk(tp.resource(t, role), func(v any) {
			st, ok := v.(map[string]any)
			if !ok || st["Effect"] == nil {
				return
			}
			actions := fmt.Sprint(st["Action"])
			if slices.Contains(list(st["Resource"]), any("*")) && actions != "ecr:GetAuthorizationToken" {
				t.Errorf("%s: %s on every resource", role, actions)
			}
			if strings.Contains(actions, "*") {
				t.Errorf("%s: wildcard action %s", role, actions)
			}
			if role == "TaskRole" && strings.Contains(actions, "secretsmanager") {
				t.Errorf("TaskRole reads secrets: %s", actions)
			}
			if role == "ExecutionRole" && strings.Contains(actions, "secretsmanager:GetSecretValue") {
				res := list(st["Resource"])
				for name, from := range secrets {
					if !slices.ContainsFunc(res, func(r any) bool { return fmt.Sprint(r) == fmt.Sprint(from) }) {
						t.Errorf("the execution role cannot read %s's secret %v", name, from)
					}
				}
				if len(res) != len(secrets) {
					t.Errorf("the execution role reads %d secrets, the task injects %d", len(res), len(secrets))
				}
			}
		})
	}
	if lc, _ := def["LogConfiguration"].(map[string]any); lc == nil || lc["LogDriver"] != "awslogs" {
		t.Errorf("log configuration %v", def["LogConfiguration"])
	}
	if tbl := tp.resource(t, "ClaimCheckTable"); fmt.Sprint(tbl["KeySchema"]) != fmt.Sprint([]any{map[string]any{"AttributeName": "id", "KeyType": "HASH"}}) {
		t.Errorf("claim-check table key %v, want id", tbl["KeySchema"])
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The container's command and health check are command lines the binary
// takes, at the path the Dockerfile installs it.
func TestTemplateCommandsExist(t *testing.T) {
	t.Parallel()
	tp := loadTemplate(t)
	def, _, _ := container(t, tp)
	docker, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	hc := list(def["HealthCheck"].(map[string]any)["Command"])
	if len(hc) < 3 || hc[0] != "CMD" {
		t.Fatalf("health check %v: want the exec form", hc)
	}
	bin := str(hc[1])
	if !strings.Contains(string(docker), "COPY --from=build /out/segpub "+bin+"\n") {
		t.Errorf("the health check runs %s, which the Dockerfile does not install", bin)
	}
	for _, args := range [][]any{list(def["Command"]), hc[2:]} {
		var words []string
		for _, a := range args {
			words = append(words, str(a))
		}
		root := cli.New(&cli.Env{Getenv: func(string) string { return "" }}).Command()
		cmd, rest, err := root.Find(words)
		if err != nil || cmd == root {
			t.Errorf("%v: not a segpub command (%v)", words, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("%v: %v", words, err)
		}
	}
}

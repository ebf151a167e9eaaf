package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segpub/segpub/internal/audience"
	"github.com/segpub/segpub/internal/indexes"
	"github.com/segpub/segpub/internal/job"
	"github.com/segpub/segpub/internal/publish"
	"github.com/segpub/segpub/internal/schema"
	"github.com/segpub/segpub/internal/seed"
)

// The index study: every workload's audience query (exactly as a run
// compiles it) under EXPLAIN ANALYZE, on the tables with their keys only,
// with the indexes proposed for the Node.js publisher's tables, with indexes in the byte order
// segpub streams in, and with what `segpub migrate indexes` creates. It
// decides which indexes segpub creates.

// IndexSet is one configuration of secondary indexes.
type IndexSet string

const (
	KeysOnly     IndexSet = "keys only"
	ReportSet    IndexSet = "proposed indexes"
	OrderedSet   IndexSet = "byte-order indexes"
	SegpubSet    IndexSet = "segpub migrate indexes"
	studyRunsPer          = 2
)

// IndexResult is one query under one index set.
type IndexResult struct {
	Query string   `json:"query"`
	Set   IndexSet `json:"set"`
	// Milliseconds is PostgreSQL's execution time (EXPLAIN ANALYZE), the
	// best of two runs.
	Milliseconds float64 `json:"milliseconds"`
	// Indexes are the secondary indexes the plan used.
	Indexes []string `json:"indexes"`
}

// orderedIndexes serve segpub's stream order: users, and devices per user,
// in byte order of their ids (a merge join with no sort, and index ranges
// for resumed runs and partitions).
func orderedIndexes(t schema.Tables) []indexes.Index {
	p := t.Project
	return []indexes.Index{
		{Name: "so_uid_" + p, Table: t.User, Columns: `(notifly_user_id COLLATE "C")`},
		{Name: "so_duid_" + p, Table: t.Device, Columns: `(notifly_user_id COLLATE "C", notifly_device_id COLLATE "C")`},
	}
}

// reportIndexes are the indexes proposed for the Node.js publisher's
// tables.
func reportIndexes(t schema.Tables) []indexes.Index {
	p := t.Project
	return []indexes.Index{
		{Name: "sr_ext_" + p, Table: t.User, Columns: "(external_user_id, notifly_user_id) INCLUDE (email, phone_number)"},
		{Name: "sr_contact_" + p, Table: t.User, Columns: "(notifly_user_id) INCLUDE (email, phone_number, user_properties, random_bucket_number)"},
		{Name: "sr_utp_" + p, Table: t.Device, Columns: "(notifly_user_id, device_token, platform) INCLUDE (os_version, app_version, sdk_version, sdk_type)"},
		{Name: "sr_tok_" + p, Table: t.Device, Columns: "(device_token, platform) WHERE device_token IS NOT NULL AND device_token != ''"},
		{Name: "sr_dr_" + p, Table: t.DeliveryResult, Columns: "(campaign_id, notifly_user_id, created_at DESC)"},
		{Name: "sr_ev_" + p, Table: t.EventCounts, Columns: "(notifly_user_id, name, dt) INCLUDE (count, sum_event_value)"},
		{Name: "sr_exp_" + p, Table: t.Experiments, Columns: "(campaign_id) INCLUDE (id, experiment_status)"},
		{Name: "sr_var_" + p, Table: t.Variants, Columns: "(experiment_id, campaign_id)"},
	}
}

type studyQuery struct {
	name string
	job  []byte
	// after bounds the query as a resumed run (or a partition) does.
	after bool
}

// IndexStudy runs the study on project; it leaves segpub's indexes in place.
func IndexStudy(ctx context.Context, pool *pgxpool.Pool, project string, log *slog.Logger) ([]IndexResult, error) {
	t, err := schema.For(project)
	if err != nil {
		return nil, err
	}
	ids, err := pickIDs(ctx, pool, t)
	if err != nil {
		return nil, err
	}
	excluding := []byte(jobHeader(project, "bench-exclude") + `"campaign":{"id":"` + seed.PreviousCampaign + `","channel":"email",
"audience":{"type":"all"},"exclude_previous_recipients":true,"message":{"subject":"Again"}}}`)
	delivery := []byte(jobHeader(project, "bench-delivery") + `"campaign":{"id":"bench_delivery","channel":"email",
"audience":{"type":"segment","groups":[{"conditions":[{"kind":"delivery","campaign_id":"` + seed.PreviousCampaign + `","within_days":30,"received":true}]}]},
"message":{"subject":"Follow-up"}}}`)
	queries := []studyQuery{
		{name: "push, all users", job: PushAllJob(project)},
		{name: "push, all users, resumed halfway", job: PushAllJob(project), after: true},
		{name: "push, segment: event + device condition", job: segmentJob(project, nil)},
		{name: "push, user_ids list of 200k", job: userIDsJob(project, ids)},
		{name: "email, A/B experiment, all users", job: abEmailJob(project, nil)},
		{name: "email, all users, excluding previous recipients", job: excluding},
		{name: "email, segment: delivery condition", job: delivery},
	}
	var mid string
	if err := pool.QueryRow(ctx, `SELECT notifly_user_id FROM `+t.User+` ORDER BY notifly_user_id COLLATE "C"
OFFSET (SELECT count(*) / 2 FROM `+t.User+`) LIMIT 1`).Scan(&mid); err != nil {
		return nil, fmt.Errorf("find the middle user: %w", err)
	}
	runner, err := publish.New(publish.Config{Pool: pool})
	if err != nil {
		return nil, err
	}
	all := append(append(reportIndexes(t), orderedIndexes(t)...), indexes.For(t)...)
	drop := func() error {
		names := indexes.Retired(t)
		for _, ix := range all {
			names = append(names, ix.Name)
		}
		for _, n := range names {
			if _, err := pool.Exec(ctx, `DROP INDEX IF EXISTS "`+n+`"`); err != nil {
				return fmt.Errorf("drop index %s: %w", n, err)
			}
		}
		return nil
	}
	create := func(set []indexes.Index) error {
		for _, ix := range set {
			if _, err := pool.Exec(ctx, `CREATE INDEX IF NOT EXISTS "`+ix.Name+`" ON `+ix.Table+` `+ix.Columns); err != nil {
				return fmt.Errorf("create index %s: %w", ix.Name, err)
			}
		}
		_, err := pool.Exec(ctx, `ANALYZE `+t.User+`; ANALYZE `+t.Device+`; ANALYZE `+t.DeliveryResult+`; ANALYZE `+t.EventCounts)
		return err
	}
	var out []IndexResult
	for _, set := range []struct {
		name IndexSet
		ixs  []indexes.Index
	}{{KeysOnly, nil}, {ReportSet, reportIndexes(t)}, {OrderedSet, orderedIndexes(t)}, {SegpubSet, indexes.For(t)}} {
		if err := drop(); err != nil {
			return nil, err
		}
		log.Info("index study", "set", set.name)
		if err := create(set.ixs); err != nil {
			return nil, err
		}
		for _, q := range queries {
			j, err := job.Parse(q.job)
			if err != nil {
				return nil, err
			}
			aq, spec, err := runner.AudienceQuery(ctx, j)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", q.name, err)
			}
			if q.after {
				spec.After = mid
				if aq, err = audience.Compile(spec); err != nil {
					return nil, fmt.Errorf("%s: %w", q.name, err)
				}
			}
			r := IndexResult{Query: q.name, Set: set.name}
			for range studyRunsPer {
				ms, used, err := explainAnalyze(ctx, pool, aq, "_"+project)
				if err != nil {
					return nil, fmt.Errorf("%s (%s): %w", q.name, set.name, err)
				}
				if r.Milliseconds == 0 || ms < r.Milliseconds {
					r.Milliseconds, r.Indexes = ms, used
				}
			}
			log.Info("index study", "set", set.name, "query", q.name, "ms", r.Milliseconds, "indexes", r.Indexes)
			out = append(out, r)
		}
	}
	return out, nil
}

// explainAnalyze runs the query under EXPLAIN ANALYZE with its bind
// parameters and returns the execution time and the indexes used (other
// than the tables' keys).
// asRun calls f in a transaction set up as segpub's own sessions run an
// audience query: jit off, an id list under its planner setting; read-only
// and rolled back, as the settings are the transaction's.
func asRun(ctx context.Context, pool *pgxpool.Pool, q *audience.Query, f func(pgx.Tx) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
		return err
	}
	if q.Listed {
		if _, err := tx.Exec(ctx, audience.Probing); err != nil {
			return err
		}
	}
	return f(tx)
}

func explainAnalyze(ctx context.Context, pool *pgxpool.Pool, q *audience.Query, suffix string) (float64, []string, error) {
	var raw []byte
	if err := asRun(ctx, pool, q, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+q.SQL, q.Args...).Scan(&raw)
	}); err != nil {
		return 0, nil, err
	}
	var plans []struct {
		Plan          json.RawMessage `json:"Plan"`
		ExecutionTime float64         `json:"Execution Time"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) == 0 {
		return 0, nil, fmt.Errorf("read plan: %v", err)
	}
	used := map[string]bool{}
	var walk func(json.RawMessage)
	walk = func(node json.RawMessage) {
		var n struct {
			Index string            `json:"Index Name"`
			Plans []json.RawMessage `json:"Plans"`
		}
		if json.Unmarshal(node, &n) != nil {
			return
		}
		if n.Index != "" && !strings.HasSuffix(n.Index, "_pkey") && !strings.HasSuffix(n.Index, "_key") {
			used[strings.TrimSuffix(n.Index, suffix)] = true
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plans[0].Plan)
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	return plans[0].ExecutionTime, names, nil
}

// IndexMarkdown renders the study: one row per query, one column per set.
func IndexMarkdown(results []IndexResult) string {
	sets := []IndexSet{KeysOnly, ReportSet, OrderedSet, SegpubSet}
	var b strings.Builder
	b.WriteString("| query |")
	for _, s := range sets {
		fmt.Fprintf(&b, " %s: ms | indexes used |", s)
	}
	b.WriteString("\n|---|")
	for range sets {
		b.WriteString("---:|---|")
	}
	b.WriteString("\n")
	var order []string
	byQuery := map[string]map[IndexSet]IndexResult{}
	for _, r := range results {
		if byQuery[r.Query] == nil {
			byQuery[r.Query] = map[IndexSet]IndexResult{}
			order = append(order, r.Query)
		}
		byQuery[r.Query][r.Set] = r
	}
	for _, q := range order {
		fmt.Fprintf(&b, "| %s |", q)
		for _, s := range sets {
			r := byQuery[q][s]
			used := strings.Join(r.Indexes, ", ")
			if used == "" {
				used = "none"
			}
			fmt.Fprintf(&b, " %.0f | %s |", r.Milliseconds, used)
		}
		b.WriteString("\n")
	}
	return b.String()
}

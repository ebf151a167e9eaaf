// Package variant assigns users to A/B variants by random_bucket_number
// (docs/job.md, "Experiments").
package variant

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Buckets is the number of random buckets users are spread over.
const Buckets = 10000

// Variant is one variant of an experiment.
type Variant struct {
	ID     string
	Name   string
	Weight int64
	// Control variants receive nothing.
	Control bool
	// Low and High bound the buckets the variant owns: Low <= b < High.
	Low, High int
}

// Split is an experiment's variants with their bucket ranges.
type Split struct {
	Variants []Variant
}

// New orders variants by id (byte order) and gives each its buckets:
// floor(10000*C(k-1)/W) <= b < floor(10000*C(k)/W) for cumulative weight C.
func New(vs []Variant) (*Split, error) {
	vs = slices.Clone(vs)
	slices.SortFunc(vs, func(a, b Variant) int { return cmp.Compare(a.ID, b.ID) })
	var total int64
	for _, v := range vs {
		if v.Weight < 0 {
			return nil, fmt.Errorf("variant %q has negative weight %d", v.ID, v.Weight)
		}
		total += v.Weight
	}
	if total == 0 {
		return nil, fmt.Errorf("variants have a total weight of 0")
	}
	var cum int64
	for i := range vs {
		vs[i].Low = int(Buckets * cum / total)
		cum += vs[i].Weight
		vs[i].High = int(Buckets * cum / total)
		vs[i].Control = vs[i].Name == "control"
	}
	return &Split{Variants: vs}, nil
}

// Of returns the variant owning a bucket, or nil for a bucket outside
// 0..9999 (a database the CHECK constraint was not applied to).
func (s *Split) Of(bucket int) *Variant {
	for i := range s.Variants {
		if bucket >= s.Variants[i].Low && bucket < s.Variants[i].High {
			return &s.Variants[i]
		}
	}
	return nil
}

// Querier is the part of a pgx connection or pool Load needs.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Load reads an experiment's variants from the project's variants table
// (a quoted identifier from package schema).
func Load(ctx context.Context, q Querier, table, experimentID string) ([]Variant, error) {
	rows, err := q.Query(ctx, "SELECT id, name, weight FROM "+table+" WHERE experiment_id = $1", experimentID)
	if err != nil {
		return nil, fmt.Errorf("load variants of %s: %w", experimentID, err)
	}
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Variant, error) {
		var v Variant
		var w int32
		err := r.Scan(&v.ID, &v.Name, &w)
		v.Weight = int64(w)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("load variants of %s: %w", experimentID, err)
	}
	return vs, nil
}

// Package docs carries what the binary takes from the documentation: the
// benchmark's recorded results (benchmarks.json, written by make bench),
// from which segpub cost computes.
package docs

import _ "embed"

// BenchmarkResults is benchmarks.json as committed: a `segpub bench`
// report with its date and machine.
//
//go:embed benchmarks.json
var BenchmarkResults []byte

// BenchmarkResultsPath is where BenchmarkResults comes from, for messages.
const BenchmarkResultsPath = "docs/benchmarks.json"

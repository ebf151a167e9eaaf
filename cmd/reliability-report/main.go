// Command reliability-report writes the results of `make reliability` into
// docs/reliability.md. See internal/reliability.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/segpub/segpub/internal/reliability"
)

// The tests in the order the document discusses them.
var order = []string{
	"TestFailpointsResume", "TestSparseAudience", "TestSparseAudienceResume", "TestInjectedFaults",
	"TestDatabaseFaults", "TestRedeliveryAndReplay", "TestStaleOccurrences", "TestRestoredSnapshot",
	"Crash test (internal/chaos)",
}

func main() {
	in := flag.String("in", "", "results file the tests appended to ($SEGPUB_RELIABILITY_OUT)")
	doc := flag.String("doc", "docs/reliability.md", "document whose generated section is rewritten")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "reliability-report: -in is required")
		os.Exit(2)
	}
	// The results were measured when the tests last wrote them.
	st, err := os.Stat(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability-report:", err)
		os.Exit(1)
	}
	if err := reliability.Report(*in, *doc, order, st.ModTime(), machine()); err != nil {
		fmt.Fprintln(os.Stderr, "reliability-report:", err)
		os.Exit(1)
	}
}

// machine describes the host: core count and CPU model.
func machine() string {
	desc := fmt.Sprintf("%d cores, %s/%s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return desc
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return desc + " (" + strings.TrimSpace(v) + ")"
		}
	}
	return desc
}

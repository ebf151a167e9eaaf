package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

func numCPU() int { return runtime.NumCPU() }

// Machine is what a benchmark ran on, recorded with its results so that a
// figure quoted later (segpub cost) says where it comes from.
type Machine struct {
	CPU       string  `json:"cpu"`
	CPUs      int     `json:"cpus"`
	MemoryGiB float64 `json:"memory_gib"`
	OS        string  `json:"os"`
}

// String is "AMD EPYC 7B13, 2 CPUs, 24 GiB, linux/amd64".
func (m Machine) String() string {
	parts := []string{}
	if m.CPU != "" {
		parts = append(parts, m.CPU)
	}
	if m.CPUs > 0 {
		parts = append(parts, fmt.Sprintf("%d CPUs", m.CPUs))
	}
	if m.MemoryGiB > 0 {
		parts = append(parts, fmt.Sprintf("%.0f GiB", m.MemoryGiB))
	}
	if m.OS != "" {
		parts = append(parts, m.OS)
	}
	if len(parts) == 0 {
		return "an unrecorded machine"
	}
	return strings.Join(parts, ", ")
}

// thisMachine describes the machine the benchmark runs on, from /proc
// where there is one.
func thisMachine() Machine {
	m := Machine{CPUs: numCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.CPU = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseFloat(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 64); err == nil {
		m.MemoryGiB = float64(int(kb/(1<<20)*10+0.5)) / 10
	}
	return m
}

// procField is the first "name: value" line's value of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

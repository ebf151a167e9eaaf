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

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on every
// Linux architecture Go builds for).
const clockTicks = 100

// postgresCPU is the CPU time, in seconds, of the processes named
// postgres on this machine: each one's own and, through the postmaster,
// that of the backends and parallel workers that have exited. The
// difference over a run is what the database spent on it, when it runs
// on this machine; 0 without /proc or a local server.
func postgresCPU() float64 {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		data, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ...: comm may hold spaces, so split after ")".
		s := string(data)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "postgres" {
			continue
		}
		f := strings.Fields(s[end+1:])
		// After comm: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
		if len(f) < 15 {
			continue
		}
		for _, v := range f[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return float64(ticks) / clockTicks
}

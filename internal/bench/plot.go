package bench

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Plots draws the report's two charts as SVG: throughput and peak memory
// against audience size, one line per workload. SVG keeps them small,
// diffable and readable on any repository host.
func (r *Report) Plots() (throughput, memory []byte) {
	perSecond := func(m Measurement) float64 { return m.PerSecond / 1000 }
	rss := func(m Measurement) float64 { return m.PeakRSSMB }
	return r.plot("Throughput (thousand messages/s) by audience size", "thousand messages/s", perSecond),
		r.plot("Peak RSS (MiB) by audience size", "MiB", rss)
}

type series struct {
	name   string
	points [][2]float64 // users (millions), value
}

func (r *Report) plot(title, unit string, value func(Measurement) float64) []byte {
	byJob := map[string]*series{}
	var order []string
	for _, s := range r.Sizes {
		for _, m := range s.Results {
			v := value(m)
			if v <= 0 {
				continue
			}
			se := byJob[m.Job]
			if se == nil {
				se = &series{name: m.Name}
				byJob[m.Job] = se
				order = append(order, m.Job)
			}
			se.points = append(se.points, [2]float64{float64(s.Users) / 1e6, v})
		}
	}
	var all []*series
	for _, j := range order {
		sort.Slice(byJob[j].points, func(a, b int) bool { return byJob[j].points[a][0] < byJob[j].points[b][0] })
		all = append(all, byJob[j])
	}
	return drawChart(title, "users (millions)", unit, all)
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"}

func drawChart(title, xLabel, yLabel string, all []*series) []byte {
	const w, h, left, right, top, bottom = 860.0, 480.0, 70.0, 330.0, 40.0, 50.0
	var xMax, yMax float64
	for _, s := range all {
		for _, p := range s.points {
			xMax, yMax = math.Max(xMax, p[0]), math.Max(yMax, p[1])
		}
	}
	xMax, yMax = niceCeil(xMax), niceCeil(yMax)
	px := func(x float64) float64 { return left + x/xMax*(w-left-right) }
	py := func(y float64) float64 { return h - bottom - y/yMax*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, esc(title))
	for i := 0; i <= 5; i++ {
		y := yMax * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, py(y), w-right, py(y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, py(y)+4, trimFloat(y))
		x := xMax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(x), h-bottom+18, trimFloat(x))
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", left, top, left, h-bottom)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (left+w-right)/2, h-10, esc(xLabel))
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n", (top+h-bottom)/2, (top+h-bottom)/2, esc(yLabel))
	for i, s := range all {
		c := palette[i%len(palette)]
		var pts []string
		for _, p := range s.points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		for _, p := range s.points {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s: %s</title></circle>`+"\n", px(p[0]), py(p[1]), c, esc(s.name), trimFloat(p[1]))
		}
		ly := top + 10 + float64(i)*34
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="14" height="4" fill="%s"/>`+"\n", w-right+16, ly-4, c)
		for k, line := range wrap(s.name, 42) {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", w-right+36, ly+float64(k)*14, esc(line))
		}
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func wrap(s string, n int) []string {
	var lines []string
	var cur string
	for _, word := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(word) > n {
			lines = append(lines, cur)
			cur = word
			continue
		}
		if cur != "" {
			cur += " "
		}
		cur += word
	}
	return append(lines, cur)
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// Markdown renders the report as one table per project.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s; taken %s\n", r.Machine, r.Taken.Format("2006-01-02 15:04 MST"))
	tables := "keys plus segpub's indexes (segpub migrate indexes)"
	if r.KeysOnly {
		tables = "only their keys"
	}
	fmt.Fprintf(&b, "tables: %s; work_mem: COPY floors %s (the server's), segpub's sessions %s\n", tables, r.FloorWorkMem, r.WorkMem)
	for _, s := range r.Sizes {
		fmt.Fprintf(&b, "\n### %s: %d users, %d devices\n\n", s.ProjectID, s.Users, s.Devices)
		b.WriteString("| workload | seconds | messages | messages/s | peak RSS MiB | vs COPY | vs COPY, paired | own query s | vs own query | SDK alone msg/s | vs SDK | vs SDK, paired | first message s | vs partner, paired | CPU s | PostgreSQL CPU s | vs partner, paired CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, m := range s.Results {
			fmt.Fprintf(&b, "| %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m.Name, m.Seconds, blankZero(float64(m.Messages), "%.0f"),
				blankZero(m.PerSecond, "%.0f"), blankZero(m.PeakRSSMB, "%.0f"), blankZero(m.VsCopy, "%.2fx"), blankZero(m.VsCopyPaired, "%.2fx"),
				blankZero(m.QuerySeconds, "%.2f"), blankZero(m.VsQuery, "%.2fx"),
				blankZero(m.SDKPerSecond, "%.0f"), blankZero(m.VsSDK, "%.2fx"), blankZero(m.VsSDKPaired, "%.2fx"), blankZero(m.FirstMessageSeconds, "%.2f"),
				blankZero(m.VsPaired, "%.2fx"), blankZero(m.CPUSeconds, "%.2f"), blankZero(m.DatabaseCPUSeconds, "%.2f"), blankZero(m.VsPairedCPU, "%.2fx"))
		}
	}
	return b.String()
}

func blankZero(v float64, format string) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf(format, v)
}

package console

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"
)

// Chart geometry: the plot area inside a frame with room for labels.
const (
	chartW, chartH         = 640, 200
	padL, padR, padT, padB = 64, 16, 12, 36
)

// throughputSVG draws a run's acknowledged messages over time, from its
// samples, as an inline SVG. Only numbers and escaped text go into it.
func throughputSVG(ps []point) template.HTML {
	var b strings.Builder
	open(&b, "messages acknowledged over time")
	if len(ps) == 0 {
		empty(&b, "no throughput recorded")
		return template.HTML(b.String())
	}
	t0, t1 := ps[0].At, ps[len(ps)-1].At
	if !t1.After(t0) {
		t1 = t0.Add(time.Second)
	}
	top := max(ps[len(ps)-1].Published, 1)
	for _, p := range ps {
		top = max(top, p.Published)
	}
	x := func(t time.Time) float64 {
		return padL + float64(t.Sub(t0))/float64(t1.Sub(t0))*(chartW-padL-padR)
	}
	y := func(n int64) float64 { return chartH - padB - float64(n)/float64(top)*(chartH-padT-padB) }
	axes(&b, formatInt(top), t0.UTC().Format("15:04:05"), t1.UTC().Format("15:04:05Z"))
	var line strings.Builder
	fmt.Fprintf(&line, "M%.1f %.1f", x(t0), y(0))
	for _, p := range ps {
		fmt.Fprintf(&line, " L%.1f %.1f", x(p.At), y(p.Published))
	}
	area := line.String() + fmt.Sprintf(" L%.1f %.1f Z", x(t1), y(0))
	fmt.Fprintf(&b, `<path class="area" d="%s"/><path class="line" d="%s"/>`, area, line.String())
	for _, p := range ps {
		fmt.Fprintf(&b, `<circle class="dot" cx="%.1f" cy="%.1f" r="2"><title>%s: %s</title></circle>`, x(p.At), y(p.Published),
			p.At.UTC().Format("15:04:05Z"), formatInt(p.Published))
	}
	b.WriteString("</svg>")
	return template.HTML(b.String())
}

// wavesSVG draws a throttled run's waves: one bar per wave at its send
// time, as high as its messages.
func wavesSVG(w waves) template.HTML {
	var b strings.Builder
	open(&b, "messages per throttle wave")
	if len(w.List) == 0 {
		empty(&b, "no throttle: every message is sent at the reference time")
		return template.HTML(b.String())
	}
	top := int64(1)
	for _, v := range w.List {
		top = max(top, v.Count)
	}
	n := float64(len(w.List))
	slot := (chartW - padL - padR) / n
	bar := max(slot*0.7, 1)
	first, last := w.List[0].At, w.List[len(w.List)-1].At
	axes(&b, formatInt(top), first.UTC().Format("01-02 15:04"), last.UTC().Format("01-02 15:04Z"))
	for i, v := range w.List {
		h := float64(v.Count) / float64(top) * (chartH - padT - padB)
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>wave %d at %s: %s messages</title></rect>`,
			padL+float64(i)*slot+(slot-bar)/2, chartH-padB-h, bar, h, v.N, html.EscapeString(v.At.UTC().Format(time.RFC3339)), formatInt(v.Count))
	}
	b.WriteString("</svg>")
	return template.HTML(b.String())
}

func open(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s"><title>%s</title>`,
		chartW, chartH, html.EscapeString(title), html.EscapeString(title))
}

func empty(b *strings.Builder, msg string) {
	fmt.Fprintf(b, `<text class="label" x="%d" y="%d" text-anchor="middle">%s</text></svg>`, chartW/2, chartH/2, html.EscapeString(msg))
}

// axes draws the plot's frame with the top value and the first and last
// times.
func axes(b *strings.Builder, top, from, to string) {
	fmt.Fprintf(b, `<path class="axis" d="M%d %d V%d H%d"/>`, padL, padT, chartH-padB, chartW-padR)
	fmt.Fprintf(b, `<text class="label" x="%d" y="%d" text-anchor="end">%s</text>`, padL-6, padT+10, html.EscapeString(top))
	fmt.Fprintf(b, `<text class="label" x="%d" y="%d" text-anchor="end">0</text>`, padL-6, chartH-padB)
	fmt.Fprintf(b, `<text class="label" x="%d" y="%d">%s</text>`, padL, chartH-padB+20, html.EscapeString(from))
	fmt.Fprintf(b, `<text class="label" x="%d" y="%d" text-anchor="end">%s</text>`, chartW-padR, chartH-padB+20, html.EscapeString(to))
}

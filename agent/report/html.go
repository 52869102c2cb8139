package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

//go:embed page.html
var pageHTML string

// The templates are parsed on first use, not at start: the agent, which
// never writes reports, should not carry them.
var pageTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("page").Funcs(template.FuncMap{
		"ms": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	}).Parse(pageHTML))
})

// view is what page.html is executed with.
type view struct {
	Page       *Page
	Prev, Next string
	ErrorRate  string
	PII        int
	BucketName string
	Chart      template.HTML
	Workflows  []bar
	Types      []bar
}

type bar struct {
	Name    string
	Count   int
	Percent float64
}

func bars(m map[string]int) []bar {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	top := 1
	for _, k := range keys {
		top = max(top, m[k])
	}
	out := make([]bar, 0, len(keys))
	for _, k := range keys {
		name := k
		if name == "" {
			name = "(none)"
		}
		out = append(out, bar{name, m[k], 100 * float64(m[k]) / float64(top)})
	}
	return out
}

// WriteHTML writes the page; prev and next are the links to the
// neighbouring pages (their names as URL paths), or "".
func (p *Page) WriteHTML(w io.Writer, prev, next string) error {
	v := view{Page: p, Prev: prev, Next: next, BucketName: "hour", Chart: chart(p),
		Workflows: bars(p.Stats.ByWorkflow), Types: bars(p.Stats.ByType), ErrorRate: "0%"}
	if p.Weekly {
		v.BucketName = "6 hours"
	}
	if p.Stats.Events > 0 {
		v.ErrorRate = fmt.Sprintf("%.2f%%", 100*float64(p.Stats.Errors)/float64(p.Stats.Events))
	}
	for _, n := range p.Stats.Pseudonyms {
		v.PII += n
	}
	return pageTmpl().Execute(w, v)
}

// chartLayout is one drawing of the chart: its size and margins in SVG
// units (the SVG is scaled to the width of its box, text with it), the
// buckets between two time labels, and how a weekly label reads.
type chartLayout struct {
	id, class                      string
	w, h, left, right, top, bottom float64
	dailyEvery, weeklyEvery        int
	weeklyLabel                    string
}

// The page draws the chart twice and its CSS shows one: wide, and narrow
// for a phone, where the wide one's labels, scaled down with it to the
// screen, would be 4 px high (a 960-unit drawing in 340 px). The narrow
// one is a third as wide, so its labels stay 12 px and more, and has half
// as many, so they do not overlap.
var (
	wideChart   = chartLayout{"chart", "chart-wide", 960, 220, 48, 12, 12, 26, 3, 4, "Mon Jan 2"}
	narrowChart = chartLayout{"chart-narrow", "chart-narrow", 360, 200, 44, 10, 12, 30, 6, 8, "Mon 2"}
)

// chart draws the buckets as inline SVG line charts, wide and narrow,
// with a point (and a tooltip) per bucket.
func chart(p *Page) template.HTML {
	return drawChart(p, wideChart) + drawChart(p, narrowChart)
}

func drawChart(p *Page, l chartLayout) template.HTML {
	n := len(p.Buckets)
	peak := 1
	for _, c := range p.Buckets {
		peak = max(peak, c)
	}
	x := func(i int) float64 { return l.left + (l.w-l.left-l.right)*(float64(i)+0.5)/float64(n) }
	y := func(c int) float64 { return l.top + (l.h-l.top-l.bottom)*(1-float64(c)/float64(peak)) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="%s" viewBox="0 0 %.0f %.0f" role="img" aria-label="events per %s">`, l.id, l.class, l.w, l.h,
		map[bool]string{false: "hour", true: "6 hours"}[p.Weekly])
	for _, c := range []int{0, peak / 2, peak} {
		fmt.Fprintf(&b, `<line class="axis" x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f"/><text x="%.0f" y="%.1f" text-anchor="end">%d</text>`,
			l.left, l.w-l.right, y(c), y(c), l.left-6, y(c)+4, c)
	}
	var pts strings.Builder
	for i, c := range p.Buckets {
		fmt.Fprintf(&pts, "%.1f,%.1f ", x(i), y(c))
	}
	fmt.Fprintf(&b, `<polygon class="area" points="%.1f,%.1f %s%.1f,%.1f"/>`, x(0), y(0), pts.String(), x(n-1), y(0))
	fmt.Fprintf(&b, `<polyline class="line" points="%s"/>`, strings.TrimSpace(pts.String()))
	for i, c := range p.Buckets {
		at := p.Start.Add(time.Duration(i) * p.BucketWidth)
		fmt.Fprintf(&b, `<circle class="pt" cx="%.1f" cy="%.1f" r="3"><title>%s: %d events</title></circle>`, x(i), y(c), at.Format("Jan 2 15:04"), c)
		label := ""
		switch {
		case !p.Weekly && i%l.dailyEvery == 0:
			label = at.Format("15:04")
		case p.Weekly && i%l.weeklyEvery == 0:
			label = at.Format(l.weeklyLabel)
		}
		if label != "" {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`, x(i), l.h-l.bottom+18, label)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

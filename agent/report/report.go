// Package report builds the self-contained HTML reports: one page per day
// or week of events, from one parallel pass over the store.
package report

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/tailseal/tailseal/agent/query"
	"github.com/tailseal/tailseal/signer/record"
)

// Options for Build.
type Options struct {
	Weekly    bool // ISO weeks (Monday 00:00 UTC) instead of UTC days
	Filter    query.Filter
	Latest    int // events listed per page; 20 by default
	Integrity Integrity
	Now       time.Time
	Origin    string // of the store, in every page's title ("" unknown)
}

// Integrity is the verify status of the store, shown on every page.
type Integrity struct {
	Checked bool
	OK      bool
	Summary string   // one line
	Details []string // findings or notes
}

// Page is everything one period's report shows.
type Page struct {
	Start, End  time.Time
	Weekly      bool
	Stats       *query.Stats
	Buckets     []int // events per bucket, BucketWidth each, from Start
	BucketWidth time.Duration
	Errors      []ErrorGroup // most frequent first
	Operations  []query.Operation
	Latest      []record.Record // newest first
	Integrity   Integrity
	Generated   time.Time
	Origin      string
}

// ErrorGroup is the errors of one type in a period.
type ErrorGroup struct {
	Type   string
	Count  int
	Recent []ErrorLine // newest first
}

// ErrorLine is one error event, as anonymized in the store.
type ErrorLine struct {
	Seq      uint64
	Time     string
	Lead     string
	Workflow string
	Message  string
}

// recentErrors is how many messages are kept per error type.
const recentErrors = 5

// Name is the page's file name: 2026-02-04.html or 2026-W06.html.
func (p *Page) Name() string {
	if p.Weekly {
		y, w := p.Start.ISOWeek()
		return fmt.Sprintf("%d-W%02d.html", y, w)
	}
	return p.Start.Format(time.DateOnly) + ".html"
}

// Title names the period for people.
func (p *Page) Title() string {
	if p.Weekly {
		y, w := p.Start.ISOWeek()
		return fmt.Sprintf("Week %d of %d (%s to %s)", w, y, p.Start.Format("Jan 2"), p.End.Add(-time.Second).Format("Jan 2"))
	}
	return p.Start.Format("Monday, January 2, 2006")
}

// periodStart is the start of the period holding t.
func periodStart(t time.Time, weekly bool) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !weekly {
		return day
	}
	back := (int(day.Weekday()) + 6) % 7 // days since Monday
	return day.AddDate(0, 0, -back)
}

// acc accumulates one period in one worker.
type acc struct {
	stats   *query.Stats
	buckets []int
	errs    map[string]*ErrorGroup
	durs    map[string][]float64
	latest  []record.Record // the newest, unordered, at most Latest
}

// Build reads the store once and returns a page per period that has
// events, oldest first. Records whose timestamp is not RFC 3339 belong to
// no period.
func Build(ctx context.Context, s *query.Store, opt Options) ([]*Page, []query.Problem) {
	if opt.Latest <= 0 {
		opt.Latest = 20
	}
	width, n := time.Hour, 24
	if opt.Weekly {
		width, n = 6*time.Hour, 28
	}
	workers := make([]map[time.Time]*acc, max(s.Workers, 1))
	for i := range workers {
		workers[i] = map[time.Time]*acc{}
	}
	problems := s.Each(ctx, opt.Filter, func(w int, h *record.Head) {
		if h.Internal() {
			return
		}
		t, ok := h.Time()
		if !ok {
			return
		}
		start := periodStart(t, opt.Weekly)
		a := workers[w][start]
		if a == nil {
			a = &acc{stats: query.NewStats(), buckets: make([]int, n), errs: map[string]*ErrorGroup{}, durs: map[string][]float64{}}
			workers[w][start] = a
		}
		a.add(h, t.Sub(start)/width, opt.Latest)
	})
	merged := workers[0]
	for _, m := range workers[1:] {
		for start, b := range m {
			if a := merged[start]; a != nil {
				a.merge(b, opt.Latest)
			} else {
				merged[start] = b
			}
		}
	}
	var pages []*Page
	for _, start := range slices.SortedFunc(maps.Keys(merged), time.Time.Compare) {
		a := merged[start]
		end := start.AddDate(0, 0, 1)
		if opt.Weekly {
			end = start.AddDate(0, 0, 7)
		}
		p := &Page{Origin: opt.Origin, Start: start, End: end, Weekly: opt.Weekly, Stats: a.stats, Buckets: a.buckets, BucketWidth: width,
			Integrity: opt.Integrity, Generated: opt.Now}
		for _, g := range a.errs {
			sort.Slice(g.Recent, func(i, j int) bool { return g.Recent[i].Seq > g.Recent[j].Seq })
			p.Errors = append(p.Errors, *g)
		}
		sort.Slice(p.Errors, func(i, j int) bool {
			return p.Errors[i].Count > p.Errors[j].Count || p.Errors[i].Count == p.Errors[j].Count && p.Errors[i].Type < p.Errors[j].Type
		})
		for _, op := range slices.Sorted(maps.Keys(a.durs)) {
			p.Operations = append(p.Operations, query.Summarize(op, a.durs[op]))
		}
		p.Latest = a.latest
		sort.Slice(p.Latest, func(i, j int) bool { return p.Latest[i].Seq > p.Latest[j].Seq })
		pages = append(pages, p)
	}
	return pages, problems
}

func (a *acc) add(h *record.Head, bucket time.Duration, latest int) {
	a.stats.Add(h)
	a.buckets[min(int(bucket), len(a.buckets)-1)]++
	switch string(h.Type) {
	case record.TypeError:
		typ := record.FirstString(h.Details, record.ErrorTypeKeys)
		if typ == "" {
			typ = "(no type)"
		}
		g := a.errs[typ]
		if g == nil {
			g = &ErrorGroup{Type: typ}
			a.errs[typ] = g
		}
		g.Count++
		keepNewest(&g.Recent, recentErrors, h.Seq, func(l ErrorLine) uint64 { return l.Seq }, func() ErrorLine {
			return ErrorLine{Seq: h.Seq, Time: record.Text(h.Timestamp), Lead: record.Text(h.Lead), Workflow: record.Text(h.Workflow),
				Message: record.FirstString(h.Details, record.MessageKeys)}
		})
	case record.TypePerformance:
		if d, ok := record.Duration(h.Details); ok {
			op := h.Operation()
			a.durs[op] = append(a.durs[op], d)
		}
	}
	keepNewest(&a.latest, latest, h.Seq, func(r record.Record) uint64 { return r.Seq }, h.Record)
}

// keepNewest keeps in *list the n items with the highest seq; make is
// called only for an item that gets in.
func keepNewest[T any](list *[]T, n int, seq uint64, seqOf func(T) uint64, make func() T) {
	if len(*list) < n {
		*list = append(*list, make())
		return
	}
	low := 0
	for i, v := range *list {
		if seqOf(v) < seqOf((*list)[low]) {
			low = i
		}
	}
	if seq > seqOf((*list)[low]) {
		(*list)[low] = make()
	}
}

func (a *acc) merge(b *acc, latest int) {
	a.stats.Merge(b.stats)
	for i, n := range b.buckets {
		a.buckets[i] += n
	}
	for typ, g := range b.errs {
		mine := a.errs[typ]
		if mine == nil {
			a.errs[typ] = g
			continue
		}
		mine.Count += g.Count
		for _, l := range g.Recent {
			keepNewest(&mine.Recent, recentErrors, l.Seq, func(l ErrorLine) uint64 { return l.Seq }, func() ErrorLine { return l })
		}
	}
	for op, d := range b.durs {
		a.durs[op] = append(a.durs[op], d...)
	}
	for _, r := range b.latest {
		keepNewest(&a.latest, latest, r.Seq, func(r record.Record) uint64 { return r.Seq }, func() record.Record { return r })
	}
}

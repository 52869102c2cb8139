// Package report builds the self-contained HTML reports: one page per day
// or week of events, from one parallel pass over the store.
//
// A page always covers its whole period: a time range in the filter
// chooses which periods get a page. Any other filter (a lead, a type, a
// workflow, a data subject) makes pages of part of each period: they are
// named and titled by that filter (2026-02-04.type-error.html), so that
// they never replace a whole period's page, and the index lists every
// page the directory holds.
package report

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
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
	Only        string // the filter, for people ("type error"); "" for the whole period
	Tag         string // the filter, in the file name ("type-error")
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

// Name is the page's file name: 2026-02-04.html or 2026-W06.html, and
// with a filter its tag: 2026-02-04.type-error.html.
func (p *Page) Name() string {
	name := p.Start.Format(time.DateOnly)
	if p.Weekly {
		y, w := p.Start.ISOWeek()
		name = fmt.Sprintf("%d-W%02d", y, w)
	}
	if p.Tag != "" {
		name += "." + p.Tag
	}
	return name + ".html"
}

// Title names the period for people, and the filter.
func (p *Page) Title() string {
	title := p.Start.Format("Monday, January 2, 2006")
	if p.Weekly {
		y, w := p.Start.ISOWeek()
		title = fmt.Sprintf("Week %d of %d (%s to %s)", w, y, p.Start.Format("Jan 2"), p.End.Add(-time.Second).Format("Jan 2"))
	}
	if p.Only != "" {
		title += " · only " + p.Only
	}
	return title
}

// describe names a filter's other parts than its time range, for people
// and in a file name: each value as record.OriginToken writes it (one
// file name segment, one-to-one), the data subject by a digest of its
// pseudonyms, never by the value a person is known by.
func describe(f query.Filter) (only, tag string) {
	var says, tags []string
	for _, part := range []struct{ name, value string }{{"lead", f.Lead}, {"type", f.Type}, {"workflow", f.Workflow}} {
		if part.value != "" {
			says = append(says, part.name+" "+part.value)
			tags = append(tags, part.name+"-"+record.OriginToken(part.value))
		}
	}
	if len(f.Subjects) > 0 {
		h := sha256.Sum256([]byte(strings.Join(f.Subjects, "\n")))
		d := hex.EncodeToString(h[:6])
		says = append(says, "one data subject ("+d+")")
		tags = append(tags, "subject-"+d)
	}
	return strings.Join(says, ", "), strings.Join(tags, ".")
}

// wholePeriods widens a time range to the periods it touches.
func wholePeriods(f query.Filter, weekly bool) query.Filter {
	if !f.Since.IsZero() {
		f.Since = periodStart(f.Since, weekly)
	}
	if !f.Until.IsZero() {
		f.Until = periodEnd(periodStart(f.Until.Add(-time.Nanosecond), weekly), weekly)
	}
	return f
}

// periodEnd is the end of the period that starts at start.
func periodEnd(start time.Time, weekly bool) time.Time {
	if weekly {
		return start.AddDate(0, 0, 7)
	}
	return start.AddDate(0, 0, 1)
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
// events, oldest first. A time range in opt.Filter is widened to whole
// periods; the filter's other parts name and title the pages. Records
// whose timestamp is not RFC 3339 belong to no period.
func Build(ctx context.Context, s *query.Store, opt Options) ([]*Page, []query.Problem) {
	if opt.Latest <= 0 {
		opt.Latest = 20
	}
	opt.Filter = wholePeriods(opt.Filter, opt.Weekly)
	only, tag := describe(opt.Filter)
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
		p := &Page{Origin: opt.Origin, Start: start, End: periodEnd(start, opt.Weekly), Weekly: opt.Weekly, Only: only, Tag: tag,
			Stats: a.stats, Buckets: a.buckets, BucketWidth: width, Integrity: opt.Integrity, Generated: opt.Now}
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

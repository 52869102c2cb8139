// Package query answers operators' questions over the store. It reads the
// index to skip segments that cannot match, reads the others in parallel,
// and filters records on their fixed leading fields without a full JSON
// decode.
package query

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// ErrNoStore means the data directory has no store.
var ErrNoStore = errors.New("no store")

// Store is a read-only view of a store directory.
type Store struct {
	dir   string
	segs  []store.Segment
	index map[string]store.IndexEntry
	// Workers is how many segments are read at once; GOMAXPROCS by default.
	Workers int
}

// Open lists the segments of the store in dir (the store/ directory).
func Open(dir string) (*Store, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%w in %s", ErrNoStore, filepath.Dir(dir))
	}
	segs, err := store.List(dir)
	if err != nil {
		return nil, err
	}
	index, err := store.ReadIndex(dir)
	if err != nil {
		return nil, err
	}
	return &Store{dir: dir, segs: segs, index: index, Workers: runtime.GOMAXPROCS(0)}, nil
}

// Segments is how many segments the store has.
func (s *Store) Segments() int { return len(s.segs) }

// Problem is a segment that could not be read completely. Answers are given
// from everything else.
type Problem struct {
	Segment string
	Err     error
}

func (p Problem) Error() string { return p.Segment + ": " + p.Err.Error() }

// Filter selects records. Zero fields select everything.
type Filter struct {
	Lead, Type, Workflow string
	Since, Until         time.Time // Since inclusive, Until exclusive
	// Subjects are pseudonyms (<kind:hex>) or raw values: a record matches
	// when it contains any of them.
	Subjects []string
	// AppOnly leaves out the records the agent writes about itself (seals,
	// checkpoints).
	AppOnly bool
}

// compiled is a Filter with its values in the canonical form they have
// inside stored JSON strings (record.AppendString), so records are
// compared without decoding: record.Head canonicalizes the seed fields of
// records stored before the agent did so at ingest.
type compiled struct {
	lead, typ, workflow []byte
	since, until        time.Time
	subjects            [][]byte
	// The subjects split: pseudonyms are found by walking a line's
	// tokens once, raw values by a search each.
	pseudonyms map[string]bool
	raw        [][]byte
	appOnly    bool
}

func compile(f Filter) compiled {
	c := compiled{since: f.Since, until: f.Until, appOnly: f.AppOnly}
	c.lead, c.typ, c.workflow = canonical(f.Lead), canonical(f.Type), canonical(f.Workflow)
	for _, s := range f.Subjects {
		v := canonical(s)
		c.subjects = append(c.subjects, v)
		if tok, rest, ok := record.NextPseudonym(v); ok && len(tok) == len(v) && len(rest) == 0 {
			if c.pseudonyms == nil {
				c.pseudonyms = map[string]bool{}
			}
			c.pseudonyms[string(v)] = true
		} else {
			c.raw = append(c.raw, v)
		}
	}
	return c
}

// unfiltered reports a filter that selects every record.
func (f Filter) unfiltered() bool {
	return f.Lead == "" && f.Type == "" && f.Workflow == "" && f.Since.IsZero() && f.Until.IsZero() && len(f.Subjects) == 0
}

// canonical is v as the agent writes it between the quotes of a JSON
// string; nil for "".
func canonical(v string) []byte {
	if v == "" {
		return nil
	}
	b := record.AppendString(nil, []byte(v))
	return b[1 : len(b)-1]
}

func (c *compiled) match(h *record.Head) bool {
	if c.appOnly && h.Internal() {
		return false
	}
	if c.typ != nil && !bytes.Equal(h.Type, c.typ) ||
		c.lead != nil && !bytes.Equal(h.Lead, c.lead) ||
		c.workflow != nil && !bytes.Equal(h.Workflow, c.workflow) {
		return false
	}
	if !c.since.IsZero() || !c.until.IsZero() {
		t, ok := h.Time()
		if !ok || !c.since.IsZero() && t.Before(c.since) || !c.until.IsZero() && !t.Before(c.until) {
			return false
		}
	}
	return c.subjects == nil || c.aboutSubject(h.Line)
}

// aboutSubject reports whether line contains one of the subjects. A line
// with escapes is also searched in canonical form, so that a raw value
// (PII mode off) is found however the application escaped it.
func (c *compiled) aboutSubject(line []byte) bool {
	if c.contains(line) {
		return true
	}
	// Only a \u escape can stand for a byte of a pseudonym (< > : and
	// [a-z0-9_]); a raw value may hold any byte.
	if bytes.IndexByte(line, '\\') < 0 || len(c.raw) == 0 && !bytes.Contains(line, []byte(`\u`)) {
		return false
	}
	return c.contains(record.AppendCanonicalJSON(nil, line))
}

// contains reports whether b holds one of the subjects.
func (c *compiled) contains(b []byte) bool {
	if c.pseudonyms != nil {
		for rest := b; ; {
			tok, after, ok := record.NextPseudonym(rest)
			if !ok {
				break
			}
			if c.pseudonyms[string(tok)] {
				return true
			}
			rest = after
		}
	}
	for _, s := range c.raw {
		if bytes.Contains(b, s) {
			return true
		}
	}
	return false
}

// mayMatch uses the index to rule out a whole segment. Type and workflow
// keys are canonical in every entry (ReadIndex canonicalizes old ones);
// the lead filter of an entry built before values were canonicalized
// holds them as the application escaped them, so it is only asked about
// a value that no JSON encoder escapes. The Bloom filters are read only
// when a lead or a subject asks (see store.Filters); one that does not
// match its entry rules nothing out, and the problem says so. For a
// segment that may match, it also says which of its members may (nil:
// read it whole).
func (s *Store) mayMatch(c *compiled, e *store.IndexEntry) (bool, *memberPlan, *Problem) {
	if c.typ != nil && e.Types != nil && e.Types[string(c.typ)] == 0 {
		return false, nil, nil
	}
	if c.workflow != nil && e.Workflows != nil && e.Workflows[string(c.workflow)] == 0 {
		return false, nil, nil
	}
	if e.MinTime != "" {
		lo, err1 := time.Parse(time.RFC3339Nano, e.MinTime)
		hi, err2 := time.Parse(time.RFC3339Nano, e.MaxTime)
		if err1 == nil && err2 == nil && (!c.until.IsZero() && !lo.Before(c.until) || !c.since.IsZero() && hi.Before(c.since)) {
			return false, nil, nil
		}
	}
	var lead []byte
	if c.lead != nil && (e.Canonical || neverEscaped(c.lead)) {
		leads, err := store.LeadFilter(s.dir, e)
		if err != nil {
			return true, nil, filterProblem(e, err)
		}
		if !leads.MayContain(c.lead) {
			return false, nil, nil
		}
		lead = c.lead
	}
	var present [][]byte                   // the subjects the segment's filter may hold
	if c.subjects != nil && c.raw == nil { // a raw value is not in the filter: read the segment
		tokens, err := store.PseudonymFilter(s.dir, e)
		if err != nil {
			return true, nil, filterProblem(e, err)
		}
		if tokens == nil {
			return true, nil, nil
		}
		for _, s := range c.subjects {
			if tokens.MayContain(s) {
				present = append(present, s)
			}
		}
		if present == nil {
			return false, nil, nil
		}
	}
	if lead == nil && present == nil {
		return true, nil, nil
	}
	members, p := s.members(e, lead, present)
	if members != nil && len(members.want) == 0 {
		return false, nil, nil // the members' filters cover every line
	}
	return true, members, p
}

// memberPlan is a segment's member table and the members a query reads.
type memberPlan struct {
	table []store.Member
	want  []int
}

// members returns the members of e's segment that may hold lead (nil:
// any) and one of subjects (nil: any), or nil to read it whole: it is
// one member, its table cannot be used, or most of it would be read
// anyway (one stream reads faster than many members).
func (s *Store) members(e *store.IndexEntry, lead []byte, subjects [][]byte) (*memberPlan, *Problem) {
	ms, err := store.Members(s.dir, e)
	if err != nil {
		return nil, filterProblem(e, err)
	}
	if len(ms) < 2 {
		return nil, nil
	}
	want := store.MemberCandidates(ms, lead, subjects)
	if len(want) > len(ms)/2 {
		return nil, nil
	}
	for i := range ms { // a plan holds every segment's table: not its filters
		ms[i].Leads, ms[i].Pseudonyms = nil, nil
	}
	return &memberPlan{ms, want}, nil
}

func filterProblem(e *store.IndexEntry, err error) *Problem {
	return &Problem{store.IndexFile, fmt.Errorf("the filters of %s cannot be used (%v): the segment is read; run tailseal verify", e.Segment, err)}
}

// neverEscaped reports a value made only of bytes that JSON encoders write
// as they are: ASCII letters, digits and - _ . : @ # + = space. (Python
// escapes non-ASCII, Go < > &, PHP /.)
func neverEscaped(v []byte) bool {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:@#+= ", c) >= 0) {
			return false
		}
	}
	return true
}

// planned is a segment to read, with its index entry when the entry
// holds to the segment.
type planned struct {
	store.Segment
	entry   *store.IndexEntry
	members *memberPlan // nil: read it whole
}

// plan returns the segments that may hold matching records, in seq order,
// and a problem for every gap in seq between two segments.
func (s *Store) plan(c *compiled) ([]planned, []Problem) {
	var out []planned
	var problems []Problem
	for i, seg := range s.segs {
		e, indexed := s.index[seg.Name]
		next := uint64(0) // the last seq seg holds, when a later segment says
		if i+1 < len(s.segs) {
			next = s.segs[i+1].First - 1
		}
		d := store.Contradicts(e, seg.First, 0)
		if d == "" && next != 0 && e.LastSeq > next {
			d = fmt.Sprintf("it ends at seq %d, after the next segment begins", e.LastSeq)
		}
		if indexed && d != "" {
			// An edited index could hide matches: read the segment, and say so.
			problems = append(problems, Problem{store.IndexFile, fmt.Errorf("the entry for %s contradicts the segment (%s): not used; run tailseal verify", seg.Name, d)})
			indexed = false
		}
		if !indexed {
			out = append(out, planned{Segment: seg})
			continue
		}
		if next != 0 && e.LastSeq < next {
			problems = append(problems, Problem{seg.Name, fmt.Errorf("records %d to %d are missing after it (segment lost or deleted)", e.LastSeq+1, s.segs[i+1].First-1)})
		}
		may, members, p := s.mayMatch(c, &e)
		if p != nil {
			problems = append(problems, *p)
		}
		if may {
			out = append(out, planned{seg, &e, members})
		}
	}
	return out, problems
}

// Each calls visit for every matching record, from Workers goroutines; the
// worker number lets callers keep per-worker state without locks. h is only
// valid during the call. Records of one segment come in seq order, segments
// in any order. When ctx ends, Each returns soon after with what it saw:
// the caller checks ctx.Err() before it trusts the answer.
func (s *Store) Each(ctx context.Context, f Filter, visit func(worker int, h *record.Head)) []Problem {
	c := compile(f)
	segs, problems := s.plan(&c)
	return append(problems, s.each(ctx, &c, segs, visit)...)
}

// each is Each over the segments planned.
func (s *Store) each(ctx context.Context, c *compiled, segs []planned, visit func(worker int, h *record.Head)) []Problem {
	var problems []Problem
	work := make(chan planned)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range max(s.Workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seg := range work {
				if p := s.scan(ctx, seg, c, func(h *record.Head) bool { visit(w, h); return true }); p != nil {
					mu.Lock()
					problems = append(problems, *p)
					mu.Unlock()
				}
			}
		}()
	}
	for _, seg := range segs {
		if ctx.Err() != nil {
			break
		}
		work <- seg
	}
	close(work)
	wg.Wait()
	return problems
}

// Forward calls fn for every matching record in seq order, one segment at a
// time, so memory stays flat whatever the store's size. fn returning an
// error stops the scan with that error, and so does the end of ctx.
func (s *Store) Forward(ctx context.Context, f Filter, fn func(h *record.Head) error) ([]Problem, error) {
	c := compile(f)
	segs, problems := s.plan(&c)
	var ferr error
	for _, seg := range segs {
		if p := s.scan(ctx, seg, &c, func(h *record.Head) bool { ferr = fn(h); return ferr == nil }); p != nil {
			problems = append(problems, *p)
		}
		if ferr == nil {
			ferr = ctx.Err()
		}
		if ferr != nil {
			return problems, ferr
		}
	}
	return problems, nil
}

// Newest returns up to limit matching records, newest (highest seq) first.
// Segments are read newest first, Workers at a time, and each keeps only
// its last limit matches, so memory is bounded by Workers × limit records.
// When ctx ends it returns soon after (see Each).
func (s *Store) Newest(ctx context.Context, f Filter, limit int) ([]record.Record, []Problem) {
	out, _, problems := s.NewestCounted(ctx, f, limit)
	return out, problems
}

// Matched is how many records matched in the segments a query read: all
// that match in the store when Exact, else a lower bound (the query
// stopped once it had enough).
type Matched struct {
	N     int
	Exact bool
}

// NewestCounted is Newest, and how many records matched in the segments
// it read, at no extra cost: a caller can say that more match than it
// shows.
func (s *Store) NewestCounted(ctx context.Context, f Filter, limit int) ([]record.Record, Matched, []Problem) {
	c := compile(f)
	segs, problems := s.plan(&c)
	var out []record.Record
	var matched Matched
	end := len(segs)
	for end > 0 && len(out) < limit && ctx.Err() == nil {
		start := max(end-max(s.Workers, 1), 0)
		wave := make([][]record.Record, end-start)
		probs := make([]*Problem, end-start)
		counts := make([]int, end-start)
		var wg sync.WaitGroup
		for i := start; i < end; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var last ring
				last.size = limit
				probs[i-start] = s.scan(ctx, segs[i], &c, func(h *record.Head) bool { counts[i-start]++; last.push(h.Record()); return true })
				wave[i-start] = last.newestFirst()
			}()
		}
		wg.Wait()
		for i := len(wave) - 1; i >= 0; i-- {
			if probs[i] != nil {
				problems = append(problems, *probs[i])
			}
			matched.N += counts[i]
			for _, r := range wave[i] {
				if len(out) < limit {
					out = append(out, r)
				}
			}
		}
		end = start
	}
	matched.Exact = end == 0 && ctx.Err() == nil
	return out, matched, problems
}

// ring keeps the last size records pushed.
type ring struct {
	size, next int
	recs       []record.Record
}

func (r *ring) push(rec record.Record) {
	if len(r.recs) < r.size {
		r.recs = append(r.recs, rec)
		return
	}
	r.recs[r.next] = rec
	r.next = (r.next + 1) % r.size
}

func (r *ring) newestFirst() []record.Record {
	out := make([]record.Record, 0, len(r.recs))
	for i := len(r.recs) - 1; i >= 0; i-- {
		out = append(out, r.recs[(r.next+i)%len(r.recs)])
	}
	return out
}

// scan reads one segment, or the members of it that p.members names,
// and calls fn for its matching records until fn returns false or ctx
// ends (checked every few thousand lines). A line that is not a record
// is a problem, reported once per segment with the count; the scan goes
// on. Members that do not match their table are a problem too: the
// segment is then read whole (see store.ScanMembers). So is an indexed
// segment read whole to its end that does not hold the bytes its index
// line says: cut at a member's end, or with members appended, a gzip file
// still reads as a whole, shorter or longer, stream.
func (s *Store) scan(ctx context.Context, p planned, c *compiled, fn func(h *record.Head) bool) *Problem {
	var h record.Head
	bad, firstBad, lines := 0, 0, 0
	read := int64(0)
	stop := errors.New("stop")
	visit := func(_ store.Segment, lineNo int, line []byte) error {
		read += int64(len(line)) + 1
		if lines++; lines%ctxCheckLines == 0 && ctx.Err() != nil {
			return stop
		}
		if !h.Parse(line) {
			if bad++; bad == 1 {
				firstBad = lineNo
			}
			return nil
		}
		if c.match(&h) && !fn(&h) {
			return stop
		}
		return nil
	}
	var err, mismatch error
	if p.members != nil {
		mismatch, err = store.ScanMembers(s.dir, p.Segment, p.entry, p.members.table, p.members.want, visit)
	} else {
		err = store.ScanSegment(s.dir, p.Segment, visit)
	}
	var serr *store.SegmentError
	switch {
	case errors.As(err, &serr): // names the file read: the .gz if compressed since the listing
		return &Problem{serr.Segment, serr.Err}
	case bad > 0:
		return &Problem{p.Name, fmt.Errorf("%d lines are not records (first at line %d)", bad, firstBad)}
	case mismatch != nil:
		return &Problem{p.Name, fmt.Errorf("%v: the segment was read whole; run tailseal verify", mismatch)}
	case p.members == nil && p.entry != nil && err == nil && read != p.entry.Bytes:
		return &Problem{p.Name, fmt.Errorf("it holds %d bytes of records, its index line says %d: cut short or added to since it was indexed; run tailseal verify", read, p.entry.Bytes)}
	}
	return nil
}

// ctxCheckLines is how often a scan looks at its context: a few
// milliseconds of reading.
const ctxCheckLines = 4096

// Empty reports a store without a single stored byte.
func (s *Store) Empty() bool {
	for _, seg := range s.segs {
		if fi, err := os.Stat(filepath.Join(s.dir, seg.Name)); err != nil || fi.Size() > 0 {
			return false
		}
	}
	return true
}

// Bytes estimates the uncompressed bytes a full scan reads: exact for
// indexed segments, the file size for the others. For progress bars.
func (s *Store) Bytes() int64 {
	var n int64
	for _, seg := range s.segs {
		if e, ok := s.index[seg.Name]; ok {
			n += e.Bytes
		} else if fi, err := os.Stat(filepath.Join(s.dir, seg.Name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

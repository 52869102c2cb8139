package query

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/pii"
	"github.com/tailseal/tailseal/signer/record"
)

// Stats summarizes the matching records.
type Stats struct {
	Origin     string         `json:"origin,omitempty"` // of the store; set by the caller
	Events     int            `json:"events"`
	ByType     map[string]int `json:"by_type"`
	ByWorkflow map[string]int `json:"by_workflow"`
	Errors     int            `json:"errors"`
	Malformed  int            `json:"malformed"`
	First      time.Time      `json:"first"` // earliest RFC 3339 timestamp
	Last       time.Time      `json:"last"`
	PerDay     map[string]int `json:"per_day"`    // UTC date → events
	Pseudonyms map[string]int `json:"pseudonyms"` // replaced values by kind, from the stored <kind:…> and <kind>
	Bytes      int64          `json:"bytes"`      // of stored records read
	Unparsable int            `json:"unparsable_timestamps"`
	FirstSeq   uint64         `json:"first_seq"`
	LastSeq    uint64         `json:"last_seq"`
}

// NewStats returns empty Stats for Add.
func NewStats() *Stats {
	return &Stats{ByType: map[string]int{}, ByWorkflow: map[string]int{}, PerDay: map[string]int{}, Pseudonyms: map[string]int{}}
}

// Add counts one record.
func (st *Stats) Add(h *record.Head) {
	st.Events++
	st.Bytes += int64(len(h.Line)) + 1
	count(st.ByType, h.Type)
	count(st.ByWorkflow, h.Workflow)
	switch string(h.Type) {
	case record.TypeError:
		st.Errors++
	case record.TypeMalformed:
		st.Malformed++
	}
	if st.FirstSeq == 0 || h.Seq < st.FirstSeq {
		st.FirstSeq = h.Seq
	}
	st.LastSeq = max(st.LastSeq, h.Seq)
	if t, ok := h.Time(); ok {
		t = t.UTC()
		if st.First.IsZero() || t.Before(st.First) {
			st.First = t
		}
		if t.After(st.Last) {
			st.Last = t
		}
		var day [10]byte
		count(st.PerDay, t.AppendFormat(day[:0], time.DateOnly))
	} else {
		st.Unparsable++
	}
	countPseudonyms(st.Pseudonyms, h.Actor)
	countPseudonyms(st.Pseudonyms, h.Details)
}

// countPseudonyms counts <tag:hex> (hash mode) and <tag> (redact mode,
// for the tags the anonymizer writes, so that "<b>" in a note is not one).
func countPseudonyms(m map[string]int, b []byte) {
	record.Placeholders(b, func(tag []byte, hashed bool) {
		if hashed || redactTags[string(tag)] {
			count(m, tag)
		}
	})
}

// redactTags are what redact mode writes: the detector kinds and the
// default always-anonymized fields.
var redactTags = func() map[string]bool {
	m := map[string]bool{"email": true, "phone": true, "ip": true, "card": true, "iban": true, "ssn": true}
	for _, f := range pii.DefaultAlways {
		m[f] = true
	}
	return m
}()

// Merge adds the counts of o.
func (st *Stats) Merge(o *Stats) {
	st.Events += o.Events
	st.Errors += o.Errors
	st.Malformed += o.Malformed
	st.Bytes += o.Bytes
	st.Unparsable += o.Unparsable
	for _, pair := range [][2]map[string]int{{st.ByType, o.ByType}, {st.ByWorkflow, o.ByWorkflow}, {st.PerDay, o.PerDay}, {st.Pseudonyms, o.Pseudonyms}} {
		for k, v := range pair[1] {
			pair[0][k] += v
		}
	}
	if !o.First.IsZero() && (st.First.IsZero() || o.First.Before(st.First)) {
		st.First = o.First
	}
	if o.Last.After(st.Last) {
		st.Last = o.Last
	}
	if o.FirstSeq != 0 && (st.FirstSeq == 0 || o.FirstSeq < st.FirstSeq) {
		st.FirstSeq = o.FirstSeq
	}
	st.LastSeq = max(st.LastSeq, o.LastSeq)
}

// Stats counts every matching application record (seals and checkpoints
// are left out). Without filters, a compressed segment whose index entry
// has a summary is counted from it; the others are read in parallel.
func (s *Store) Stats(ctx context.Context, f Filter) (*Stats, []Problem) {
	c := compile(f)
	segs, problems := s.plan(&c)
	total := NewStats()
	if f.unfiltered() {
		rest := segs[:0]
		for _, seg := range segs {
			if e := seg.entry; e != nil && e.Summary != nil && seg.Compressed && store.Intact(s.dir, e) {
				total.addSummary(e.Summary)
			} else {
				rest = append(rest, seg)
			}
		}
		segs = rest
	}
	parts := make([]*Stats, max(s.Workers, 1))
	for i := range parts {
		parts[i] = NewStats()
	}
	problems = append(problems, s.each(ctx, &c, segs, func(w int, h *record.Head) {
		if !h.Internal() {
			parts[w].Add(h)
		}
	})...)
	for _, p := range parts {
		total.Merge(p)
	}
	return total, problems
}

// addSummary counts a segment's records from its index entry's summary,
// as Add would have counted them one by one.
func (st *Stats) addSummary(z *store.Summary) {
	st.Events += z.Events
	st.Bytes += z.Bytes
	st.Unparsable += z.Unparsable
	st.Errors += z.Types[record.TypeError]
	st.Malformed += z.Types[record.TypeMalformed]
	for k, n := range z.Types {
		countN(st.ByType, k, n)
	}
	for k, n := range z.Workflows {
		countN(st.ByWorkflow, k, n)
	}
	for k, n := range z.PerDay {
		st.PerDay[k] += n
	}
	for k, n := range z.Pseudonyms {
		countN(st.Pseudonyms, k, n)
	}
	for k, n := range z.Words {
		if redactTags[k] {
			st.Pseudonyms[k] += n
		}
	}
	first, err1 := time.Parse(time.RFC3339Nano, z.First)
	last, err2 := time.Parse(time.RFC3339Nano, z.Last)
	o := &Stats{FirstSeq: z.FirstSeq, LastSeq: z.LastSeq}
	if err1 == nil && err2 == nil {
		o.First, o.Last = first.UTC(), last.UTC()
	}
	st.Merge(o)
}

// countN adds n to m[k] as count does for a stored value: decoded.
func countN(m map[string]int, k string, n int) {
	if strings.IndexByte(k, '\\') >= 0 {
		k = record.Text([]byte(k))
	}
	m[k] += n
}

// count increments m[record.Text(k)], the decoded value, without
// allocating a key that is already there.
func count(m map[string]int, k []byte) {
	if bytes.IndexByte(k, '\\') >= 0 { // canonical, yet escaped (\" \\ \n)
		m[record.Text(k)]++
		return
	}
	if n, ok := m[string(k)]; ok {
		m[string(k)] = n + 1
	} else {
		m[string(k)] = 1
	}
}

// Operation is the timing summary of one operation, in milliseconds.
type Operation struct {
	Name  string  `json:"operation"`
	Count int     `json:"count"`
	Min   float64 `json:"min_ms"`
	Max   float64 `json:"max_ms"`
	Avg   float64 `json:"avg_ms"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
}

// Summarize computes an Operation from its durations, sorting them.
func Summarize(name string, d []float64) Operation {
	slices.Sort(d)
	sum := 0.0
	for _, v := range d {
		sum += v
	}
	op := Operation{Name: name, Count: len(d)}
	if len(d) > 0 {
		op.Min, op.Max, op.Avg = d[0], d[len(d)-1], sum/float64(len(d))
		op.P50, op.P95, op.P99 = record.Percentile(d, 50), record.Percentile(d, 95), record.Percentile(d, 99)
	}
	return op
}

// Performance returns the exact duration percentiles of performance events
// per operation (the workflow when an event names no operation), sorted by
// name. Durations are kept in memory: 8 bytes per performance event.
func (s *Store) Performance(ctx context.Context, f Filter, operation string) ([]Operation, []Problem) {
	all, problems := s.Durations(ctx, f, operation)
	var out []Operation
	for _, name := range slices.Sorted(maps.Keys(all)) {
		out = append(out, Summarize(name, all[name]))
	}
	return out, problems
}

// Durations returns the durations of performance events by operation, in
// no order, for Summarize: Performance's input, which summaries of several
// stores are made from.
func (s *Store) Durations(ctx context.Context, f Filter, operation string) (map[string][]float64, []Problem) {
	f.Type = record.TypePerformance
	parts := make([]map[string][]float64, max(s.Workers, 1))
	for i := range parts {
		parts[i] = map[string][]float64{}
	}
	problems := s.Each(ctx, f, func(w int, h *record.Head) {
		d, ok := record.Duration(h.Details)
		if !ok {
			return
		}
		name := h.Operation()
		if operation != "" && name != operation {
			return
		}
		parts[w][name] = append(parts[w][name], d)
	})
	all := parts[0]
	for _, p := range parts[1:] {
		for k, v := range p {
			all[k] = append(all[k], v...)
		}
	}
	return all, problems
}

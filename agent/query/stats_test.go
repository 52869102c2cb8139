package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// fullScan is Stats the slow way: every record read, no index.
func fullScan(t *testing.T, s *Store) (*Stats, []Problem) {
	t.Helper()
	st := NewStats()
	var mu sync.Mutex
	problems := s.Each(context.Background(), Filter{}, func(_ int, h *record.Head) {
		if !h.Internal() {
			mu.Lock()
			st.Add(h)
			mu.Unlock()
		}
	})
	return st, problems
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// varied writes a store of records that stats counts in every way, in
// segments of 128 KiB: escaped and canonical values, unparsable
// timestamps, the agent's own records, hash and redact placeholders, other
// <words>, days on both sides of midnight, a segment of 600 workflows
// (more than an entry's summary holds) and a line that is not a record.
func varied(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o700)
	st, _, err := store.Open(store.Options{Dir: dir, SegmentMax: 128 << 10, SegmentMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	types := []string{"lead_ingested", "error", "malformed", `caf\u00e9`, `say \"hi\"`, "seal", "checkpoint", "crm_write"}
	times := []string{"2026-02-01T23:59:59.5+01:00", "2026-02-02T00:00:00Z", "yesterday", "2026-02-03T10:00:00.123456789Z", ""}
	details := []string{`{}`, `{"email":"<email:0123456789ab>","who":"<name>","note":"<b>bold</b>"}`,
		`{"ip":"<ip:abcdefabcdef>","x":"<>","y":"<email:0123>"}`, `{"m":"a\nb","p":"<phone>"}`}
	seq := uint64(0)
	bad := ""
	add := func(line string) {
		seq++
		line = bad + strings.Replace(line, "SEQ", fmt.Sprint(seq), 1)
		bad = ""
		if err := st.Append([]byte(line+"\n"), seq, seq); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(i int, wf string) string {
		return fmt.Sprintf(`{"seq":SEQ,"timestamp":%q,"event_type":"%s","actor":"<name:%012x>","lead_id":"L%d","workflow":"%s","details":%s,"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`,
			times[i%len(times)], types[i%len(types)], i%7, i/3, wf, details[i%len(details)])
	}
	for i := range 1200 {
		add(rec(i, []string{"w1", `w\u00e9`, "", `q\"x`}[i%4]))
	}
	for i := range 600 { // 180 KB: one segment at least holds more than 256
		add(rec(i, fmt.Sprint("many", i)))
	}
	for i := range 600 {
		add(rec(i, "w1"))
	}
	bad = "not a record\n" // goes in with the next record
	for i := range 500 {
		add(rec(i, "w2"))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.CompressRotated(store.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Stats without filters from the index gives what a full scan gives, on
// stores with several segments, one of them with more workflows than an
// entry bounds, and it counts most compressed segments from their
// entries: an edited summary shows.
func TestStatsFromIndexMatchesAFullScan(t *testing.T) {
	for name, dir := range map[string]string{"varied": varied(t), "generated": build(t)} {
		t.Run(name, func(t *testing.T) {
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			summarized, without := 0, 0
			for _, seg := range s.segs {
				if e, ok := s.index[seg.Name]; ok && e.Summary != nil {
					summarized++
				} else if seg.Compressed {
					without++
				}
			}
			if summarized < 4 || name == "varied" && without < 2 {
				t.Fatalf("%d segments with a summary, %d compressed without: the test proves little", summarized, without)
			}
			got, gotProblems := s.Stats(context.Background(), Filter{})
			want, wantProblems := fullScan(t, s)
			if asJSON(got) != asJSON(want) {
				t.Errorf("from the index:\n%s\nfull scan:\n%s", asJSON(got), asJSON(want))
			}
			if asJSON(gotProblems) != asJSON(wantProblems) || name == "varied" && len(gotProblems) != 1 {
				t.Errorf("problems %v, full scan %v", gotProblems, wantProblems)
			}
			if want.Events == 0 || name == "varied" && (want.Unparsable == 0 || want.Pseudonyms["name"] == 0 || want.Pseudonyms["phone"] == 0 || len(want.ByWorkflow) < 300) {
				t.Fatalf("the store lacks what the test is about: %s", asJSON(want))
			}

			// The index is what was counted: a summary changed by hand
			// shows (verify is what catches it).
			raw, _ := os.ReadFile(filepath.Join(dir, store.IndexFile))
			edited := bytes.Replace(raw, []byte(`"summary":{"events":`), []byte(`"summary":{"events":1000`), 1)
			os.WriteFile(filepath.Join(dir, store.IndexFile), edited, 0o600)
			s, _ = Open(dir)
			if again, _ := s.Stats(context.Background(), Filter{}); again.Events == want.Events {
				t.Error("stats did not use the entries' summaries")
			}
		})
	}
}

// A segment truncated since it was indexed is read, not counted from its
// entry: the answer is the full scan's, with the problem.
func TestStatsReadsATruncatedSegment(t *testing.T) {
	for _, c := range []store.Compression{store.Gzip, store.Zstd} {
		t.Run(string(c), func(t *testing.T) {
			dir := buildCompressed(t, 0, c)
			segs, _ := store.List(dir)
			if err := os.Truncate(filepath.Join(dir, segs[2].Name), 5000); err != nil {
				t.Fatal(err)
			}
			s, _ := Open(dir)
			got, gotProblems := s.Stats(context.Background(), Filter{})
			want, wantProblems := fullScan(t, s)
			if asJSON(got) != asJSON(want) || len(gotProblems) != 1 || asJSON(gotProblems) != asJSON(wantProblems) {
				t.Errorf("from the index: %d events, problems %v; full scan: %d, %v", got.Events, gotProblems, want.Events, wantProblems)
			}
		})
	}
}

// A store indexed before v3 (filters in the line, no summaries) is
// answered as before: stats reads it, a lead lookup still skips segments.
func TestIndexV2(t *testing.T) {
	dir := build(t)
	want, _ := fullScan(t, mustOpen(t, dir))
	index, _ := store.ReadIndex(dir)
	var lines []byte
	for _, e := range index {
		e.Leads, _ = store.LeadFilter(dir, &e)
		e.Pseudonyms, _ = store.PseudonymFilter(dir, &e)
		e.Filters, e.Summary = nil, nil
		b, _ := json.Marshal(e)
		lines = append(append(lines, b...), '\n')
	}
	os.WriteFile(filepath.Join(dir, store.IndexFile), lines, 0o600)
	os.RemoveAll(filepath.Join(dir, store.FilterDir))
	s := mustOpen(t, dir)
	if got, problems := s.Stats(context.Background(), Filter{}); asJSON(got) != asJSON(want) || len(problems) > 0 {
		t.Errorf("stats on a v2 index: %d events (want %d), problems %v", got.Events, want.Events, problems)
	}
	c := compile(Filter{Lead: "LEAD-0001234"})
	segs, problems := s.plan(&c)
	if len(segs) > 3 || len(problems) > 0 {
		t.Errorf("a lead on a v2 index: %d of %d segments to read, problems %v", len(segs), s.Segments(), problems)
	}
}

// A filter file changed by hand is not used: the segment is read, so the
// records are found, and the answer says the filters were refused.
func TestChangedFilterCostsAScan(t *testing.T) {
	dir := build(t)
	const lead = "LEAD-0001234"
	s := mustOpen(t, dir)
	want, _ := s.Newest(context.Background(), Filter{Lead: lead}, 100)
	if len(want) == 0 {
		t.Fatal("the lead has no records")
	}
	var e store.IndexEntry // of the segment of the newest record
	for _, seg := range s.segs {
		if seg.First <= want[0].Seq {
			e = s.index[seg.Name]
		}
	}
	if e.Filters == nil {
		t.Fatal("the segment has no filter file")
	}
	path := filepath.Join(dir, store.FilterPath(e.Segment))
	b, _ := os.ReadFile(path)
	clear(b[:8*e.Filters.Leads.Words]) // a filter that rules everything out
	os.WriteFile(path, b, 0o600)
	s = mustOpen(t, dir)
	got, problems := s.Newest(context.Background(), Filter{Lead: lead}, 100)
	if len(got) != len(want) || len(problems) != 1 || !strings.Contains(problems[0].Error(), "cannot be used") {
		t.Errorf("%d of %d records, problems %v", len(got), len(want), problems)
	}
}

func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A gzip segment cut at a member's end, or with a member appended, still
// reads as one whole stream, shorter or longer; read whole, it is held to
// its index line, and stats and queries say it differs (exit 1 in the
// CLI) instead of answering from it silently.
func TestWholeReadsHeldToTheIndexLine(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(raw []byte, ms []store.Member) []byte
	}{
		{"cut at a member's end", func(raw []byte, ms []store.Member) []byte { return raw[:ms[len(ms)-1].GZ] }},
		{"a member appended", func(raw []byte, ms []store.Member) []byte {
			return append(raw, raw[ms[1].GZ:ms[2].GZ]...) // member 1 again
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := buildMembers(t, 2<<10)
			s := mustOpen(t, dir)
			seg := s.segs[1]
			e := s.index[seg.Name]
			ms, err := store.Members(dir, &e)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, seg.Name)
			raw, _ := os.ReadFile(path)
			os.WriteFile(path, c.edit(raw, ms), 0o600)
			s = mustOpen(t, dir)
			_, problems := s.Stats(context.Background(), Filter{})
			_, typeProblems := seqsOf(t, s, Filter{Type: "error"})
			for _, ps := range [][]Problem{problems, typeProblems} {
				if !strings.Contains(fmt.Sprint(ps), seg.Name+": it holds ") {
					t.Errorf("problems %v: none says %s differs from its index line", ps, seg.Name)
				}
			}
		})
	}
}

package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// indexed writes n records of leads LEAD-<seq/10> in 8 KiB segments,
// compressed and indexed, and returns the store dir and its index.
func indexed(t *testing.T, n uint64) (string, map[string]IndexEntry) {
	t.Helper()
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 8 << 10})
	for seq := uint64(1); seq <= n; seq++ {
		line := fmt.Sprintf(`{"seq":%d,"timestamp":"2026-01-0%dT00:00:00Z","event_type":"t%d","actor":"<name:0123456789ab>","lead_id":"LEAD-%d","workflow":"w","details":{"email":"<email:%012x>","note":"<b>"},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`,
			seq, 1+seq/200%9, seq%3, seq/10, seq)
		if err := s.Append([]byte(line+"\n"), seq, seq); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := CompressRotated(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	index, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, index
}

// The filters are out of the index line, in a file per segment that the
// line attests: a reader gets them back whole, and a file that was
// changed or lost is refused, not trusted.
func TestFiltersOutOfTheIndexLine(t *testing.T) {
	dir, index := indexed(t, 1000)
	raw, _ := os.ReadFile(filepath.Join(dir, IndexFile))
	if strings.Contains(string(raw), `"bits"`) {
		t.Fatal("the index lines still hold filter bits")
	}
	segs, _ := List(dir)
	if len(index) < 5 || len(index) != len(segs)-1 {
		t.Fatalf("%d entries for %d segments", len(index), len(segs))
	}
	for _, seg := range segs[:len(segs)-1] {
		e := index[seg.Name]
		if e.Filters == nil || e.Leads != nil || e.Summary == nil {
			t.Fatalf("%s: filters %+v, inline %v, summary %v", seg.Name, e.Filters, e.Leads != nil, e.Summary != nil)
		}
		if err := CheckFilters(dir, &e); err != nil {
			t.Fatalf("%s: %v", seg.Name, err)
		}
		leads, err := LeadFilter(dir, &e)
		if err != nil {
			t.Fatal(err)
		}
		tokens, err := PseudonymFilter(dir, &e)
		if err != nil {
			t.Fatal(err)
		}
		for seq := e.FirstSeq; seq <= e.LastSeq; seq++ {
			if !leads.MayContain(fmt.Appendf(nil, "LEAD-%d", seq/10)) || !tokens.MayContain(fmt.Appendf(nil, "<email:%012x>", seq)) {
				t.Fatalf("%s: seq %d is not in its segment's filters", seg.Name, seq)
			}
		}
	}

	e := index[segs[1].Name]
	path := filepath.Join(dir, FilterPath(e.Segment))
	b, _ := os.ReadFile(path)
	b[3] ^= 0x10
	os.WriteFile(path, b, 0o600)
	if _, err := LeadFilter(dir, &e); !errors.Is(err, ErrFilter) {
		t.Errorf("a changed lead filter: %v, want ErrFilter", err)
	}
	if _, err := PseudonymFilter(dir, &e); err != nil {
		t.Errorf("the pseudonym filter after it is intact: %v", err)
	}
	if err := CheckFilters(dir, &e); !errors.Is(err, ErrFilter) {
		t.Errorf("CheckFilters of a changed file: %v", err)
	}
	os.Remove(path)
	if _, err := PseudonymFilter(dir, &e); !errors.Is(err, ErrFilter) {
		t.Errorf("a lost filter file: %v, want ErrFilter", err)
	}
}

// An entry's summary counts its application records; a segment it cannot
// count exactly (a line that is not a record, too many workflows) gets
// none. IndexCheck holds the summary, the filters' digests and an older
// entry's inline filters to the segment.
func TestSummaryAndIndexCheck(t *testing.T) {
	dir, index := indexed(t, 1000)
	segs, _ := List(dir)
	total := 0
	for _, seg := range segs[:len(segs)-1] {
		z := index[seg.Name].Summary
		total += z.Events
		if z.Types == nil || z.Pseudonyms["email"] != z.Events || z.Pseudonyms["name"] != z.Events || z.Words["b"] != z.Events {
			t.Fatalf("%s: summary %+v", seg.Name, z)
		}
	}
	last := segs[len(segs)-1].First - 1
	if total != int(last) {
		t.Errorf("summaries count %d events, the compressed segments hold %d", total, last)
	}

	check := func(e IndexEntry) string {
		c := NewIndexCheck(e)
		seg := segs[1]
		ScanSegment(dir, seg, func(_ Segment, _ int, line []byte) error { c.Add(line); return nil })
		return c.Mismatch()
	}
	e := index[segs[1].Name]
	if d := check(e); d != "" {
		t.Fatalf("untouched entry: %s", d)
	}
	edited := e
	z := *e.Summary
	z.Events++
	edited.Summary = &z
	if check(edited) == "" {
		t.Error("an edited summary passes the check")
	}
	// The entry as v2 wrote it: filters in the line, no summary.
	v2 := e
	v2.Leads, _ = LeadFilter(dir, &e)
	v2.Pseudonyms, _ = PseudonymFilter(dir, &e)
	v2.Filters, v2.Summary = nil, nil
	line, _ := json.Marshal(v2)
	var back IndexEntry
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatal(err)
	}
	if d := check(back); d != "" {
		t.Errorf("a v2 entry: %s", d)
	}
	back.Leads.bits[0] ^= 1
	if check(back) == "" {
		t.Error("a v2 entry with an edited filter passes the check")
	}
}

func TestSummaryOnlyWhenExact(t *testing.T) {
	line := func(seq int, wf string) []byte {
		return fmt.Appendf(nil, `{"seq":%d,"timestamp":"2026-01-01T00:00:00Z","event_type":"t","actor":"","lead_id":"","workflow":%q,"details":{},"epoch":0,"prev":"","signature":"00"}`, seq, wf)
	}
	ix := newIndexer("s", 1<<20, 0)
	for i := range maxSummaryKeys {
		ix.add(line(i+1, fmt.Sprint("w", i)))
	}
	ix.finish()
	if ix.entry.Summary == nil || len(ix.entry.Summary.Workflows) != maxSummaryKeys {
		t.Fatalf("%d workflows: summary %v", maxSummaryKeys, ix.entry.Summary)
	}
	ix = newIndexer("s", 1<<20, 0)
	for i := range maxSummaryKeys + 1 {
		ix.add(line(i+1, fmt.Sprint("w", i)))
	}
	ix.finish()
	if ix.entry.Summary != nil {
		t.Errorf("%d workflows: a summary", maxSummaryKeys+1)
	}
	ix = newIndexer("s", 1<<20, 0)
	ix.add(line(1, "w"))
	ix.add([]byte("not a record"))
	ix.finish()
	if ix.entry.Summary != nil {
		t.Error("a segment with a line that is not a record: a summary")
	}
}

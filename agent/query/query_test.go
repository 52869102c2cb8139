package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/pii"
	"github.com/tailseal/tailseal/signer/record"
)

var (
	start  = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	piiKey = bytes.Repeat([]byte{2}, 32)
)

const events = 20_000

// build writes a store of events operator events in 64 KiB segments.
func build(t testing.TB) string { return buildMembers(t, 0) }

// buildMembers is build with compression cutting members at memberBytes
// (store.Options.MemberBytes).
func buildMembers(t testing.TB, memberBytes int) string {
	return buildCompressed(t, memberBytes, store.Gzip)
}

// buildCompressed is buildMembers with compression c.
func buildCompressed(t testing.TB, memberBytes int, c store.Compression) string {
	t.Helper()
	data := t.TempDir()
	err := benchdata.BuildStore(benchdata.StoreOptions{DataDir: data, Events: events, Start: start, Step: time.Minute,
		SegmentMax: 64 << 10, HMACKey: bytes.Repeat([]byte{1}, 32), PIIKey: piiKey, MemberBytes: memberBytes, Compression: c})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(data, "store")
}

// ref is a record decoded the slow, obvious way.
type ref struct {
	Seq       uint64         `json:"seq"`
	Timestamp string         `json:"timestamp"`
	Type      string         `json:"event_type"`
	Lead      string         `json:"lead_id"`
	Workflow  string         `json:"workflow"`
	Details   map[string]any `json:"details"`
	line      string
}

func readAll(t *testing.T, dir string) []ref {
	var out []ref
	err := store.Scan(dir, func(_ store.Segment, _ int, line []byte) error {
		var r ref
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		r.line = string(line)
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The fast path (index skipping, member reads, parallel reads, field
// slicing) gives the same answers as decoding every record with
// encoding/json: on segments of one member as the index before v4 wrote
// them, of one member with a table, and of about 30 members.
func TestFiltersMatchAFullDecode(t *testing.T) {
	for _, c := range []struct {
		name        string
		memberBytes int
	}{{"v3", -1}, {"one member", 0}, {"members", 2 << 10}} {
		t.Run(c.name, func(t *testing.T) { filtersMatchAFullDecode(t, buildMembers(t, c.memberBytes)) })
	}
}

func filtersMatchAFullDecode(t *testing.T, dir string) {
	all := readAll(t, dir)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	subject := pii.New(pii.Options{Mode: pii.Hash, Key: piiKey}).Pseudonym("email", "lead7@example.com")
	mid := start.Add(5 * 24 * time.Hour)
	cases := []struct {
		name string
		f    Filter
		want func(r ref) bool
	}{
		{"all", Filter{}, func(r ref) bool { return true }},
		{"lead", Filter{Lead: "LEAD-0001234"}, func(r ref) bool { return r.Lead == "LEAD-0001234" }},
		{"absent lead", Filter{Lead: "LEAD-9999999"}, func(r ref) bool { return false }},
		{"type", Filter{Type: "error"}, func(r ref) bool { return r.Type == "error" }},
		{"workflow and type", Filter{Workflow: "crm_sync", Type: "performance"}, func(r ref) bool { return r.Workflow == "crm_sync" && r.Type == "performance" }},
		{"time range", Filter{Since: mid, Until: mid.Add(6 * time.Hour)}, func(r ref) bool {
			ts, _ := time.Parse(time.RFC3339Nano, r.Timestamp)
			return !ts.Before(mid) && ts.Before(mid.Add(6*time.Hour))
		}},
		{"subject", Filter{Subjects: []string{subject}}, func(r ref) bool { return strings.Contains(r.line, subject) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want []uint64
			for _, r := range all {
				if c.want(r) {
					want = append(want, r.Seq)
				}
			}
			var got []uint64
			var mu = make(chan struct{}, 1)
			problems := s.Each(context.Background(), c.f, func(_ int, h *record.Head) {
				mu <- struct{}{}
				got = append(got, h.Seq)
				<-mu
			})
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("Each: %d records, want %d", len(got), len(want))
			}
			newest, matched, _ := s.NewestCounted(context.Background(), c.f, 25)
			var seqs []uint64
			for _, r := range newest {
				seqs = append(seqs, r.Seq)
			}
			slices.Reverse(want)
			if wantNewest := want[:min(25, len(want))]; !slices.Equal(seqs, wantNewest) {
				t.Fatalf("Newest: %v, want %v", seqs, wantNewest)
			}
			// What matched in the segments read: at least what is shown,
			// at most what the store holds, and that exactly when Exact.
			if matched.N < len(seqs) || matched.N > len(want) || matched.Exact && matched.N != len(want) {
				t.Errorf("matched %+v; shown %d, in the store %d", matched, len(seqs), len(want))
			}
			if _, all, _ := s.NewestCounted(context.Background(), c.f, len(want)+1); !all.Exact || all.N != len(want) {
				t.Errorf("with a limit above the %d matches: matched %+v", len(want), all)
			}
			if c.name == "subject" && len(want) == 0 {
				t.Fatal("the subject's pseudonym is in no record: the test proves nothing")
			}
		})
	}
}

// The index rules out segments: a lead lives in one or two segments, so a
// lookup or a one-hour window reads a few of the twenty, not all of them.
func TestIndexSkipsSegments(t *testing.T) {
	dir := build(t)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Filter{{Lead: "LEAD-0001234"}, {Since: start.Add(24 * time.Hour), Until: start.Add(25 * time.Hour)}} {
		c := compile(f)
		segs, problems := s.plan(&c)
		t.Logf("%+v: %d of %d segments to read", f, len(segs), s.Segments())
		if len(problems) > 0 || s.Segments() < 15 || len(segs) > 3 {
			t.Errorf("%+v: %d of %d segments to read (problems %v)", f, len(segs), s.Segments(), problems)
		}
	}
}

// Percentiles are checked against a plain sort of the same durations.
func TestPerformanceMatchesASort(t *testing.T) {
	dir := build(t)
	byOp := map[string][]float64{}
	for _, r := range readAll(t, dir) {
		if r.Type == "performance" {
			op := r.Details["operation"].(string)
			byOp[op] = append(byOp[op], r.Details["duration_ms"].(float64))
		}
	}
	s, _ := Open(dir)
	ops, problems := s.Performance(context.Background(), Filter{}, "")
	if len(problems) > 0 || len(ops) != len(byOp) {
		t.Fatalf("%d operations, want %d (problems %v)", len(ops), len(byOp), problems)
	}
	for _, op := range ops {
		d := byOp[op.Name]
		sort.Float64s(d)
		rank := func(p float64) float64 { return d[int(math.Ceil(p*float64(len(d))))-1] }
		sum := 0.0
		for _, v := range d {
			sum += v
		}
		want := Operation{Name: op.Name, Count: len(d), Min: d[0], Max: d[len(d)-1], Avg: sum / float64(len(d)), P50: rank(0.5), P95: rank(0.95), P99: rank(0.99)}
		if math.Abs(op.Avg-want.Avg) > 1e-9 {
			t.Errorf("%s: avg %v, want %v", op.Name, op.Avg, want.Avg)
		}
		op.Avg = want.Avg
		if op != want {
			t.Errorf("got  %+v\nwant %+v", op, want)
		}
	}
}

// A corrupt segment and a lost one are reported; the rest is answered.
func TestDamagedSegmentsAreReported(t *testing.T) {
	dir := build(t)
	segs, _ := store.List(dir)
	corrupt, lost := segs[3], segs[10]
	if err := os.Truncate(filepath.Join(dir, corrupt.Name), 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, lost.Name)); err != nil {
		t.Fatal(err)
	}
	s, _ := Open(dir)
	st, problems := s.Stats(context.Background(), Filter{})
	if len(problems) != 2 {
		t.Fatalf("problems %v, want one for %s and one for the gap before %s", problems, corrupt.Name, segs[11].Name)
	}
	for _, p := range problems {
		t.Log(p)
	}
	if st.Events < events*8/10 || st.Events >= events {
		t.Errorf("%d events counted from the remaining segments", st.Events)
	}
}

// A segment the agent compresses between the listing and the read is read
// from its .gz, not reported as missing.
func TestSegmentCompressedWhileQuerying(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o700)
	st, _, err := store.Open(store.Options{Dir: dir, SegmentMax: 8 << 10, SegmentMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 200; i++ {
		line := fmt.Sprintf(`{"seq":%d,"timestamp":"2026-02-04T20:30:45Z","event_type":"x","actor":"","lead_id":"","workflow":"","details":{},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`+"\n", i)
		if err := st.Append([]byte(line), uint64(i), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close() // stops before compressing: rotated segments stay .jsonl
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CompressRotated(store.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	stats, problems := s.Stats(context.Background(), Filter{})
	if len(problems) > 0 || stats.Events != 200 {
		t.Fatalf("%d events, problems %v", stats.Events, problems)
	}
}

// Seals after the last event (an idle day writes 96) do not crowd the
// events out of a "newest first" answer.
func TestNewestSkipsInternalRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o700)
	st, _, err := store.Open(store.Options{Dir: dir, SegmentMax: 1 << 20, SegmentMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 300; i++ {
		typ := "lead_ingested"
		if i > 100 {
			typ = "seal"
		}
		line := fmt.Sprintf(`{"seq":%d,"timestamp":"2026-02-04T20:30:45Z","event_type":%q,"actor":"","lead_id":"","workflow":"","details":{},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`+"\n", i, typ)
		if err := st.Append([]byte(line), uint64(i), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	s, _ := Open(dir)
	recs, _ := s.Newest(context.Background(), Filter{AppOnly: true}, 5)
	if len(recs) != 5 || recs[0].Seq != 100 || recs[4].Seq != 96 {
		t.Fatalf("got %d records, first %+v", len(recs), recs)
	}
}

package query

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/pii"
	"github.com/tailseal/tailseal/signer/record"
)

// seqsOf returns the seqs Each finds for f, sorted, and its problems.
func seqsOf(t *testing.T, s *Store, f Filter) ([]uint64, []Problem) {
	t.Helper()
	var got []uint64
	mu := make(chan struct{}, 1)
	problems := s.Each(context.Background(), f, func(_ int, h *record.Head) {
		mu <- struct{}{}
		got = append(got, h.Seq)
		<-mu
	})
	slices.Sort(got)
	return got, problems
}

// scanned is what a full scan of every line finds for a lead or a
// pseudonym.
func scanned(t *testing.T, dir string, match func(line string) bool) []uint64 {
	var out []uint64
	for _, r := range readAll(t, dir) {
		if match(r.line) {
			out = append(out, r.Seq)
		}
	}
	return out
}

// falsePositive finds a value the filters of some member of some
// segment let through although no record holds it: the case where a
// member is read for nothing and must yield nothing.
func falsePositive(t *testing.T, s *Store, format string, lead bool) string {
	t.Helper()
	for i := range 1_000_000 {
		v := fmt.Sprintf(format, i)
		for _, seg := range s.segs {
			e, ok := s.index[seg.Name]
			if !ok {
				continue
			}
			var seg1 *store.Bloom
			if lead {
				seg1, _ = store.LeadFilter(s.dir, &e)
			} else {
				seg1, _ = store.PseudonymFilter(s.dir, &e)
			}
			if !seg1.MayContain([]byte(v)) {
				continue
			}
			ms, err := store.Members(s.dir, &e)
			if err != nil {
				t.Fatal(err)
			}
			var want []int
			if lead {
				want = store.MemberCandidates(ms, []byte(v), nil)
			} else {
				want = store.MemberCandidates(ms, nil, [][]byte{[]byte(v)})
			}
			if len(want) > 0 {
				return v
			}
		}
	}
	t.Fatalf("no false positive for %s", format)
	return ""
}

// A lead or subject query on a store of many members reads a few members
// of the segments its filters point to, and finds exactly what a full
// scan finds: for present values, absent ones and values the filters
// wrongly let through.
func TestMembersMatchAFullScan(t *testing.T) {
	dir := buildMembers(t, 2<<10)
	s := mustOpen(t, dir)
	subject := pii.New(pii.Options{Mode: pii.Hash, Key: piiKey}).Pseudonym("email", "lead7@example.com")
	fpLead := falsePositive(t, s, "LEAD-9%06d", true)
	fpSubject := falsePositive(t, s, "<email:%012x>", false)
	t.Logf("false positives: %s, %s", fpLead, fpSubject)
	cases := []struct {
		name  string
		f     Filter
		match func(line string) bool
	}{
		{"lead", Filter{Lead: "LEAD-0001234"}, func(l string) bool { return strings.Contains(l, `"lead_id":"LEAD-0001234"`) }},
		{"absent lead", Filter{Lead: "LEAD-9999999"}, func(string) bool { return false }},
		{"false-positive lead", Filter{Lead: fpLead}, func(string) bool { return false }},
		{"subject", Filter{Subjects: []string{subject}}, func(l string) bool { return strings.Contains(l, subject) }},
		{"absent subject", Filter{Subjects: []string{"<email:000000000000>"}}, func(string) bool { return false }},
		{"false-positive subject", Filter{Subjects: []string{fpSubject}}, func(string) bool { return false }},
		{"lead and subject", Filter{Lead: "LEAD-0000007", Subjects: []string{subject}}, func(l string) bool {
			return strings.Contains(l, `"lead_id":"LEAD-0000007"`) && strings.Contains(l, subject)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := scanned(t, dir, c.match)
			got, problems := seqsOf(t, s, c.f)
			if len(problems) > 0 || !slices.Equal(got, want) {
				t.Fatalf("%d records (problems %v), a full scan finds %d", len(got), problems, len(want))
			}
			cf := compile(c.f)
			plan, _ := s.plan(&cf)
			read, of := 0, 0
			for _, p := range plan {
				if p.members != nil {
					read, of = read+len(p.members.want), of+len(p.members.table)
				}
			}
			t.Logf("%d records; %d segments to read, %d of their %d members", len(got), len(plan), read, of)
			found := slices.Contains([]string{"lead", "subject", "false-positive lead", "false-positive subject"}, c.name)
			if read*8 > of || found && read == 0 {
				t.Errorf("%d of %d members read", read, of)
			}
		})
	}
}

// A member table or member filter changed by hand costs a read of the
// segment, never a record: an attested part that does not match its
// entry is not used, and compressed offsets that point elsewhere are
// found out as the member is read.
func TestTamperedMembersCostAScan(t *testing.T) {
	const lead = "LEAD-0001234"
	match := func(l string) bool { return strings.Contains(l, `"lead_id":"`+lead+`"`) }
	tamper := []struct {
		name    string
		edit    func(b []byte, e store.IndexEntry)
		problem string
	}{
		{"member filters cleared", func(b []byte, e store.IndexEntry) {
			clear(b[8*(e.Filters.Leads.Words+e.Filters.Pseudonyms.Words)+32*e.Filters.Members.Count:][:e.Filters.Members.Bytes-32*e.Filters.Members.Count])
		}, "cannot be used"},
		{"member rows changed", func(b []byte, e store.IndexEntry) {
			b[8*(e.Filters.Leads.Words+e.Filters.Pseudonyms.Words)+32+8] ^= 1 // member 1's first seq
		}, "cannot be used"},
		{"compressed offsets shifted", func(b []byte, e store.IndexEntry) {
			off := b[8*(e.Filters.Leads.Words+e.Filters.Pseudonyms.Words)+e.Filters.Members.Bytes:]
			for i := 1; i < e.Filters.Members.Count; i++ {
				binary.LittleEndian.PutUint64(off[8*i:], binary.LittleEndian.Uint64(off[8*i:])+1)
			}
		}, "member"},
		{"offsets past the end", func(b []byte, e store.IndexEntry) {
			off := b[8*(e.Filters.Leads.Words+e.Filters.Pseudonyms.Words)+e.Filters.Members.Bytes:]
			for i := 1; i < e.Filters.Members.Count; i++ {
				binary.LittleEndian.PutUint64(off[8*i:], uint64(1<<40+i))
			}
		}, "member"},
		// zstd: the recompressed file has no trailer, which the read of
		// the whole segment finds at its end
		{"segment recompressed", func(b []byte, e store.IndexEntry) {}, "member|trailer"},
		{"filter file lost", nil, "cannot be used"},
	}
	for _, comp := range []store.Compression{store.Gzip, store.Zstd} {
		for _, c := range tamper {
			t.Run(string(comp)+"/"+c.name, func(t *testing.T) {
				dir := buildCompressed(t, 2<<10, comp)
				want := scanned(t, dir, match)
				s := mustOpen(t, dir)
				for _, seg := range s.segs {
					e, ok := s.index[seg.Name]
					if !ok {
						continue
					}
					path := filepath.Join(dir, store.FilterPath(e.Segment))
					if c.edit == nil {
						os.Remove(path)
						continue
					}
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					c.edit(b, e)
					os.WriteFile(path, b, 0o600)
					if c.name == "segment recompressed" {
						recompress(t, comp, filepath.Join(dir, seg.Name))
					}
					if err := store.CheckFilters(dir, &e); err == nil {
						t.Fatalf("%s: CheckFilters finds nothing wrong", seg.Name)
					}
				}
				s = mustOpen(t, dir)
				got, problems := seqsOf(t, s, Filter{Lead: lead})
				if !slices.Equal(got, want) {
					t.Fatalf("%d records, a full scan finds %d", len(got), len(want))
				}
				if len(problems) == 0 || !regexp.MustCompile(c.problem).MatchString(fmt.Sprint(problems)) {
					t.Errorf("problems %v, want one saying %q", problems, c.problem)
				}
				t.Log(problems[0])
				newest, _ := s.Newest(context.Background(), Filter{Lead: lead}, 100)
				if len(newest) != len(want) {
					t.Errorf("Newest: %d records, want %d", len(newest), len(want))
				}
			})
		}
	}
}

// recompress writes the gzip file at path again as one member.
func recompress(t *testing.T, c store.Compression, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if c == store.Zstd {
		d, _ := zstd.NewReader(nil)
		data, err := d.DecodeAll(raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
		e.Write(data)
		e.Close()
	} else {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
		zw.Write(data)
		zw.Close()
	}
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

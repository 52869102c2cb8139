package store

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/tailseal/tailseal/signer/record"
)

const testMemberBytes = 4 << 10

// bothCompressions runs test for gzip and zstd segments.
func bothCompressions(t *testing.T, test func(t *testing.T, c Compression)) {
	for _, c := range []Compression{Gzip, Zstd} {
		t.Run(string(c), func(t *testing.T) { test(t, c) })
	}
}

// membered writes 600 records, some longer than a member, into 64 KiB
// segments cut into members of testMemberBytes, compressed (with c)
// through the store's rotation, and returns the store dir, its index and
// each compressed segment's bytes as they were written.
func membered(t *testing.T, c Compression) (string, map[string]IndexEntry, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 64 << 10, MemberBytes: testMemberBytes, Compression: c})
	var all []byte
	starts := map[uint64]int{}
	for seq := uint64(1); seq <= 600; seq++ {
		pad := strings.Repeat("x", int(seq*37%300))
		if seq%97 == 0 {
			pad = strings.Repeat("y", 2*testMemberBytes) // a line longer than a member
		}
		line := fmt.Sprintf(`{"seq":%d,"timestamp":"2026-01-01T00:00:00Z","event_type":"t","actor":"","lead_id":"LEAD-%d","workflow":"w","details":{"email":"<email:%012x>","pad":"%s"},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`,
			seq, seq/10, seq, pad)
		starts[seq] = len(all)
		all = append(append(all, line...), '\n')
		if err := s.Append([]byte(line+"\n"), seq, seq); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := CompressRotated(Options{Dir: dir, MemberBytes: testMemberBytes, Compression: c}); err != nil {
		t.Fatal(err)
	}
	index, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	content := map[string][]byte{}
	for name, e := range index {
		end := len(all)
		if s, ok := starts[e.LastSeq+1]; ok {
			end = s
		}
		content[name] = all[starts[e.FirstSeq]:end]
	}
	if len(index) < 3 {
		t.Fatalf("%d compressed segments", len(index))
	}
	for name := range index {
		if got, _ := CompressionOf(name); got != c {
			t.Fatalf("%s: not %s", name, c)
		}
	}
	return dir, index, content
}

// editOffsets lets edit change the unattested compressed offsets of e's
// members (8 bytes each) in its filter file.
func editOffsets(t *testing.T, dir string, e IndexEntry, edit func(off []byte)) {
	t.Helper()
	path := filepath.Join(dir, FilterPath(e.Segment))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(raw[8*(e.Filters.Leads.Words+e.Filters.Pseudonyms.Words)+e.Filters.Members.Bytes:])
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readWhole reads a compressed segment file as a reader of its format
// does: Go's standard gzip reader, or klauspost's zstd one.
func readWhole(t *testing.T, c Compression, raw []byte) ([]byte, error) {
	if c == Zstd {
		d, err := zstd.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return io.ReadAll(d)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// readAlone reads one member, and only one, from its bytes.
func readAlone(c Compression, raw []byte) ([]byte, error) {
	if c == Zstd {
		var h zstd.Header
		if err := h.Decode(raw); err != nil || !h.HasFCS {
			return nil, fmt.Errorf("frame header: %v, size given %v", err, h.HasFCS)
		}
		d, _ := zstd.NewReader(nil)
		defer d.Close()
		out, err := d.DecodeAll(raw, nil)
		if err == nil && uint64(len(out)) != h.FrameContentSize {
			err = fmt.Errorf("%d bytes, the frame header says %d: more than one frame", len(out), h.FrameContentSize)
		}
		return out, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	return io.ReadAll(zr)
}

// A compressed segment is gzip members (or zstd frames) cut at the first
// line boundary after testMemberBytes, and still one gzip (zstd) file:
// Go's reader and zcat (zstdcat) read it whole, byte for byte what was
// written, and each member read alone from its compressed offset is the
// table's slice of it.
func TestMembersCutAtLineBoundaries(t *testing.T) { bothCompressions(t, testMembersCut) }

func testMembersCut(t *testing.T, c Compression) {
	dir, index, content := membered(t, c)
	cat := map[Compression]string{Gzip: "zcat", Zstd: "zstdcat"}[c]
	if _, err := exec.LookPath(cat); err != nil {
		if os.Getenv("TAILSEAL_REQUIRE_ZSTD") != "" { // .ci/run installs both
			t.Fatalf("%s: %v, and TAILSEAL_REQUIRE_ZSTD is set", cat, err)
		}
		t.Logf("%s: %v: segments not read by the standard tool", cat, err)
		cat = ""
	}
	for name, e := range index {
		want := content[name]
		raw, _ := os.ReadFile(filepath.Join(dir, name))
		got, err := readWhole(t, c, raw)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: the reader reads %d bytes (%v), %d were written", name, len(got), err, len(want))
		}
		if cat != "" {
			if got, err := exec.Command(cat, filepath.Join(dir, name)).Output(); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: %s reads %d bytes (%v), %d were written", name, cat, len(got), err, len(want))
			}
		}
		ms, err := Members(dir, &e)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) < 5 || e.Filters.Members.Size != testMemberBytes || !Intact(dir, &e) {
			t.Fatalf("%s: %d members, size %d, intact %v", name, len(ms), e.Filters.Members.Size, Intact(dir, &e))
		}
		for i, m := range ms {
			end, gzEnd := int64(len(want)), membersEnd(c, int64(len(raw)))
			if i+1 < len(ms) {
				end, gzEnd = ms[i+1].Offset, ms[i+1].GZ
			}
			part := want[m.Offset:end]
			lastLine := part[bytes.LastIndexByte(part[:len(part)-1], '\n')+1:]
			if part[len(part)-1] != '\n' || m.Offset > 0 && want[m.Offset-1] != '\n' ||
				i+1 < len(ms) && (len(part) < testMemberBytes || len(part)-len(lastLine) >= testMemberBytes) {
				t.Fatalf("%s member %d: %d bytes, its last line %d: not cut at the first line end after %d", name, i, len(part), len(lastLine), testMemberBytes)
			}
			if line := bytes.Count(want[:m.Offset], []byte{'\n'}) + 1; m.Line != line || m.Seq != e.FirstSeq+uint64(line-1) {
				t.Fatalf("%s member %d: line %d seq %d, want line %d", name, i, m.Line, m.Seq, line)
			}
			alone, err := readAlone(c, raw[m.GZ:gzEnd])
			if err != nil || !bytes.Equal(alone, part) {
				t.Fatalf("%s member %d read alone: %d bytes (%v), want %d", name, i, len(alone), err, len(part))
			}
			if !m.Leads.MayContain(fmt.Appendf(nil, "LEAD-%d", m.Seq/10)) || !m.Pseudonyms.MayContain(fmt.Appendf(nil, "<email:%012x>", m.Seq)) {
				t.Fatalf("%s member %d: its first record is not in its filters", name, i)
			}
		}
		if err := CheckFilters(dir, &e); err != nil {
			t.Fatal(err)
		}
	}
}

// IndexCheck cuts members as the compressor does, so it holds an entry's
// member table (and its size) to the segment's lines.
func TestIndexCheckOfMembers(t *testing.T) {
	dir, index, _ := membered(t, Gzip)
	segs, _ := List(dir)
	check := func(e IndexEntry) string {
		c := NewIndexCheck(e)
		ScanSegment(dir, segs[1], func(_ Segment, _ int, line []byte) error { c.Add(line); return nil })
		return c.Mismatch()
	}
	e := index[segs[1].Name]
	if d := check(e); d != "" {
		t.Fatalf("untouched entry: %s", d)
	}
	for _, edit := range []func(r *MemberRef){
		func(r *MemberRef) { r.Size *= 2 },
		func(r *MemberRef) { r.SHA256 = IndexDigest(nil) },
		func(r *MemberRef) { r.Last-- },
	} {
		edited := e
		f, ref := *e.Filters, *e.Filters.Members
		edit(&ref)
		f.Members, edited.Filters = &ref, &f
		if check(edited) == "" {
			t.Errorf("an edited member reference %+v passes the check", ref)
		}
	}
}

// Members whose compressed offsets point elsewhere are found out as they
// are read; the segment is then read whole, and every line goes to fn
// once.
func TestScanMembersFallsBack(t *testing.T) { bothCompressions(t, testScanMembersFallsBack) }

func testScanMembersFallsBack(t *testing.T, c Compression) {
	dir, index, content := membered(t, c)
	segs, _ := List(dir)
	seg := segs[1]
	e := index[seg.Name]
	editOffsets(t, dir, e, func(off []byte) {
		for i := 3; i < e.Filters.Members.Count; i++ { // from member 3 on
			binary.LittleEndian.PutUint64(off[8*i:], binary.LittleEndian.Uint64(off[8*i:])+1)
		}
	})
	if err := CheckFilters(dir, &e); err == nil {
		t.Error("CheckFilters: shifted offsets are fine")
	}
	ms, err := Members(dir, &e) // the attested part is intact
	if err != nil {
		t.Fatal(err)
	}
	whole := content[seg.Name]
	member := func(i int) []byte {
		if i+1 < len(ms) {
			return whole[ms[i].Offset:ms[i+1].Offset]
		}
		return whole[ms[i].Offset:]
	}
	const bad = 2 // its end, member 3's offset, is off by one
	for _, want := range [][]int{{0, 1}, {0, 1, 2, 3, 4}, {1, 4}, {3}} {
		var got []byte
		mismatch, err := ScanMembers(dir, seg, &e, ms, want, func(_ Segment, _ int, line []byte) error {
			got = append(append(got, line...), '\n')
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The members read before the first mismatch, then the rest of
		// the segment without them.
		var expect []byte
		read := map[int]bool{}
		for _, i := range want {
			if i >= bad {
				break
			}
			read[i] = true
			expect = append(expect, member(i)...)
		}
		if len(read) < len(want) {
			for i := range ms {
				if !read[i] {
					expect = append(expect, member(i)...)
				}
			}
		}
		if (mismatch != nil) != (len(read) < len(want)) || !bytes.Equal(got, expect) {
			t.Errorf("members %v: mismatch %v, %d bytes, want %d: every line once", want, mismatch, len(got), len(expect))
		}
	}
}

// A member whose end the next member's offset puts inside its trailer
// (offsets are not attested) does not read: without its whole trailer
// its CRC is not checked. Member 2 alone is asked for.
func TestScanMembersTrailerCut(t *testing.T) {
	bothCompressions(t, func(t *testing.T, c Compression) {
		dir, index, content := membered(t, c)
		segs, _ := List(dir)
		seg := segs[1]
		e := index[seg.Name]
		editOffsets(t, dir, e, func(off []byte) {
			binary.LittleEndian.PutUint64(off[8*3:], binary.LittleEndian.Uint64(off[8*3:])-3)
		})
		ms, err := Members(dir, &e)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		mismatch, err := ScanMembers(dir, seg, &e, ms, []int{2}, func(_ Segment, _ int, line []byte) error {
			got = append(append(got, line...), '\n')
			return nil
		})
		if err != nil || mismatch == nil || !bytes.Equal(got, content[seg.Name]) {
			t.Errorf("mismatch %v, err %v, %d bytes of %d: member 2's trailer is cut, the segment is read whole", mismatch, err, len(got), len(content[seg.Name]))
		}
		t.Log(mismatch)
	})
}

// Members cut out of a segment before the ones a query reads, their
// compressed offsets moved to match (they are not attested), and a later
// member broken: the members read still match their rows, but in the
// whole segment the line numbers of the table no longer point at their
// lines. The fallback leaves out the records given already by their
// seqs: every record left in the file goes to fn once.
func TestScanMembersFallsBackAfterMembersCut(t *testing.T) {
	bothCompressions(t, testScanMembersFallsBackAfterMembersCut)
}

func testScanMembersFallsBackAfterMembersCut(t *testing.T, c Compression) {
	dir, index, _ := membered(t, c)
	segs, _ := List(dir)
	seg := segs[1]
	e := index[seg.Name]
	ms, err := Members(dir, &e)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 8 {
		t.Fatalf("%d members", len(ms))
	}
	gzPath := filepath.Join(dir, seg.Name)
	gz, _ := os.ReadFile(gzPath)
	const from, to, read, broken = 1, 4, 4, 6 // cut members 1 to 3, read 4, then 6, whose end is off
	cut := ms[to].GZ - ms[from].GZ
	gz = append(gz[:ms[from].GZ:ms[from].GZ], gz[ms[to].GZ:]...)
	os.WriteFile(gzPath, gz, 0o600)
	editOffsets(t, dir, e, func(off []byte) {
		for i := from; i < len(ms); i++ {
			o := ms[i].GZ - cut
			if i < to {
				o = ms[from].GZ - int64(to-i) // the cut ones: before the next, in order
			}
			if i == broken+1 {
				o++
			}
			binary.LittleEndian.PutUint64(off[8*i:], uint64(o))
		}
	})
	ms, err = Members(dir, &e)
	if err != nil {
		t.Fatal(err)
	}
	// A zstd segment's trailer still gives the size before the cut: a
	// read of it whole says so at its end, after every line.
	cutEnd := func(err error) bool {
		return err == nil || c == Zstd && err != nil && strings.Contains(err.Error(), "its trailer says")
	}
	var inFile []uint64 // what the segment holds now
	if err := ScanSegment(dir, seg, func(_ Segment, _ int, line []byte) error {
		seq, _ := record.Seq(line)
		inFile = append(inFile, seq)
		return nil
	}); !cutEnd(err) {
		t.Fatal(err)
	}
	var got []uint64
	mismatch, err := ScanMembers(dir, seg, &e, ms, []int{read, broken}, func(_ Segment, _ int, line []byte) error {
		seq, _ := record.Seq(line)
		got = append(got, seq)
		return nil
	})
	if !cutEnd(err) || mismatch == nil {
		t.Fatalf("mismatch %v, err %v: member %d's end is off", mismatch, err, broken)
	}
	slices.Sort(got)
	if !slices.Equal(got, inFile) {
		t.Errorf("fn saw %d records (%v…), the segment holds %d (%v…): every one once", len(got), got[:min(8, len(got))], len(inFile), inFile[:min(8, len(inFile))])
	}
}

// zstd readers take an empty file, or one cut at a frame's end, for a
// whole stream; a zstd segment's trailer frame says how much it holds, so
// a read of the whole segment that does not end on it is an error at its
// end, after the lines it did read: the emptied, cut or appended segment
// is not answered from silently.
func TestZstdSegmentEndsWithItsTrailer(t *testing.T) {
	dir, index, content := membered(t, Zstd)
	segs, _ := List(dir)
	seg := segs[1]
	e := index[seg.Name]
	ms, _ := Members(dir, &e)
	path := filepath.Join(dir, seg.Name)
	raw, _ := os.ReadFile(path)
	frame, _ := zstd.NewWriter(nil)
	extra := frame.EncodeAll([]byte(`{"seq":1}`+"\n"), nil)
	for _, c := range []struct {
		name  string
		file  []byte
		lines int // read before the error
		fail  string
	}{
		{"untouched", raw, bytes.Count(content[seg.Name], []byte{'\n'}), ""},
		{"emptied", nil, 0, "does not end with its zstd trailer"},
		{"cut at the last member", raw[:ms[len(ms)-1].GZ], ms[len(ms)-1].Line - 1, "does not end with its zstd trailer"},
		{"trailer cut off", raw[:len(raw)-zstdTrailerLen], bytes.Count(content[seg.Name], []byte{'\n'}), "does not end with its zstd trailer"},
		{"a frame appended", append(slices.Clip(raw), extra...), bytes.Count(content[seg.Name], []byte{'\n'}) + 1, "does not end with its zstd trailer"},
		{"the trailer's size changed", append(slices.Clip(raw[:len(raw)-zstdTrailerLen]), zstdTrailer(e.Bytes+1)...), bytes.Count(content[seg.Name], []byte{'\n'}), "its trailer says"},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.WriteFile(path, c.file, 0o600)
			r, err := OpenSegment(dir, seg)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			lines, err := readAll(r)
			if len(lines) != c.lines || c.fail == "" && err != io.EOF || c.fail != "" && (err == io.EOF || !strings.Contains(err.Error(), c.fail)) {
				t.Errorf("%d lines, then %v; want %d, then %q", len(lines), err, c.lines, c.fail)
			}
		})
	}
}

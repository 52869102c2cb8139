package store

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer/record"
)

// names lists the segment files of dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.Name)
	}
	return out
}

func want(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// Split cuts the active segment where another store rotated: the store
// ends up with the same segments, compressed and indexed, as if it had
// rotated there, and appends go on in the new active segment.
func TestSplit(t *testing.T) {
	dir := t.TempDir()
	refused := SegmentName(25, CompressedExt)
	s, _ := open(t, Options{Dir: dir, SegmentMax: 1 << 40, KeepIndexLine: func(seg string, _ []byte) bool { return seg != refused }})
	appendN(t, s, 1, 30)
	if err := s.Split(11); err != nil {
		t.Fatal(err)
	}
	if err := s.Split(11); err != nil { // again: nothing to do
		t.Fatal(err)
	}
	if err := s.Split(5); err != nil { // before the active segment: nothing
		t.Fatal(err)
	}
	appendN(t, s, 31, 40)
	if err := s.Split(25); err != nil {
		t.Fatal(err)
	}
	waitCompressed(t, dir)
	waitIndexed(t, dir, SegmentName(11, CompressedExt))
	if got := names(t, dir); !slices.Equal(got, []string{SegmentName(1, CompressedExt), SegmentName(11, CompressedExt), SegmentName(25, ActiveExt)}) {
		t.Fatalf("segments %v", got)
	}
	if got := seqs(t, dir); !slices.Equal(got, want(1, 40)) {
		t.Fatalf("seqs %v", got)
	}
	ix, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e := ix[SegmentName(11, CompressedExt)]; e.FirstSeq != 11 || e.LastSeq != 24 || e.Count != 14 {
		t.Fatalf("index entry %+v", e)
	}
	if err := s.Split(41); err != nil { // just after the last record: a rotation
		t.Fatal(err)
	}
	waitCompressed(t, dir)
	waitGone(t, filepath.Join(dir, SegmentName(25, ActiveExt))) // compressed, and not indexed
	if ix, _ = ReadIndex(dir); len(ix) != 2 {
		t.Fatalf("KeepIndexLine refused %s, and the index has %d entries", refused, len(ix))
	}
	if err := s.Split(50); err == nil {
		t.Fatal("split after the last record: no error")
	}
	appendN(t, s, 41, 41)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); got[len(got)-1] != SegmentName(41, ActiveExt) {
		t.Fatalf("segments %v", got)
	}
}

// A crash between writing the moved records and cutting them from the old
// segment leaves both holding them; Open finishes the split. An overlap
// with other bytes is not a split: it is left for verify.
func TestSplitCutShort(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(string) string
		finish bool
	}{
		{"copy", func(s string) string { return s }, true},
		{"other bytes", func(s string) string { return strings.Replace(s, `"t0"`, `"tx"`, 1) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, Options{Dir: dir, SegmentMax: 1 << 40})
			appendN(t, s, 1, 20)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// The state Split leaves when it dies before the truncation.
			old, err := os.ReadFile(filepath.Join(dir, SegmentName(1, ActiveExt)))
			if err != nil {
				t.Fatal(err)
			}
			off := bytes.Index(old, []byte(`{"seq":12,`))
			if err := os.WriteFile(filepath.Join(dir, SegmentName(12, ActiveExt)), []byte(tc.edit(string(old[off:]))), 0o600); err != nil {
				t.Fatal(err)
			}
			s, last := open(t, Options{Dir: dir, SegmentMax: 1 << 40})
			defer s.Close()
			if seq, _ := record.Seq(last.Line); seq != 20 {
				t.Fatalf("last seq %d", seq)
			}
			waitCompressed(t, dir)
			got := seqs(t, dir)
			if tc.finish && !slices.Equal(got, want(1, 20)) {
				t.Fatalf("seqs %v", got)
			}
			if !tc.finish && len(got) != 20+9 {
				t.Fatalf("an overlap with other records was changed: seqs %v", got)
			}
		})
	}
}

// waitIndexed waits until store/index has an entry for seg.
func waitIndexed(t *testing.T, dir, seg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ix, _ := ReadIndex(dir); ix[seg].Segment == seg {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no index entry for %s", seg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitGone waits until path no longer exists (a compressed segment's
// original is removed last).
func waitGone(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

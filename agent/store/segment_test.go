package store

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/tailseal/tailseal/signer/record"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func gzipped(data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

// readAll returns every line Next gives until an error, and that error.
func readAll(r *SegmentReader) ([]string, error) {
	var out []string
	for {
		l, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, string(l))
	}
}

func TestSegmentReaderLines(t *testing.T) {
	long := strings.Repeat("x", 3*lineBufSize) // longer than the buffer
	tests := []struct {
		name        string
		data        string
		compressed  bool
		includeTorn bool
		want        []string
		torn        bool // the last line returned was cut off
	}{
		{"active, complete", "a\nb\n", false, false, []string{"a", "b"}, false},
		// The agent is writing the last line: it is not there yet.
		{"active, last line incomplete", "a\nb", false, false, []string{"a"}, false},
		// Verification reports a torn tail, so it asks to see it.
		{"active, torn tail asked for", "a\nb", false, true, []string{"a", "b"}, true},
		// A compressed segment is complete: a last line without a newline
		// is what there is, and the caller decides.
		{"compressed, no final newline", "a\nb", true, false, []string{"a", "b"}, true},
		{"compressed", "a\n\nc\n", true, false, []string{"a", "", "c"}, false},
		{"a line longer than the buffer", "a\n" + long + "\nc\n", false, false, []string{"a", long, "c"}, false},
		{"compressed long line", "a\n" + long + "\nc\n", true, false, []string{"a", long, "c"}, false},
		{"empty", "", false, false, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			seg := Segment{Name: SegmentName(1, ActiveExt), First: 1}
			data := []byte(tt.data)
			if tt.compressed {
				seg = Segment{Name: SegmentName(1, CompressedExt), First: 1, Compressed: true}
				data = gzipped(data)
			}
			writeFile(t, filepath.Join(dir, seg.Name), data)
			r, err := OpenSegment(dir, seg)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.IncludeTorn = tt.includeTorn
			got, err := readAll(r)
			if err != io.EOF || strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("lines %.40q (%v), want %.40q", got, err, tt.want)
			}
			if r.LineNo() != len(tt.want) || r.Torn() != tt.torn {
				t.Errorf("line %d torn %v, want %d %v", r.LineNo(), r.Torn(), len(tt.want), tt.torn)
			}
			if r.Bytes() != int64(len(data)) {
				t.Errorf("%d bytes read, the file has %d", r.Bytes(), len(data))
			}
		})
	}
}

// A line the agent finishes writing after a reader reached the end comes
// whole at the next call: the reader keeps the part it has.
func TestSegmentReaderResumesAGrowingLine(t *testing.T) {
	dir := t.TempDir()
	seg := Segment{Name: SegmentName(1, ActiveExt), First: 1}
	path := filepath.Join(dir, seg.Name)
	writeFile(t, path, []byte("a\nbb"))
	r, err := OpenSegment(dir, seg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := readAll(r); err != io.EOF || len(got) != 1 {
		t.Fatalf("got %q, %v", got, err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("b\nc\n")
	f.Close()
	if got, err := readAll(r); err != io.EOF || strings.Join(got, "|") != "bbb|c" || r.LineNo() != 3 {
		t.Fatalf("after the append: %q, %v, line %d", got, err, r.LineNo())
	}
}

// A segment listed uncompressed and compressed by the agent before the
// open is read from its .gz.
func TestOpenSegmentCompressedSinceListing(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, SegmentName(1, ActiveExt)), []byte(rec(1)+"\n"+rec(2)+"\n"))
	writeFile(t, filepath.Join(dir, SegmentName(3, ActiveExt)), []byte(rec(3)+"\n"))
	segs, _ := List(dir)
	if err := CompressRotated(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	r, err := OpenSegment(dir, segs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := readAll(r)
	if err != io.EOF || len(got) == 0 || got[0] != rec(1) {
		t.Fatalf("got %d lines, %v", len(got), err)
	}
	if seg := r.Segment(); !seg.Compressed || seg.Name != SegmentName(1, CompressedExt) {
		t.Errorf("reading %+v, want the .gz", seg)
	}
}

func TestSegmentErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenSegment(dir, Segment{Name: SegmentName(1, ActiveExt), First: 1})
	var se *SegmentError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &se) || se.Segment != SegmentName(1, CompressedExt) || se.Line != 0 {
		t.Errorf("missing segment: %v", err)
	}

	// A compressed segment cut short fails at the line being read.
	data := gzipped([]byte(strings.Repeat(rec(1)+"\n", 5000)))
	name := SegmentName(1, CompressedExt)
	writeFile(t, filepath.Join(dir, name), data[:len(data)/2])
	r, err := OpenSegment(dir, Segment{Name: name, First: 1, Compressed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := readAll(r)
	if !errors.As(err, &se) || !errors.Is(err, io.ErrUnexpectedEOF) || se.Line != len(got)+1 || se.Segment != name {
		t.Fatalf("after %d lines: %v", len(got), err)
	}
	if _, again := r.Next(); again != err {
		t.Errorf("the error is not final: %v", again)
	}
}

// The sink's reader follows the store across rotation and compression and
// never returns a line the agent has not finished.
func TestReaderFollowsTheStore(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 1000})
	appendN(t, s, 1, 10)
	r := NewReader(dir, 3)
	defer r.Close()
	next := func(durable uint64) (uint64, bool) {
		t.Helper()
		l, ok, err := r.Next(durable)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return 0, false
		}
		seq, _ := record.Seq(l)
		return seq, true
	}
	for want := uint64(3); want <= 10; want++ {
		if seq, ok := next(s.Durable()); !ok || seq != want {
			t.Fatalf("got seq %d (%v), want %d", seq, ok, want)
		}
	}
	if _, ok := next(s.Durable()); ok {
		t.Fatal("a record beyond the durable end")
	}
	appendN(t, s, 11, 40) // rotates several times
	s.Close()
	if err := CompressRotated(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, s.ActiveSegment()), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":41,"tim`) // the agent is writing it
	f.Close()
	for want := uint64(11); want <= 40; want++ {
		if seq, ok := next(100); !ok || seq != want {
			t.Fatalf("got seq %d (%v), want %d", seq, ok, want)
		}
	}
	if seq, ok := next(100); ok {
		t.Fatalf("returned seq %d, a line not yet complete", seq)
	}
	if r.Seq() != 41 {
		t.Errorf("Seq %d, want 41", r.Seq())
	}
}

// A compressed segment whose first line decompresses to more than
// MaxLineBytes (21 KB of zstd give 200 MiB of one byte) is an error at
// that line, not a read of all of it: memory stays bounded whatever a
// damaged file holds. (The limit is 2 MiB here: inflating 128 MiB takes
// seconds.)
func TestSegmentLineTooLong(t *testing.T) {
	defer func(n int) { maxLineBytes = n }(maxLineBytes)
	maxLineBytes = 2 << 20
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	for _, c := range []Compression{Gzip, Zstd} {
		t.Run(string(c), func(t *testing.T) {
			// One member (frame) of 1 MiB of x, repeated: one stream, one line.
			var m bytes.Buffer
			var w io.WriteCloser
			if c == Zstd {
				w, _ = zstd.NewWriter(&m, zstd.WithEncoderConcurrency(1))
			} else {
				w = gzip.NewWriter(&m)
			}
			w.Write(chunk)
			w.Close()
			b := bytes.NewBuffer(bytes.Repeat(m.Bytes(), 16*maxLineBytes>>20))
			if c == Zstd {
				w, _ = zstd.NewWriter(b)
			} else {
				w = gzip.NewWriter(b)
			}
			w.Write([]byte("\n{\"seq\":1}\n"))
			w.Close()
			dir := t.TempDir()
			seg := Segment{Name: SegmentName(1, c.Ext()), First: 1, Compressed: true}
			writeFile(t, filepath.Join(dir, seg.Name), b.Bytes())
			r, err := OpenSegment(dir, seg)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			lines, err := readAll(r)
			runtime.ReadMemStats(&after)
			var se *SegmentError
			if len(lines) != 0 || !errors.Is(err, ErrLineTooLong) || !errors.As(err, &se) || se.Line != 1 {
				t.Fatalf("%d lines, %v: want line 1 too long", len(lines), err)
			}
			// Less than the line: reading it whole would take twice that
			// (the zstd decoder's own window is 8 MiB).
			if took := after.TotalAlloc - before.TotalAlloc; took > 16*uint64(maxLineBytes) {
				t.Errorf("the reader allocated %d MiB for a limit of %d", took>>20, maxLineBytes>>20)
			}
			t.Logf("%d KB compressed: %v", b.Len()>>10, err)
		})
	}
}

// A FIFO with a segment's name is an error at once, not an open that
// waits for a writer forever.
func TestOpenSegmentNotRegular(t *testing.T) {
	dir := t.TempDir()
	name := SegmentName(1, CompressedExt)
	if err := syscall.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := OpenSegment(dir, Segment{Name: name, First: 1, Compressed: true})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("OpenSegment on a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OpenSegment on a FIFO did not return")
	}
}

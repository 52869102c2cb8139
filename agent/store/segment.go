package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// SegmentError says which segment, and which line of it (0: while
// opening), could not be read. It unwraps to the cause, so errors.Is(err,
// fs.ErrNotExist) and the like still work.
type SegmentError struct {
	Segment string
	Line    int
	Err     error
}

func (e *SegmentError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("segment %s: %v", e.Segment, e.Err)
	}
	return fmt.Sprintf("segment %s line %d: %v", e.Segment, e.Line, e.Err)
}

func (e *SegmentError) Unwrap() error { return e.Err }

// Buffer sizes: whole-store reads (verify, queries) run at hundreds of
// MB/s, and big buffers keep read calls and gzip refills few. Measured on
// verify, 1 MiB reads no faster than 256 KiB, and queries read GOMAXPROCS
// segments at once, so 256 KiB it is. A longer line still works, slower.
const (
	lineBufSize = 256 << 10
	diskBufSize = 256 << 10
)

// MaxLineBytes is the longest line a segment may hold. The agent's records
// stay below it: a source line is at most 16 MiB (agent/config
// MaxLineBytes), and pseudonyms make it at most 4 times longer (the
// shortest email, 5 bytes, becomes 20). A longer one is damage, and
// reading it whole could take any memory: a zstd frame of 32 KB
// decompresses to a line of 1 GiB.
const MaxLineBytes = 128 << 20

// maxLineBytes is MaxLineBytes, smaller in tests.
var maxLineBytes = MaxLineBytes

// ErrLineTooLong means a segment holds a line longer than MaxLineBytes.
var ErrLineTooLong = errors.New("a line too long to be a record the agent writes")

// SegmentReader reads the lines of one segment, compressed or not. It is
// the one reader of segment lines: sinks, queries, the index, recovery
// and verification all go through it. (Only repairTail reads an active
// segment backwards, to cut a torn tail.)
//
// The last line of an uncompressed segment without its newline is not
// there yet (the agent is writing it): Next returns io.EOF and keeps the
// bytes, so a later Next returns the whole line once the agent has written
// the rest. A compressed segment is complete, so its last line is returned
// even without a newline; Torn says so.
type SegmentReader struct {
	// IncludeTorn makes Next return an uncompressed segment's incomplete
	// last line too, for callers that must see a torn tail (verification
	// reports it). Set it before the first Next.
	IncludeTorn bool

	seg    Segment
	f      *os.File
	disk   countingReader
	zclose func()         // releases the decompressor
	out    countingReader // what the decompressor gave
	// trailer is the size a zstd segment's trailer gives, -1 when it has
	// none (cut short, appended to, emptied): then its end is an error.
	trailer int64
	zstd    bool
	br      *bufio.Reader
	pending []byte // a line read in parts: longer than br, or not yet complete
	lineNo  int
	torn    bool
	err     error
}

// OpenSegment opens seg in dir. A segment listed uncompressed that the
// agent compressed since the listing is read from its .gz (or .zst);
// Segment then names the file read.
func OpenSegment(dir string, seg Segment) (*SegmentReader, error) {
	f, err := openRegular(filepath.Join(dir, seg.Name))
	if errors.Is(err, fs.ErrNotExist) && !seg.Compressed {
		base := strings.TrimSuffix(seg.Name, ActiveExt)
		seg.Compressed = true
		for _, c := range []Compression{Zstd, Gzip} { // gone: named as gzip
			seg.Name = base + c.Ext()
			if f, err = openRegular(filepath.Join(dir, seg.Name)); !errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
	}
	if err != nil {
		return nil, &SegmentError{Segment: seg.Name, Err: err}
	}
	r := &SegmentReader{seg: seg, f: f}
	r.disk.r = f
	var src io.Reader = &r.disk
	if c, ok := CompressionOf(seg.Name); ok && seg.Compressed {
		if c == Zstd {
			r.zstd, r.trailer = true, readZstdTrailer(f)
		}
		if src, r.zclose, err = segmentDecoder(c, bufio.NewReaderSize(&r.disk, diskBufSize)); err != nil {
			f.Close()
			return nil, &SegmentError{Segment: seg.Name, Err: err}
		}
		r.out.r = src
		src = &r.out
	}
	r.br = bufio.NewReaderSize(src, lineBufSize)
	return r, nil
}

// openRegular opens a regular file for reading. Anything else with a
// segment's name is an error rather than a read that may never end: a
// FIFO would block the open until a writer came, a device never ends.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file (%s)", filepath.Base(path), fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Segment is the segment being read.
func (r *SegmentReader) Segment() Segment { return r.seg }

// Next returns the next line without its newline, valid until the next
// call, or io.EOF at the end of what is there. Other errors are
// *SegmentError and final.
func (r *SegmentReader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	line, err := r.br.ReadSlice('\n')
	if err == nil && len(r.pending) == 0 { // the common case: no copy
		r.lineNo++
		r.torn = false
		return line[:len(line)-1], nil
	}
	return r.slow(line, err)
}

// slow assembles a line that came in parts, and handles the end.
func (r *SegmentReader) slow(line []byte, err error) ([]byte, error) {
	r.pending = append(r.pending, line...)
	for err == bufio.ErrBufferFull {
		if len(r.pending) > maxLineBytes {
			r.pending = nil
			r.err = &SegmentError{Segment: r.seg.Name, Line: r.lineNo + 1, Err: fmt.Errorf("%w (over %d MiB)", ErrLineTooLong, maxLineBytes>>20)}
			return nil, r.err
		}
		line, err = r.br.ReadSlice('\n')
		r.pending = append(r.pending, line...)
	}
	switch {
	case err == nil:
		line = r.pending[:len(r.pending)-1]
	case err != io.EOF:
		r.err = &SegmentError{Segment: r.seg.Name, Line: r.lineNo + 1, Err: err}
		return nil, r.err
	case len(r.pending) == 0:
		if r.zstd && r.trailer != r.out.n {
			// zstd readers take an empty file, or one cut at a frame's
			// end, for a whole stream: the trailer says what it held.
			r.err = &SegmentError{Segment: r.seg.Name, Line: r.lineNo + 1, Err: errZstdEnd(r.trailer, r.out.n)}
			return nil, r.err
		}
		return nil, io.EOF
	case !r.seg.Compressed && !r.IncludeTorn:
		return nil, io.EOF // not yet there; kept in pending
	default:
		line = r.pending
	}
	r.torn = err == io.EOF
	r.pending = r.pending[:0] // line stays valid: only the next call appends
	r.lineNo++
	return line, nil
}

// LineNo is the 1-based number of the line Next returned last.
func (r *SegmentReader) LineNo() int { return r.lineNo }

// Torn reports whether the line Next returned last had no newline: the
// cut-off last line of a segment.
func (r *SegmentReader) Torn() bool { return r.torn }

// Bytes is how many bytes were read from the file so far, compressed as on
// disk: progress for a reader of many segments.
func (r *SegmentReader) Bytes() int64 { return r.disk.n }

// Close releases the file.
func (r *SegmentReader) Close() error {
	if r.zclose != nil {
		r.zclose()
		r.zclose = nil
	}
	return r.f.Close()
}

func errZstdEnd(trailer, got int64) error {
	if trailer < 0 {
		return fmt.Errorf("the segment does not end with its zstd trailer: cut short, emptied or appended to, after %d bytes", got)
	}
	return fmt.Errorf("the segment decompresses to %d bytes, its trailer says %d", got, trailer)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/tailseal/tailseal/signer/record"
)

// Reader reads records in seq order from a given seq on, across segments,
// while the agent appends, rotates and compresses: a sink's view of the
// store. It only returns complete lines, and only up to a seq the caller
// knows to be durable. Not safe for concurrent use.
type Reader struct {
	dir  string
	next uint64 // the seq Next returns

	seg    Segment
	f      *os.File
	zr     *gzip.Reader
	br     *bufio.Reader // over zr for a compressed segment
	off    int64         // next byte to read, for an uncompressed segment
	buf    []byte        // uncompressed: bytes read at off, not yet returned
	line   []byte
	opened bool
}

// NewReader returns a Reader whose first record is seq from.
func NewReader(dir string, from uint64) *Reader {
	return &Reader{dir: dir, next: max(from, 1)}
}

// ErrGone means the record wanted was deleted by retention.
var ErrGone = errors.New("record no longer in the store")

// Next returns the next record (valid until the next call) if its seq is at
// most durable; ok is false when there is none yet.
func (r *Reader) Next(durable uint64) (line []byte, ok bool, err error) {
	for r.next <= durable {
		if !r.opened {
			if err := r.open(); err != nil {
				return nil, false, err
			}
		}
		l, err := r.read()
		if err == io.EOF {
			// The segment is done when a later one exists; else wait.
			later, lerr := r.laterSegment()
			if lerr != nil {
				return nil, false, lerr
			}
			if !later {
				return nil, false, nil
			}
			if l, err = r.read(); err != io.EOF { // appended before the rotation
				if err != nil {
					return nil, false, err
				}
			} else {
				r.Close()
				continue
			}
		} else if err != nil {
			return nil, false, err
		}
		seq, ok := record.Seq(l)
		if !ok {
			return nil, false, fmt.Errorf("segment %s: a line that is not a record", r.seg.Name)
		}
		if seq < r.next {
			continue // before the cursor, in the segment opened for it
		}
		if seq != r.next {
			return nil, false, fmt.Errorf("segment %s: seq %d where %d was expected", r.seg.Name, seq, r.next)
		}
		r.next++
		return l, true, nil
	}
	return nil, false, nil
}

// Seq is the seq Next returns next.
func (r *Reader) Seq() uint64 { return r.next }

// open opens the segment holding r.next.
func (r *Reader) open() error {
	segs, err := List(r.dir)
	if err != nil {
		return err
	}
	i := len(segs) - 1
	for i >= 0 && segs[i].First > r.next {
		i--
	}
	if i < 0 {
		return fmt.Errorf("seq %d: %w", r.next, ErrGone)
	}
	r.seg = segs[i]
	f, err := os.Open(filepath.Join(r.dir, r.seg.Name))
	if errors.Is(err, os.ErrNotExist) && !r.seg.Compressed {
		// compressed between List and Open
		r.seg.Name = r.seg.Name[:len(r.seg.Name)-len(ActiveExt)] + CompressedExt
		r.seg.Compressed = true
		f, err = os.Open(filepath.Join(r.dir, r.seg.Name))
	}
	if err != nil {
		return err
	}
	r.f, r.off, r.buf = f, 0, r.buf[:0]
	if r.seg.Compressed {
		if r.zr, err = gzip.NewReader(bufio.NewReaderSize(f, 64<<10)); err != nil {
			f.Close()
			return fmt.Errorf("segment %s: %w", r.seg.Name, err)
		}
		r.br = bufio.NewReaderSize(r.zr, 64<<10)
	}
	r.opened = true
	return nil
}

// read returns the next complete line of the open segment, or io.EOF.
func (r *Reader) read() ([]byte, error) {
	if r.seg.Compressed {
		l, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			r.line = append(r.line[:0], l...)
			for err == bufio.ErrBufferFull {
				l, err = r.br.ReadSlice('\n')
				r.line = append(r.line, l...)
			}
			l = r.line
		}
		if err == io.EOF && len(l) > 0 {
			return nil, fmt.Errorf("segment %s: ends without a newline", r.seg.Name)
		}
		if err != nil {
			return nil, err
		}
		return l[:len(l)-1], nil
	}
	// Uncompressed, possibly still being written: read at our own offset,
	// return whole lines only.
	for {
		if i := bytes.IndexByte(r.buf, '\n'); i >= 0 {
			l := r.buf[:i]
			r.line = append(r.line[:0], l...)
			r.buf = r.buf[i+1:]
			return r.line, nil
		}
		if cap(r.buf)-len(r.buf) < 32<<10 {
			r.buf = append(make([]byte, 0, max(2*cap(r.buf), 64<<10)), r.buf...)
		}
		n, err := r.f.ReadAt(r.buf[len(r.buf):cap(r.buf)], r.off)
		r.buf = r.buf[:len(r.buf)+n]
		r.off += int64(n)
		if n == 0 {
			if err == nil || err == io.EOF {
				return nil, io.EOF
			}
			return nil, err
		}
	}
}

// laterSegment reports whether a segment after the open one exists, which
// means the open one will not grow any more.
func (r *Reader) laterSegment() (bool, error) {
	segs, err := List(r.dir)
	if err != nil {
		return false, err
	}
	return len(segs) > 0 && segs[len(segs)-1].First > r.seg.First, nil
}

// Close releases the open segment.
func (r *Reader) Close() error {
	if !r.opened {
		return nil
	}
	r.opened = false
	if r.zr != nil {
		r.zr.Close()
		r.zr, r.br = nil, nil
	}
	return r.f.Close()
}

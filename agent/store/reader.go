package store

import (
	"errors"
	"fmt"
	"io"

	"github.com/tailseal/tailseal/signer/record"
)

// Reader reads records in seq order from a given seq on, across segments,
// while the agent appends, rotates and compresses: a sink's view of the
// store. It only returns complete lines, and only up to a seq the caller
// knows to be durable. Not safe for concurrent use.
type Reader struct {
	dir  string
	next uint64         // the seq Next returns
	seg  *SegmentReader // nil: none open
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
		if r.seg == nil {
			if err := r.open(); err != nil {
				return nil, false, err
			}
		}
		l, err := r.read()
		if err == io.EOF {
			if l, err = r.endOfSegment(); err == io.EOF {
				continue // the segment is done: on to the next one
			}
			if err != nil || l == nil {
				return nil, false, err
			}
		} else if err != nil {
			return nil, false, err
		}
		seq, ok := record.Seq(l)
		if !ok {
			return nil, false, fmt.Errorf("segment %s: a line that is not a record", r.seg.seg.Name)
		}
		if seq < r.next {
			continue // before the cursor, in the segment opened for it
		}
		if seq != r.next {
			return nil, false, fmt.Errorf("segment %s: seq %d where %d was expected", r.seg.seg.Name, seq, r.next)
		}
		r.next++
		return l, true, nil
	}
	return nil, false, nil
}

// endOfSegment handles the end of what the open segment holds. The segment
// is done when a later one exists: then it returns a line appended just
// before the rotation, or io.EOF after closing it. Without a later segment
// it returns no line: wait for the agent.
func (r *Reader) endOfSegment() ([]byte, error) {
	later, err := r.laterSegment()
	if err != nil || !later {
		return nil, err
	}
	l, err := r.read()
	if err == io.EOF {
		r.Close()
	}
	return l, err
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
	r.seg, err = OpenSegment(r.dir, segs[i])
	return err
}

// read returns the next complete line of the open segment, or io.EOF.
func (r *Reader) read() ([]byte, error) {
	l, err := r.seg.Next()
	if err == nil && r.seg.Torn() { // only a compressed segment returns one
		return nil, fmt.Errorf("segment %s: ends without a newline", r.seg.seg.Name)
	}
	return l, err
}

// laterSegment reports whether a segment after the open one exists, which
// means the open one will not grow any more.
func (r *Reader) laterSegment() (bool, error) {
	segs, err := List(r.dir)
	if err != nil {
		return false, err
	}
	return len(segs) > 0 && segs[len(segs)-1].First > r.seg.seg.First, nil
}

// Close releases the open segment.
func (r *Reader) Close() error {
	if r.seg == nil {
		return nil
	}
	err := r.seg.Close()
	r.seg = nil
	return err
}

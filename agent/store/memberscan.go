package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tailseal/tailseal/signer/record"
)

// ErrMember means a member of a compressed segment is not what its table
// says: the table's compressed offsets are not attested, so a reader
// holds every member it reads to the attested rest of the row.
var ErrMember = errors.New("segment member does not match its table")

// maxMemberBytes bounds what a member read takes in memory.
const maxMemberBytes = 64 << 20

// ScanMembers is ScanSegment over the members of a compressed segment
// that want lists (indexes into ms, ascending), ms being the segment's
// table (Members) and e its index entry. Each member is decompressed and
// held to its row (length, lines, first seq, its records' seqs in a
// row) before its lines go to fn. When one does not match, the segment
// is read whole, the records already given to fn left out by their seqs
// (the table's offsets are not attested: in a segment edited before
// them, its line numbers no longer point at the same lines), and
// mismatch says what was wrong: fn sees every record of the members
// wanted once, and maybe more. err is an error of reading (a
// *SegmentError) or of fn.
func ScanMembers(dir string, seg Segment, e *IndexEntry, ms []Member, want []int, fn func(seg Segment, lineNo int, line []byte) error) (mismatch, err error) {
	f, err := os.Open(filepath.Join(dir, seg.Name))
	if err != nil {
		return nil, &SegmentError{Segment: seg.Name, Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &SegmentError{Segment: seg.Name, Err: err}
	}
	c, _ := CompressionOf(seg.Name)
	var dec memberDecoder
	defer dec.release()
	var buf []byte
	var done []seqRange // the records given to fn
	for _, i := range want {
		var next uint64
		buf, next, err = readMember(f, c, fi.Size(), e, ms, i, &dec, buf)
		if errors.Is(err, ErrMember) {
			return fmt.Errorf("member %d: %w", i, err), scanRest(dir, seg, done, fn)
		}
		if err != nil {
			return nil, &SegmentError{Segment: seg.Name, Line: ms[i].Line, Err: err}
		}
		lineNo := ms[i].Line
		for rest := buf; len(rest) > 0; lineNo++ {
			line := rest
			if j := bytes.IndexByte(rest, '\n'); j >= 0 {
				line, rest = rest[:j], rest[j+1:]
			} else {
				rest = nil
			}
			if err := fn(seg, lineNo, line); err != nil {
				return nil, err
			}
		}
		if ms[i].Seq != 0 {
			done = append(done, seqRange{ms[i].Seq, next})
		}
	}
	return nil, nil
}

// seqRange is the seqs from first up to, not including, end.
type seqRange struct{ first, end uint64 }

// readMember decompresses member i into buf and holds it to its row;
// next is the seq after its last record.
func readMember(f *os.File, c Compression, size int64, e *IndexEntry, ms []Member, i int, dec *memberDecoder, buf []byte) (_ []byte, next uint64, _ error) {
	buf, err := readMemberBytes(f, c, size, e, ms, i, dec, buf)
	if err != nil {
		return buf, 0, err
	}
	// Its records' seqs follow one another from the row's: the fallback
	// leaves out exactly these.
	next = ms[i].Seq
	for rest := buf; len(rest) > 0 && next != 0; {
		line, after, _ := bytes.Cut(rest, []byte{'\n'})
		if seq, ok := record.Seq(line); ok {
			if seq != next {
				return buf, 0, fmt.Errorf("%w: seq %d where %d follows", ErrMember, seq, next)
			}
			next++
		}
		rest = after
	}
	return buf, next, nil
}

// readMemberBytes decompresses member i into buf and holds it to its
// row's length, lines and first seq.
func readMemberBytes(f *os.File, c Compression, size int64, e *IndexEntry, ms []Member, i int, dec *memberDecoder, buf []byte) ([]byte, error) {
	m := &ms[i]
	end, gzEnd, lines := e.Bytes, membersEnd(c, size), -1
	if i+1 < len(ms) {
		end, gzEnd, lines = ms[i+1].Offset, ms[i+1].GZ, ms[i+1].Line-m.Line
	}
	n := end - m.Offset
	if n <= 0 || n > maxMemberBytes || gzEnd <= m.GZ {
		return buf, fmt.Errorf("%w: %d bytes from compressed offset %d to %d", ErrMember, n, m.GZ, gzEnd)
	}
	buf, err := dec.decode(c, f, m.GZ, gzEnd, n, buf)
	if err != nil {
		return buf, fmt.Errorf("%w: %v", ErrMember, err)
	}
	if lines >= 0 && (buf[n-1] != '\n' || bytes.Count(buf, []byte{'\n'}) != lines) {
		return buf, fmt.Errorf("%w: not %d whole lines", ErrMember, lines)
	}
	first, _, _ := bytes.Cut(buf, []byte{'\n'})
	if seq, ok := record.Seq(first); ok != (m.Seq != 0) || seq != m.Seq {
		return buf, fmt.Errorf("%w: its first line is seq %d, the table says %d", ErrMember, seq, m.Seq)
	}
	return buf, nil
}

// scanRest reads the segment whole, leaving out the records done already.
func scanRest(dir string, seg Segment, done []seqRange, fn func(seg Segment, lineNo int, line []byte) error) error {
	return ScanSegment(dir, seg, func(seg Segment, lineNo int, line []byte) error {
		if seq, ok := record.Seq(line); ok {
			for _, r := range done {
				if seq >= r.first && seq < r.end {
					return nil
				}
			}
		}
		return fn(seg, lineNo, line)
	})
}

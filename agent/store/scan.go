package store

import "io"

// Scan calls fn for every line of every segment in seq order, reading
// compressed and active segments alike. lineNo counts from 1 per segment.
// It stops at the first error fn returns.
func Scan(dir string, fn func(seg Segment, lineNo int, line []byte) error) error {
	segs, err := List(dir)
	if err != nil {
		return err
	}
	for _, seg := range segs {
		if err := ScanSegment(dir, seg, fn); err != nil {
			return err
		}
	}
	return nil
}

// ScanSegment calls fn for every line of one segment (without newlines),
// with the segment as read (see OpenSegment). The last line of an
// uncompressed segment counts only once complete. A segment that cannot be
// read is a *SegmentError.
func ScanSegment(dir string, seg Segment, fn func(seg Segment, lineNo int, line []byte) error) error {
	r, err := OpenSegment(dir, seg)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		line, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(r.seg, r.lineNo, line); err != nil {
			return err
		}
	}
}

package store

import (
	"bufio"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"io"
	"os"
	"path/filepath"
)

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

// ScanSegment calls fn for every line of one segment (without newlines).
// The last line of an uncompressed segment counts only once complete.
func ScanSegment(dir string, seg Segment, fn func(seg Segment, lineNo int, line []byte) error) error {
	f, err := os.Open(filepath.Join(dir, seg.Name))
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if seg.Compressed {
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 256<<10))
		if err != nil {
			return fmt.Errorf("segment %s: %w", seg.Name, err)
		}
		r = zr
	}
	br := bufio.NewReaderSize(r, 256<<10)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull { // a line longer than the buffer
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		complete := len(line) > 0 && line[len(line)-1] == '\n'
		if complete {
			line = line[:len(line)-1]
		} else if err == io.EOF && !seg.Compressed {
			return nil // the agent is writing it (or a crash tore it; the next start repairs it)
		}
		if len(line) > 0 || err == nil {
			if ferr := fn(seg, n, line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("segment %s: %w", seg.Name, err)
		}
	}
}

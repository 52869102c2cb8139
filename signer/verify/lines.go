package verify

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/tailseal/tailseal/agent/store"
)

// lines iterates over every line of every segment, keeping the current and
// the next line valid at the same time (the verifier looks one line ahead).
type lines struct {
	dir   string
	segs  []store.Segment
	i     int // index of the open segment
	f     *os.File
	zr    *gzip.Reader
	br    *bufio.Reader
	count *countingReader
	line  int
	// broken names a segment that could not be read to its end; the
	// verifier reports it and the iteration goes on with the next one.
	broken    *store.Segment
	brokenErr error
	total     int64 // bytes read from closed segments
}

// bytesRead is how many stored bytes (compressed as on disk) were read.
func (l *lines) bytesRead() int64 {
	if l.count != nil {
		return l.total + l.count.n
	}
	return l.total
}

type item struct {
	seg    store.Segment
	lineNo int
	data   []byte
	last   bool // the segment ends after this line
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

// next reads the next line into buf (reused) and returns it.
func (l *lines) next(buf []byte) (item, bool) {
	for {
		if l.br == nil {
			if l.i >= len(l.segs) {
				return item{}, false
			}
			if err := l.open(); err != nil {
				l.fail(err)
				continue
			}
		}
		buf = buf[:0]
		var err error
		for {
			var chunk []byte
			chunk, err = l.br.ReadSlice('\n')
			buf = append(buf, chunk...)
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			l.fail(err)
			continue
		}
		if len(buf) == 0 { // end of this segment
			l.close()
			l.i++
			continue
		}
		l.line++
		if buf[len(buf)-1] == '\n' {
			buf = buf[:len(buf)-1]
		}
		it := item{seg: l.segs[l.i], lineNo: l.line, data: buf}
		_, perr := l.br.Peek(1)
		it.last = perr != nil
		return it, true
	}
}

// fail records that the open segment is unreadable and skips it.
func (l *lines) fail(err error) {
	seg := l.segs[l.i]
	l.broken, l.brokenErr = &seg, err
	l.close()
	l.i++
}

func (l *lines) open() error {
	seg := l.segs[l.i]
	f, err := os.Open(filepath.Join(l.dir, seg.Name))
	if errors.Is(err, fs.ErrNotExist) && !seg.Compressed {
		// The running agent compressed it since the listing.
		seg.Name = strings.TrimSuffix(seg.Name, store.ActiveExt) + store.CompressedExt
		seg.Compressed = true
		l.segs[l.i] = seg
		f, err = os.Open(filepath.Join(l.dir, seg.Name))
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", seg.Name, err)
	}
	l.f, l.line = f, 0
	l.count = &countingReader{r: f}
	var r io.Reader = l.count
	if seg.Compressed {
		if l.zr, err = gzip.NewReader(bufio.NewReaderSize(l.count, 256<<10)); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", seg.Name, err)
		}
		r = l.zr
	}
	l.br = bufio.NewReaderSize(r, 1<<20)
	return nil
}

func (l *lines) close() {
	if l.f != nil {
		l.f.Close()
		l.total += l.count.n
		l.count.n = 0
	}
	l.f, l.zr, l.br = nil, nil, nil
}

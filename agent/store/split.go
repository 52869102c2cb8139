package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/signer/record"
)

// ErrSplit means Split was asked for a seq the active segment does not
// hold a record boundary at.
var ErrSplit = errors.New("cannot split the active segment there")

// Split ends the active segment just before seq at, as if it had rotated
// there: the records from at on move to a new active segment named by at,
// and the old one is compressed and indexed as any rotated segment. It
// does nothing when at is not after the active segment's first seq.
//
// A store that copies another one (tailseal collect) learns where the
// other rotated only after the fact, from its index records, and uses
// Split to end up with the same segments. A crash in the middle leaves
// both files holding the moved records; Open finishes the split.
func (s *Store) Split(at uint64) error {
	if at <= s.first {
		return nil
	}
	if at > s.lastSeq+1 {
		return fmt.Errorf("%w: seq %d is after the last record, %d", ErrSplit, at, s.lastSeq)
	}
	if at == s.lastSeq+1 {
		return s.rotate(at)
	}
	if err := s.Commit(); err != nil {
		return err
	}
	old := SegmentName(s.first, ActiveExt)
	off, err := offsetOf(s.opt.Dir, Segment{Name: old, First: s.first}, at)
	if err != nil {
		return err
	}
	// The moved records are durable under their new name before the old
	// segment gives them up.
	dst := filepath.Join(s.opt.Dir, SegmentName(at, ActiveExt))
	tmp := dst + ".tmp"
	if err := copyRange(s.f, off, s.size, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("split segment: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("split segment: %w", err)
	}
	if err := atomicfile.SyncDir(s.opt.Dir); err != nil {
		return fmt.Errorf("split segment: %w", err)
	}
	if err := s.f.Truncate(off); err != nil {
		return fmt.Errorf("split segment: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("split segment: %w", err)
	}
	s.size = off
	return s.next(at, "split")
}

// offsetOf is where the line of seq at starts in seg.
func offsetOf(dir string, seg Segment, at uint64) (int64, error) {
	r, err := OpenSegment(dir, seg)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var off int64
	for {
		line, err := r.Next()
		if err == io.EOF {
			return 0, fmt.Errorf("%w: segment %s has no record %d", ErrSplit, seg.Name, at)
		}
		if err != nil {
			return 0, err
		}
		if seq, ok := record.Seq(line); ok && seq >= at {
			if seq != at {
				return 0, fmt.Errorf("%w: segment %s has seq %d where %d was expected", ErrSplit, seg.Name, seq, at)
			}
			return off, nil
		}
		off += int64(len(line)) + 1
	}
}

// copyRange writes f[from:to] to a new file at path and makes it durable.
func copyRange(f *os.File, from, to int64, path string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.NewSectionReader(f, from, to-from))
	if err == nil {
		err = out.Sync()
	}
	return errors.Join(err, out.Close())
}

// finishSplits completes splits a crash cut short: a rotated, uncompressed
// segment whose tail is the start of the next segment, byte for byte,
// loses that tail. Any other overlap is left for verify to report.
func (s *Store) finishSplits(segs []Segment) error {
	for i := 0; i+1 < len(segs); i++ {
		seg, next := segs[i], segs[i+1]
		if seg.Compressed || next.Compressed {
			continue
		}
		path := filepath.Join(s.opt.Dir, seg.Name)
		last, err := lastLineOf(path)
		if err != nil || last == nil {
			return err
		}
		if seq, ok := record.Seq(last); !ok || seq < next.First {
			continue
		}
		off, err := offsetOf(s.opt.Dir, seg, next.First)
		if err != nil {
			s.log.Warn("store: a segment overlaps the next one; left as it is", "segment", seg.Name, "error", err)
			continue
		}
		same, err := tailIsPrefix(path, off, filepath.Join(s.opt.Dir, next.Name))
		if err != nil {
			return err
		}
		if !same {
			s.log.Warn("store: a segment overlaps the next one with other records; left as it is", "segment", seg.Name, "next", next.Name)
			continue
		}
		s.log.Warn("store: finishing a segment split cut short", "segment", seg.Name, "next", next.Name)
		if err := truncateSync(path, off); err != nil {
			return fmt.Errorf("finish split: %w", err)
		}
	}
	return nil
}

// lastLineOf is the last complete line of an uncompressed segment, nil if
// it has none.
func lastLineOf(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil, err
	}
	_, line, err := lineBefore(f, fi.Size())
	if err != nil || len(line) == 0 || line[len(line)-1] != '\n' {
		return nil, err
	}
	return line[:len(line)-1], nil
}

// tailIsPrefix reports whether the bytes of path from off on are the
// first bytes of next.
func tailIsPrefix(path string, off int64, next string) (bool, error) {
	a, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer a.Close()
	fi, err := a.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Open(next)
	if err != nil {
		return false, err
	}
	defer b.Close()
	ta := io.NewSectionReader(a, off, fi.Size()-off)
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, errA := io.ReadFull(ta, bufA)
		if n == 0 {
			return true, nil
		}
		if _, err := io.ReadFull(b, bufB[:n]); err != nil {
			return false, nil // next is shorter: not a copy
		}
		if !bytes.Equal(bufA[:n], bufB[:n]) {
			return false, nil
		}
		if errA != nil {
			return true, nil
		}
	}
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

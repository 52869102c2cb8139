package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"golang.org/x/sys/unix"
)

// background compresses rotated segments and applies retention.
func (s *Store) background() {
	defer s.bg.Done()
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	if s.opt.BeforeDelete == nil {
		s.applyRetention()
	}
	var queue []string         // segments to compress, in order
	var retry <-chan time.Time // set while the first failed, to try it again
	for {
		select {
		case <-s.stop:
			return
		case <-s.retain:
			s.applyRetention()
		case name := <-s.jobs:
			queue = append(queue, name)
		case <-retry:
		case <-tick.C:
			s.applyRetention()
			continue
		}
		for len(queue) > 0 {
			name := queue[0]
			err := s.compress(name)
			if errors.Is(err, errStopped) {
				return
			}
			var again errAgain
			if errors.As(err, &again) {
				s.log.Error("store: compress segment failed; will retry", "segment", name, "error", err, "retry_in", s.compressRetry)
				break
			}
			if err != nil {
				s.log.Error("store: compress segment failed; will retry at next start", "segment", name, "error", err)
			}
			queue = queue[1:]
			s.applyRetention()
		}
		retry = nil
		if len(queue) > 0 {
			retry = time.After(s.compressRetry)
		}
	}
}

// errAgain is a compression that failed with nothing of it left on disk
// (a full disk, say): it can be tried again while the store runs.
type errAgain struct{ error }

func (e errAgain) Unwrap() error { return e.error }

var errStopped = errors.New("store closing")

// stopReader aborts a long copy when the store closes; the half-written
// temporary file is removed at the next start.
type stopReader struct {
	r    io.Reader
	stop <-chan struct{}
}

func (r stopReader) Read(p []byte) (int, error) {
	select {
	case <-r.stop:
		return 0, errStopped
	default:
		return r.r.Read(p)
	}
}

// compress writes name.gz (or .zst) through a temporary file, makes it
// durable, records the segment in the index, then removes the original.
func (s *Store) compress(name string) (err error) {
	src := filepath.Join(s.opt.Dir, name)
	base := name[:len(name)-len(ActiveExt)]
	c := s.opt.Compression
	if s.opt.CompressionFor != nil {
		c = s.opt.CompressionFor(name)
	}
	ext := c.Ext()
	dst := filepath.Join(s.opt.Dir, base+ext)
	tmp := dst + ".tmp"

	in, err := os.Open(src)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if err == nil || renamed {
			return // a failure after the rename is left to the next start
		}
		os.Remove(tmp) // on a full disk, the space it took
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			err = errAgain{err}
		}
	}()
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	// The compressor writes a few hundred bytes at a time: buffered, that
	// is one write(2) per 64 KiB.
	bw := bufio.NewWriterSize(out, 64<<10)
	st, err := in.Stat()
	if err != nil {
		return err
	}
	ix := newIndexer(name, st.Size(), s.memberBytes())
	mw := newMemberWriter(bw, c, s.memberBytes(), ix)
	if _, err := io.Copy(mw, stopReader{bufio.NewReaderSize(in, 256<<10), s.stop}); err != nil {
		return err
	}
	ix.finish()
	if err := mw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	gz, err := os.Stat(tmp)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	renamed = true
	if err := atomicfile.SyncDir(s.opt.Dir); err != nil {
		return err
	}
	ix.entry.Segment = base + ext
	line, err := json.Marshal(ix.entry)
	if err != nil {
		return err
	}
	indexed := s.opt.KeepIndexLine == nil || s.opt.KeepIndexLine(ix.entry.Segment, line)
	if indexed {
		var members [][]byte
		if ix.members != nil {
			members = append(ix.memberSection, mw.offsets())
		}
		if err := writeFilters(s.opt.Dir, ix.entry.Segment, ix.leads, ix.pseudonyms, members...); err != nil {
			return fmt.Errorf("write index filters: %w", err)
		}
		if err := appendIndex(s.opt.Dir, line); err != nil {
			return fmt.Errorf("write index: %w", err)
		}
	}
	if err := os.Remove(src); err != nil {
		return err
	}
	s.bytes.Add(gz.Size() - st.Size())
	s.log.Debug("store: segment compressed", "segment", base+ext)
	// Once the compression is complete: a reader must never find the
	// segment twice while the agent writes the record.
	if indexed && s.opt.OnIndexed != nil {
		if err := s.opt.OnIndexed(s.stop, ix.entry.Segment, line); err != nil {
			s.log.Warn("store: the index line was not attested; verify rebuilds it from the segment", "segment", ix.entry.Segment, "error", err)
		}
	}
	return nil
}

// memberBytes is where compression cuts members (Options.MemberBytes).
func (s *Store) memberBytes() int {
	switch b := s.opt.MemberBytes; {
	case b == 0:
		return DefaultMemberBytes
	case b < 0:
		return 0
	default:
		return b
	}
}

// ApplyRetention asks the background goroutine to apply retention now.
func (s *Store) ApplyRetention() {
	select {
	case s.retain <- struct{}{}:
	default: // one is pending
	}
}

// applyRetention deletes compressed segments older than the retention,
// oldest first, never one that a reader still needs; BeforeDelete hears
// of them first.
func (s *Store) applyRetention() {
	if s.opt.Retention <= 0 {
		return
	}
	old, through, err := s.expired()
	if err != nil {
		s.log.Error("store: retention", "error", err)
		return
	}
	if len(old) == 0 {
		return
	}
	if s.opt.BeforeDelete != nil {
		names := make([]string, len(old))
		for i, seg := range old {
			names[i] = seg.Name
		}
		if err := s.opt.BeforeDelete(s.stop, through, names); err != nil {
			s.log.Warn("store: retention postponed", "error", err)
			return
		}
	}
	for _, seg := range old {
		path := filepath.Join(s.opt.Dir, seg.Name)
		fi, err := os.Stat(path)
		if err == nil {
			err = os.Remove(path)
		}
		if err != nil {
			s.log.Error("store: retention delete", "segment", seg.Name, "error", err)
			return
		}
		if err := removeFilters(s.opt.Dir, seg.Name); err != nil {
			s.log.Warn("store: retention: the segment's index filters stay", "segment", seg.Name, "error", err)
		}
		s.segments.Add(-1)
		s.bytes.Add(-fi.Size())
		s.log.Info("store: segment deleted by retention", "segment", seg.Name, "age", s.opt.Now().Sub(fi.ModTime()).Round(time.Second))
	}
}

// expired lists the oldest compressed segments past the retention that no
// reader needs, and the last seq they hold.
func (s *Store) expired() (old []Segment, through uint64, err error) {
	segs, err := List(s.opt.Dir)
	if err != nil {
		return nil, 0, err
	}
	cutoff := s.opt.Now().Add(-s.opt.Retention)
	for i, seg := range segs {
		if !seg.Compressed || i+1 >= len(segs) {
			break
		}
		end := segs[i+1].First - 1 // a segment ends where the next begins
		if s.opt.Keep != nil && end >= s.opt.Keep() {
			break
		}
		fi, err := os.Stat(filepath.Join(s.opt.Dir, seg.Name))
		if err != nil || fi.ModTime().After(cutoff) {
			break
		}
		old, through = append(old, seg), end
	}
	return old, through, nil
}

// lastLine returns the last line of a (compressed) segment, reading it
// whole: neither gzip nor zstd can be read backwards.
func lastLine(dir string, seg Segment) ([]byte, error) {
	r, err := OpenSegment(dir, seg)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var last []byte
	for {
		line, err := r.Next()
		if err == io.EOF {
			return last, nil
		}
		if err != nil {
			return nil, err
		}
		last = append(last[:0], line...)
	}
}

// birthTime is when the file was created, where the filesystem knows it;
// otherwise now (the segment's age then counts from this start).
func birthTime(path string, now time.Time) time.Time {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_BTIME, &st); err == nil && st.Mask&unix.STATX_BTIME != 0 {
		return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
	}
	return now
}

// CompressRotated compresses and indexes, now, every rotated segment of the
// store in opt.Dir that is not compressed yet (opt.MemberBytes applies).
// It is for tools that build a store offline; the agent does this in the
// background.
func CompressRotated(opt Options) error {
	dir := opt.Dir
	segs, err := List(dir)
	if err != nil || len(segs) == 0 {
		return err
	}
	s := &Store{opt: Options{Dir: dir, MemberBytes: opt.MemberBytes, Compression: opt.Compression}, log: slog.New(slog.DiscardHandler), stop: make(chan struct{})}
	for _, seg := range segs[:len(segs)-1] { // the last one is active
		if !seg.Compressed {
			if err := s.compress(seg.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

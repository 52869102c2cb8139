package tailer

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// When the writer rotates several times between two looks, the path already
// names a newer file than the one after ours; the files in between must be
// read first. Rotated files keep their birth time, so the successor of a
// file is the earliest-born file of the same name family born after it.
// Copies made by copytruncate also look new: they are recognised by first
// bytes already read and skipped.

const maxConsumed = 64

// consumed remembers the first bytes of files read to the end (or truncated),
// so that copies of them are not read again.
func (t *Tailer) consumed(head []byte) {
	if len(head) == 0 {
		return
	}
	if len(t.heads) == maxConsumed {
		t.heads = t.heads[1:]
	}
	t.heads = append(t.heads, bytes.Clone(head))
}

func (t *Tailer) isCopy(head []byte) bool {
	for _, h := range t.heads {
		if bytes.Equal(h, head) || len(h) == FingerprintBytes && bytes.HasPrefix(head, h) {
			return true
		}
	}
	// Read by an earlier run: the copy outlived the restart.
	return len(head) >= FingerprintBytes && t.seenFP[fingerprint(head[:FingerprintBytes])]
}

// birth returns when the open file was created, if the filesystem knows.
func birth(f *os.File) (time.Time, bool) {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_BTIME, &st); err != nil || st.Mask&unix.STATX_BTIME == 0 {
		return time.Time{}, false
	}
	return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec)), true
}

// successor opens the file to read after the one born at born with the given
// device and inode, or returns nil to read the path itself.
func (t *Tailer) successor(born time.Time, dev, ino uint64) *os.File {
	if born.IsZero() {
		return nil
	}
	dir, base := filepath.Dir(t.opt.Path), filepath.Base(t.opt.Path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type cand struct {
		f      *os.File
		born   time.Time
		ino    uint64
		isPath bool
	}
	var cands []cand
	pathInfo, _ := os.Stat(t.opt.Path)
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, base) || strings.HasSuffix(name, ".gz") {
			continue
		}
		f, err := openRegular(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		fi, ferr := f.Stat()
		b, ok := birth(f)
		if ferr != nil || !ok || b.Before(born) || fi.Size() == 0 && !os.SameFile(pathInfo, fi) {
			// An empty file that is not the path has nothing to read.
			f.Close()
			continue
		}
		d, i := devIno(fi)
		if d == dev && i == ino {
			f.Close()
			continue
		}
		cands = append(cands, cand{f, b, i, pathInfo != nil && os.SameFile(pathInfo, fi)})
	}
	// Birth times come from the kernel's coarse clock (a few milliseconds),
	// so files rotated in quick succession tie: the path is always the
	// newest, and inode numbers usually grow with creation.
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.isPath != b.isPath {
			return b.isPath
		}
		if !a.born.Equal(b.born) {
			return a.born.Before(b.born)
		}
		return a.ino < b.ino
	})
	var next *os.File
	for _, c := range cands {
		if next != nil || c.isPath {
			c.f.Close()
			continue
		}
		head, err := readHead(c.f, FingerprintBytes)
		if err != nil || t.isCopy(head) {
			c.f.Close()
			continue
		}
		next = c.f
	}
	return next
}

// original opens the file with the given device and inode: the path, if it
// still is that file, else one in its directory it was renamed to (not
// when empty); nil when it is gone.
func (t *Tailer) original(dev, ino uint64) *os.File {
	if f, err := openRegular(t.opt.Path); err == nil {
		if fi, err := f.Stat(); err == nil {
			if d, i := devIno(fi); d == dev && i == ino {
				return f
			}
		}
		f.Close()
	}
	dir := filepath.Dir(t.opt.Path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		name := filepath.Join(dir, e.Name())
		if !e.Type().IsRegular() || name == t.opt.Path || strings.HasSuffix(name, ".gz") {
			continue
		}
		f, err := openRegular(name)
		if err != nil {
			continue
		}
		if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
			if d, i := devIno(fi); d == dev && i == ino {
				return f
			}
		}
		f.Close()
	}
	return nil
}

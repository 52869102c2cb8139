package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"golang.org/x/sys/unix"
)

// checkLinked makes sure the active segment is still in the directory
// after a commit: a file deleted under the agent (rm, or the whole data
// dir removed) takes appends and fsyncs silently, and its records would be
// counted durable and lost at the next restart. While the agent holds the
// file open its bytes are still there: restoreActive copies them back.
func (s *Store) checkLinked() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(s.f.Fd()), &st); err != nil {
		return fmt.Errorf("stat active segment: %w", err)
	}
	if st.Nlink > 0 {
		return nil
	}
	return s.restoreActive()
}

// restoreActive writes the open, deleted active segment back under its
// name and appends to the copy from now on.
func (s *Store) restoreActive() error {
	path := filepath.Join(s.opt.Dir, SegmentName(s.first, ActiveExt))
	s.log.Error("STORE: THE ACTIVE SEGMENT WAS DELETED under the running agent (or its data dir was): restoring it from the open file, nothing it held is lost; "+
		"find what deletes files in the data dir: anything else it deleted (rotated segments, keys, checkpoints) is gone", "segment", path)
	s.Restored.Add(1)
	if err := os.MkdirAll(s.opt.Dir, 0o700); err != nil {
		return fmt.Errorf("restore active segment: %w", err)
	}
	tmp := path + ".restore"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("restore active segment: %w", err)
	}
	_, err = io.Copy(out, io.NewSectionReader(s.f, 0, s.size))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = atomicfile.SyncDir(s.opt.Dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore active segment: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("restore active segment: %w", err)
	}
	s.f.Close()
	s.f = f
	return nil
}

// Package atomicfile owns crash-safe small-file writes: a whole new content
// or the old one, never a torn file, and directory entries made durable.
package atomicfile

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path through a synced temporary file and a
// rename, so that a crash leaves either the old or the new content.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteParts(path, perm, data)
}

// WriteParts is WriteFile of the concatenation of parts, written one
// after the other rather than copied together first.
func WriteParts(path string, perm os.FileMode, parts ...[]byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	for _, data := range parts {
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that renames and creations in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Append adds data to the end of path (created with perm if missing) and
// fsyncs it. A crash can leave a torn last line, which readers skip.
func Append(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

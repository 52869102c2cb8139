// Package atomicfile owns crash-safe small-file writes: a whole new content
// or the old one, never a torn file, and directory entries made durable.
package atomicfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
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

// Append adds data, JSON object lines, to the end of path (created with
// perm if missing) and fsyncs it. A write that fails part way (a full
// disk) is cut back off. A last line a crash left without its newline is
// ended first when it is a whole JSON object, else cut off: either way
// data starts a line of its own rather than being lost in the torn one.
func Append(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	created := errors.Is(err, fs.ErrNotExist)
	if created {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, perm)
	}
	if err != nil {
		return err
	}
	size, err := endTornLine(f)
	if err == nil {
		if _, err = f.Write(data); err != nil {
			f.Truncate(size) // best effort: the disk may still be full
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && created {
		err = SyncDir(filepath.Dir(path))
	}
	return err
}

// endTornLine makes f, opened for appending, end with a newline (or be
// empty) and returns its size then.
func endTornLine(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	last := []byte{'\n'}
	if size > 0 {
		if _, err := f.ReadAt(last, size-1); err != nil {
			return 0, err
		}
	}
	if last[0] == '\n' {
		return size, nil
	}
	start, err := lastLineStart(f, size)
	if err != nil {
		return 0, err
	}
	if oneJSONObject(io.NewSectionReader(f, start, size-start)) {
		_, err := f.Write([]byte{'\n'})
		return size + 1, err
	}
	return start, f.Truncate(start)
}

// oneJSONObject reports whether r holds exactly one JSON object, as every
// line of the files appended to is, read as a stream of tokens: a
// dead-letter line can hold megabytes of records.
func oneJSONObject(r io.Reader) bool {
	d := json.NewDecoder(r)
	depth, values := 0, 0
	for first := true; ; first = false {
		tok, err := d.Token()
		if err == io.EOF {
			return values == 1 && depth == 0
		}
		if err != nil || values > 0 || first && tok != json.Delim('{') {
			return false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			values++
		}
	}
}

// lastLineStart returns where the line that ends f, at size, starts.
func lastLineStart(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		n := min(end, int64(len(buf)))
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, nil
		}
		end -= n
	}
	return 0, nil
}

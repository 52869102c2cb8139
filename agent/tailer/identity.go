package tailer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// FingerprintBytes is how many leading bytes of a file take part in its
// identity. Two files with the same device and inode but different first
// bytes (inode reuse, truncate-and-rewrite) are different files.
const FingerprintBytes = 64

// ID identifies a source file as "device:inode:fingerprint", where the
// fingerprint is a hash of the file's first min(64, end) bytes and end is
// the offset just after the line that carries the ID. Only bytes already read
// take part, so an ID can be recomputed later from the same file.
type ID struct {
	Dev, Ino uint64
	FP       string // 16 hex digits
}

func (id ID) String() string {
	return strconv.FormatUint(id.Dev, 10) + ":" + strconv.FormatUint(id.Ino, 10) + ":" + id.FP
}

// ParseID is the inverse of ID.String.
func ParseID(s string) (ID, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return ID{}, fmt.Errorf("source id %q: want dev:inode:fingerprint", s)
	}
	dev, err1 := strconv.ParseUint(parts[0], 10, 64)
	ino, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return ID{}, fmt.Errorf("source id %q: %w", s, err)
	}
	return ID{Dev: dev, Ino: ino, FP: parts[2]}, nil
}

func fingerprint(head []byte) string {
	sum := sha256.Sum256(head)
	return hex.EncodeToString(sum[:8])
}

func devIno(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

// readHead reads up to n leading bytes of f.
func readHead(f *os.File, n int) ([]byte, error) {
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:m], nil
}

// matches reports whether the open file f is the file named by id, as it
// was when end bytes of it had been read.
func matches(f *os.File, fi os.FileInfo, id ID, end int64) bool {
	dev, ino := devIno(fi)
	if dev != id.Dev || ino != id.Ino {
		return false
	}
	return hasPrefixFP(f, fi, id, end)
}

// hasPrefixFP reports whether f is at least end bytes long and its first
// bytes have id's fingerprint, whatever its inode (a copy made by
// copytruncate has the same first bytes under another inode).
func hasPrefixFP(f *os.File, fi os.FileInfo, id ID, end int64) bool {
	if fi.Size() < end {
		return false
	}
	head, err := readHead(f, int(min(end, FingerprintBytes)))
	if err != nil || int64(len(head)) < min(end, FingerprintBytes) {
		return false
	}
	return fingerprint(head) == id.FP
}

// ErrNotRegular: the source path names something other than a regular file
// (a named pipe, a device, a socket, a directory). The tailer resumes by
// byte offset, which only a regular file keeps.
var ErrNotRegular = errors.New("not a regular file")

// openRegular opens name for reading if it is a regular file. O_NONBLOCK
// keeps the open of a named pipe from waiting for a writer; it changes
// nothing for a regular file.
func openRegular(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is a %s: %w", name, fileKind(fi.Mode()), ErrNotRegular)
	}
	return f, nil
}

// CheckSource returns ErrNotRegular (wrapped, with what it is) when path
// exists and is not a regular file; nil when it is one or does not exist yet.
func CheckSource(path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("%s is a %s: %w", path, fileKind(fi.Mode()), ErrNotRegular)
}

func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeDevice != 0:
		return "device"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

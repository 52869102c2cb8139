// Package lock owns the one-agent-per-data-dir rule: `tailseal run` holds
// an exclusive flock(2) on $TAILSEAL_DATA_DIR/lock for as long as it runs,
// and the file names the holder's pid. The kernel drops the lock when the
// process ends, kill -9 included, so a stale lock file never blocks a
// restart. Read commands take no lock. It imports only the standard library
// and golang.org/x/sys/unix.
package lock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// File is the lock file's name inside the data directory.
const File = "lock"

// ErrHeld means another process holds the data directory.
var ErrHeld = errors.New("data directory in use")

// HeldError says which data directory is held, and by which pid when the
// lock file names one.
type HeldError struct {
	Dir string
	PID int // 0 when unknown
}

func (e *HeldError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = "process " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("%s: %s is already running an agent on it (lock %s); one agent per data directory: stop it, or give this one its own TAILSEAL_DATA_DIR",
		e.Dir, who, filepath.Join(e.Dir, File))
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// Lock is a held data directory.
type Lock struct{ f *os.File }

// Acquire takes the lock of dir, creating dir (0700) and the lock file if
// needed, without waiting: a held lock is a *HeldError at once.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, File)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &HeldError{Dir: dir, PID: Holder(dir)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock: %w", err)
	}
	return &Lock{f: f}, nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// Holder is the pid the lock file of dir names, 0 when none.
func Holder(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Held reports whether a process holds the lock of dir now.
func Held(dir string) bool {
	f, err := os.Open(filepath.Join(dir, File))
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
		return true
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// Release gives the lock up. The file stays: the next agent reuses it.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}

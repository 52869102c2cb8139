package lock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestAcquireIsExclusive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !Held(dir) || Holder(dir) != os.Getpid() {
		t.Fatalf("held %v by %d, want by %d", Held(dir), Holder(dir), os.Getpid())
	}
	// flock locks belong to open file descriptions: a second open in this
	// process conflicts like another process would.
	_, err = Acquire(dir)
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrHeld) || held.PID != os.Getpid() || held.Dir != dir {
		t.Fatalf("second Acquire: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if Held(dir) {
		t.Fatal("still held after Release")
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("after Release: %v", err)
	}
	l2.Release()
}

// A lock held by another process, as flock(1) holds it, is refused.
func TestHeldByAnotherProcess(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) is not installed")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, File), nil, 0o600)
	cmd := exec.Command("flock", filepath.Join(dir, File), "cat")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	// cat runs once flock holds the lock: wait for its echo.
	stdin.Write([]byte("x\n"))
	buf := make([]byte, 2)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir); !errors.Is(err, ErrHeld) {
		t.Fatalf("Acquire with flock(1) holding it: %v", err)
	}
}

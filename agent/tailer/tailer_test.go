package tailer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fixture is a source directory and a tailer on it, read with backpressure:
// the test decides when the tailer may go on, so "the agent is behind" is a
// state the test creates, not a race it hopes for.
type fixture struct {
	t      *testing.T
	path   string
	opt    Options
	tl     *Tailer
	cancel context.CancelFunc
	done   chan error
	next   int // next line number to write
}

type got struct {
	text           string
	offset, length int64
	truncated      bool
	id             string
}

func newFixture(t *testing.T, opt Options) *fixture {
	dir := t.TempDir()
	f := &fixture{t: t, path: filepath.Join(dir, "audit.log"), done: make(chan error, 1)}
	opt.Path = f.path
	if opt.MaxLine == 0 {
		opt.MaxLine = 1 << 20
	}
	if opt.BufSize == 0 {
		opt.BufSize = 4096 // small batches: four of them hold few lines
	}
	opt.PollInterval = 50 * time.Millisecond
	if testing.Verbose() {
		opt.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f.opt = opt
	return f
}

// start runs a new tailer from pos (zero: the start of the source).
func (f *fixture) start(pos Position) {
	opt := f.opt
	opt.Start = pos
	f.tl = New(opt)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.tl.Run(ctx) }()
	f.t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	for b := range f.tl.Batches() {
		f.tl.Release(b)
	}
	if err := <-f.done; err != nil {
		f.t.Errorf("Run: %v", err)
	}
	f.cancel = nil
}

func line(n int) string { return fmt.Sprintf(`{"n":%06d,"pad":"%s"}`, n, strings.Repeat("x", 60)) }

// write appends k numbered lines to name (the source if empty).
func (f *fixture) write(k int) {
	f.t.Helper()
	file, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	var b strings.Builder
	for range k {
		b.WriteString(line(f.next) + "\n")
		f.next++
	}
	if _, err := file.WriteString(b.String()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) appendRaw(s string) {
	f.t.Helper()
	file, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	file.WriteString(s)
}

// hold receives one batch and keeps it: with all batches held or queued the
// tailer stops reading until release.
func (f *fixture) hold() *Batch {
	f.t.Helper()
	select {
	case b := <-f.tl.Batches():
		return b
	case <-time.After(10 * time.Second):
		f.t.Fatal("no batch within 10s")
		return nil
	}
}

// collect reads lines until n have arrived, starting with held batches.
func (f *fixture) collect(n int, held ...*Batch) []got {
	f.t.Helper()
	var out []got
	take := func(b *Batch) {
		for _, l := range b.Lines {
			out = append(out, got{string(l.Data), l.Offset, l.Length, l.Truncated, l.ID})
		}
		f.tl.Release(b)
	}
	for _, b := range held {
		take(b)
	}
	deadline := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case b := <-f.tl.Batches():
			take(b)
		case <-deadline:
			f.t.Fatalf("got %d lines, want %d", len(out), n)
		}
	}
	return out
}

// wantSequence checks lines 0..n-1 arrived in order, each once.
func wantSequence(t *testing.T, lines []got, n int) {
	t.Helper()
	if len(lines) != n {
		t.Fatalf("got %d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		if l.text != line(i) {
			t.Fatalf("line %d is %.30q, want %.30q (lost, repeated or torn)", i, l.text, line(i))
		}
	}
}

func TestPartialLineIsHeld(t *testing.T) {
	f := newFixture(t, Options{})
	f.appendRaw("{\"a\":1}\n{\"b\":")
	f.start(Position{})
	first := f.collect(1)
	f.appendRaw("2}\n")
	second := f.collect(1)
	if first[0].text != `{"a":1}` || second[0].text != `{"b":2}` {
		t.Fatalf("got %q then %q", first[0].text, second[0].text)
	}
	if second[0].offset != 8 || second[0].length != 8 {
		t.Errorf("second line at %d+%d, want 8+8", second[0].offset, second[0].length)
	}
}

func TestOverlongLine(t *testing.T) {
	f := newFixture(t, Options{MaxLine: 1024})
	long := strings.Repeat("y", 100000)
	f.appendRaw(long + "\n{\"after\":1}\n")
	f.start(Position{})
	lines := f.collect(2)
	if !lines[0].truncated || lines[0].length != int64(len(long)+1) || len(lines[0].text) != 1024 {
		t.Errorf("long line: truncated %v length %d kept %d", lines[0].truncated, lines[0].length, len(lines[0].text))
	}
	if lines[1].text != `{"after":1}` || lines[1].offset != int64(len(long)+1) {
		t.Errorf("next line %q at %d", lines[1].text, lines[1].offset)
	}
}

// Several rename rotations happen while the tailer is behind: the files in
// between are read in order, the path last.
func TestSuccessiveRotationsWhileBehind(t *testing.T) {
	f := newFixture(t, Options{})
	f.write(1000)
	f.start(Position{})
	held := f.hold()
	for i := 1; i <= 3; i++ {
		if err := os.Rename(f.path, fmt.Sprintf("%s.%d", f.path, i)); err != nil {
			t.Fatal(err)
		}
		f.write(500)
	}
	wantSequence(t, f.collect(f.next, held), f.next)
}

// The file is copied, truncated and rewritten past the tailer's offset while
// the tailer is behind: it must not read new bytes at old offsets, and the
// lines it had not read come from the copy.
func TestCopyTruncateRewriteWhileBehind(t *testing.T) {
	f := newFixture(t, Options{})
	f.write(1000)
	f.start(Position{})
	held := f.hold()
	data, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.path+".1", data, 0o644)
	os.Truncate(f.path, 0)
	f.write(1500) // longer than before: size alone shows no truncation
	lines := f.collect(f.next, held)
	wantSequence(t, lines, f.next)
	if f.tl.Stats.Truncations.Load() == 0 {
		t.Error("truncation not counted")
	}
}

func TestResumeAfterRenameWhileStopped(t *testing.T) {
	f := newFixture(t, Options{})
	f.write(300)
	f.start(Position{})
	lines := f.collect(300)
	f.stop()
	last := lines[len(lines)-1]

	f.write(200) // after the stop, before the rotation
	if err := os.Rename(f.path, f.path+".1"); err != nil {
		t.Fatal(err)
	}
	f.write(100)
	f.start(Position{ID: last.id, Offset: last.offset + last.length})
	wantSequence(t, append(lines, f.collect(300)...), 600)
}

// stoppedThenCopyTruncated reads 300 lines and stops; then, while it is
// stopped, 20 lines more come, the file is copied to .1 and truncated, and
// 150 lines come to the truncated file. It returns the lines read and
// where to resume.
func (f *fixture) stoppedThenCopyTruncated() ([]got, Position) {
	f.t.Helper()
	f.write(300)
	f.start(Position{})
	lines := f.collect(300)
	f.stop()
	last := lines[len(lines)-1]
	f.write(20) // after the stop: only in the copy
	data, err := os.ReadFile(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.path+".1", data, 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Truncate(f.path, 0); err != nil {
		f.t.Fatal(err)
	}
	f.write(150)
	return lines, Position{ID: last.id, Offset: last.offset + last.length}
}

// Stopped in a file that is then copied and truncated, written again and
// renamed away (copytruncate, then rename rotations, all while stopped):
// the rest comes from the copy, then the lines the truncated file got
// before its rename, then the path. (The endurance test's kill -9 cycles
// found the middle part lost: the copy was born after the renamed file,
// so no successor by birth time led to it.)
func TestResumeAfterCopyTruncateThenRenameWhileStopped(t *testing.T) {
	f := newFixture(t, Options{})
	lines, pos := f.stoppedThenCopyTruncated()
	if err := os.Rename(f.path, f.path+".2"); err != nil {
		t.Fatal(err)
	}
	f.write(100)
	f.start(pos)
	wantSequence(t, append(lines, f.collect(270)...), 570)
}

// Copied and truncated twice while stopped: the second copy holds the
// lines between the two truncations, and is read before the path.
func TestResumeAfterTwoCopyTruncatesWhileStopped(t *testing.T) {
	f := newFixture(t, Options{})
	lines, pos := f.stoppedThenCopyTruncated()
	data, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path+".2", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f.path, 0); err != nil {
		t.Fatal(err)
	}
	f.write(100)
	f.start(pos)
	wantSequence(t, append(lines, f.collect(270)...), 570)
}

// The same with the truncated file still at the path when the tailer
// starts, renamed only once it reads it: nothing lost or read twice.
func TestResumeAfterCopyTruncateWhileStoppedThenRename(t *testing.T) {
	f := newFixture(t, Options{})
	lines, pos := f.stoppedThenCopyTruncated()
	f.start(pos)
	lines = append(lines, f.collect(170)...)
	if err := os.Rename(f.path, f.path+".2"); err != nil {
		t.Fatal(err)
	}
	f.write(100)
	wantSequence(t, append(lines, f.collect(100)...), 570)
}

// The kernel drops events when a watcher's queue is full. Shrinking the
// queue (root only: it is a system setting, restored at once) makes a real
// overflow while the tailer is held; with no poll to fall back on it must
// still deliver every line, across a rotation whose events were dropped.
func TestInotifyOverflow(t *testing.T) {
	const knob = "/proc/sys/fs/inotify/max_queued_events"
	old, err := os.ReadFile(knob)
	if err != nil || os.WriteFile(knob, []byte("16"), 0o644) != nil {
		t.Skip("needs root to shrink the inotify queue")
	}
	t.Cleanup(func() { os.WriteFile(knob, old, 0o644) })
	f := newFixture(t, Options{})
	f.opt.PollInterval = time.Hour
	f.write(1000)
	f.start(Position{}) // the watcher is created with a 16-event queue
	held := f.hold()
	os.WriteFile(knob, old, 0o644)
	// inotify merges identical consecutive events, so make distinct ones:
	// more than fsnotify's 1024-event buffer plus the kernel queue.
	for i := range 3000 {
		os.WriteFile(filepath.Join(filepath.Dir(f.path), fmt.Sprintf("noise-%d", i)), nil, 0o644)
		if i%10 == 0 {
			f.write(1)
		}
	}
	os.Rename(f.path, f.path+".1")
	for range 50 {
		f.write(1)
	}
	wantSequence(t, f.collect(f.next, held), f.next)
	f.write(10) // and it keeps following afterwards
	if got := f.collect(10); got[9].text != line(f.next-1) {
		t.Fatalf("after the overflow: %q", got[9].text)
	}
	if f.tl.Stats.Overflows.Load() == 0 {
		t.Error("no overflow was reported: the test did not test it")
	}
}

// A named pipe at the path is not opened for reading (that would wait for a
// writer and lose what the pipe held at a restart): the tailer says so and
// waits; a regular file put there later is read from its start.
func TestNamedPipeAtPath(t *testing.T) {
	f := newFixture(t, Options{})
	if err := syscall.Mkfifo(f.path, 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	f.opt.Logger = slog.New(slog.NewTextHandler(logFile, nil))
	logs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	f.start(Position{})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs(), "is a named pipe: not a regular file") {
		if time.Now().After(deadline) {
			t.Fatalf("no error about the named pipe within 10s; log:\n%s", logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	f.write(100)
	wantSequence(t, f.collect(100), 100)
	if n := strings.Count(logs(), "is a named pipe"); n != 1 {
		t.Errorf("the named pipe was reported %d times, want once", n)
	}
}

// Stop while the reader is behind (the consumer holds every batch) still
// delivers every complete line written before it, then ends Run; the
// partial last line stays unread for the next run.
func TestStopReadsToTheEnd(t *testing.T) {
	f := newFixture(t, Options{})
	f.write(1000) // far more than the four 4 KiB batches hold
	f.start(Position{})
	held := f.hold()
	f.write(500)
	f.appendRaw(`{"partial":`)
	f.tl.Stop()
	lines := f.collect(f.next, held)
	for b := range f.tl.Batches() { // closed when Run returns
		for _, l := range b.Lines {
			lines = append(lines, got{text: string(l.Data)})
		}
		f.tl.Release(b)
	}
	wantSequence(t, lines, f.next)
	last := lines[len(lines)-1]
	if end := last.offset + last.length; end != int64(f.next*len(line(0)+"\n")) {
		t.Errorf("last line ends at %d, before the partial line", end)
	}
	f.stop()
}

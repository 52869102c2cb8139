// Package tailer makes one path look like one perpetual source of complete
// lines, each with the exact identity and byte range it came from. It follows
// the path across rename rotation (reading the old file to its end first),
// copytruncate and truncation, deletion and re-creation; it holds a partial
// last line until its newline arrives; and it resumes exactly where a
// previous run stopped, reading the rest of a file renamed in between.
//
// Reads use pread at offsets the tailer counts itself, so offsets are exact
// by construction. fsnotify watches the directory (not the file) to wake the
// reader; a poll timer is the safety net for lost or overflowed events.
package tailer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options configure a Tailer.
type Options struct {
	Path         string
	MaxLine      int           // longer lines are delivered Truncated
	PollInterval time.Duration // how often to look without a notification
	BufSize      int           // read size; default 128 KiB
	Start        Position      // where a previous run stopped; zero: start of Path
	// Seen are the ids of files a previous run read (from the store): a
	// file whose first bytes match one of them is a copy of lines already
	// stored (copytruncate), not a rotated file to read.
	Seen   []string
	Logger *slog.Logger
}

// Position is where a previous run stopped: the file and the offset just
// after the last line it stored.
type Position struct {
	ID     string
	Offset int64
}

// Line is one complete line.
type Line struct {
	Data      []byte // without the newline; valid until the batch is released
	Offset    int64  // of the first byte in the source file
	Length    int64  // bytes consumed from the source, newline included
	Truncated bool   // longer than MaxLine: Data holds only a prefix
	File      string // JSON string token of the file's base name
	ID        string // identity of the source file, see ID
}

// Batch is a group of lines read together.
type Batch struct {
	Lines []Line
	buf   []byte
}

// Stats are counters a caller may export.
type Stats struct {
	Lines, Bytes, Rotations, Truncations, Overflows atomic.Uint64
}

const (
	// 128 KiB: against 256 KiB the agent's peak RSS is 4 MiB lower (every
	// stage of the pipeline holds a batch) for the same lines/s; 64 KiB
	// saves 1 MiB more but costs a fifth of the lines/s (docs/performance.md).
	defaultBufSize = 128 << 10
	previewBytes   = 64 << 10 // kept of an overlong line
	batches        = 4
)

// Tailer reads lines from Options.Path. Create it with New, consume Batches
// and give each back with Release.
type Tailer struct {
	opt   Options
	log   *slog.Logger
	out   chan *Batch
	free  chan *Batch
	Stats Stats

	f         *os.File
	name      []byte // JSON token of f's base name
	dev       uint64
	ino       uint64
	head      []byte // first bytes of f, up to FingerprintBytes
	born      time.Time
	lastLook  time.Time       // files born after it were made since the last check
	rewritten bool            // a read saw the first bytes change
	heads     [][]byte        // first bytes of files already read, see successor
	seenFP    map[string]bool // fingerprints of files read by earlier runs
	fullID    string          // ID once head is complete
	readOff   int64           // next byte of f to read
	waiting   string          // why the path could not be opened, as last logged
	// copyOf is the truncated file (device, inode) whose copy is being
	// read: its lines written after the truncation come next, from
	// wherever it was renamed to since (see leave).
	copyOf struct {
		dev, ino uint64
		set      bool
	}

	resumed     chan struct{} // closed once the previous run's position is recovered
	stop        chan struct{} // closed by Stop
	stopOnce    sync.Once
	stopAt      int64        // once stopping: f's size when first looked at since; -1 not yet
	lagBytes    atomic.Int64 // source bytes not read yet, as of the last look
	behindSince atomic.Int64 // unix nanos of the last time the reader was caught up
	lagChecked  time.Time

	cur     *Batch
	start   int   // index in cur.buf where the pending line starts
	pendOff int64 // source offset of the pending line
	skipped int64 // bytes of an overlong pending line not kept in cur.buf
}

// New returns a Tailer; call Run to start it.
func New(opt Options) *Tailer {
	if opt.BufSize <= 0 {
		opt.BufSize = defaultBufSize
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tailer{opt: opt, log: opt.Logger, out: make(chan *Batch, batches-1), free: make(chan *Batch, batches),
		resumed: make(chan struct{}), stop: make(chan struct{}), stopAt: -1}
	for range batches {
		t.free <- &Batch{buf: make([]byte, 0, opt.BufSize)}
	}
	t.seenFP = map[string]bool{}
	for _, s := range opt.Seen {
		if id, err := ParseID(s); err == nil {
			t.seenFP[id.FP] = true
		}
	}
	return t
}

// Batches delivers lines in order. It is closed when Run returns.
func (t *Tailer) Batches() <-chan *Batch { return t.out }

// Release gives a consumed batch back for reuse.
func (t *Tailer) Release(b *Batch) {
	b.Lines = b.Lines[:0]
	b.buf = b.buf[:0]
	t.free <- b
}

// Run follows the path until Stop or until ctx is done, then returns nil.
// A partial line at the end is not delivered: the next run reads it again
// from the last stored offset. An error means the source cannot be read
// any more.
func (t *Tailer) Run(ctx context.Context) error {
	defer close(t.out)
	defer t.closeFile()
	err := t.run(ctx)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

func (t *Tailer) run(ctx context.Context) error {

	w, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		t.log.Warn("no file notifications; polling only", "error", err)
	} else {
		defer w.Close()
	}
	watching := false
	dir := filepath.Dir(t.opt.Path)
	poll := time.NewTicker(t.opt.PollInterval)
	defer poll.Stop()

	if err := t.resume(ctx); err != nil {
		return err
	}
	close(t.resumed)
	waited := false
	for ctx.Err() == nil {
		if w != nil && !watching {
			if err := w.Add(dir); err == nil {
				watching = true
			} else if !waited {
				t.log.Info("waiting for the source directory", "dir", dir, "error", err)
			}
		}
		if t.f == nil {
			t.waitFor(t.openPath())
		}
		if t.f != nil {
			if err := t.readToEOF(ctx); err != nil {
				return err
			}
			switched, err := t.check(ctx)
			if err != nil {
				return err
			}
			if switched {
				continue
			}
		}
		if t.stopping() {
			return nil
		}
		waited = true
		if err := t.wait(ctx, w, poll.C); err != nil {
			return err
		}
	}
	return nil
}

// Stop makes Run finish: it reads the file it is in up to the size that
// file has when Run sees the request (an application that keeps writing
// cannot hold it), follows a rotation or truncation found there as usual,
// delivers every complete line and returns nil. A partial last line stays
// unread, as when ctx ends; cancelling ctx still stops at once, between
// two reads. The application's lines written before Stop are delivered
// whether the reader was caught up or behind.
func (t *Tailer) Stop() { t.stopOnce.Do(func() { close(t.stop) }) }

func (t *Tailer) stopping() bool {
	select {
	case <-t.stop:
		return true
	default:
		return false
	}
}

// readToStop reports whether, once stopping, f is read up to the size it
// had when the tailer first looked after Stop.
func (t *Tailer) readToStop() bool {
	if !t.stopping() {
		return false
	}
	if t.stopAt < 0 {
		fi, err := t.f.Stat()
		if err != nil {
			return true
		}
		t.stopAt = fi.Size()
	}
	return t.readOff >= t.stopAt
}

// waitFor says why the source cannot be opened, once per reason: it is not
// there yet (said once: between a rotation and the new file it is normal),
// it is not a regular file (a named pipe cannot give back what it held at a
// restart, so the tailer waits for a regular file at the path), or another
// error.
func (t *Tailer) waitFor(err error) {
	const appear = "waiting for the source file to appear"
	if err == nil {
		if t.waiting != appear {
			t.waiting = ""
		}
		return
	}
	msg, level := appear, slog.LevelInfo
	switch {
	case errors.Is(err, ErrNotRegular):
		msg, level = "the source is not a regular file; tailseal reads a file the application appends to, and waits for one at this path", slog.LevelError
	case !errors.Is(err, os.ErrNotExist):
		msg, level = "cannot open the source file; retrying", slog.LevelError
	}
	if msg != t.waiting {
		t.log.Log(context.Background(), level, msg, "path", t.opt.Path, "error", err)
	}
	t.waiting = msg
}

// wait blocks until something may have changed.
func (t *Tailer) wait(ctx context.Context, w *fsnotify.Watcher, tick <-chan time.Time) error {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.stop:
			return nil
		case <-tick:
			return nil
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow loses events, not data: every wake-up reads to
			// the end and checks for rotation, so look again now.
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				t.Stats.Overflows.Add(1)
			}
			t.log.Debug("file notification error; rescanning", "error", err)
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Name != t.opt.Path && !ev.Has(fsnotify.Create) {
				continue
			}
			for len(events) > 0 { // coalesce a burst into one read
				<-events
			}
			return nil
		}
	}
}

// check looks for truncation and rotation once the file is read to EOF. It
// reports whether it switched to another file (or offset) to read at once.
func (t *Tailer) check(ctx context.Context) (bool, error) {
	defer func(now time.Time) { t.lastLook = now }(time.Now())
	fi, err := t.f.Stat()
	if err != nil {
		return false, err
	}
	if t.rewritten || fi.Size() < t.readOff || !t.headUnchanged() {
		t.rewritten = false
		t.log.Warn("source truncated; reading it again from the start",
			"path", t.opt.Path, "size", fi.Size(), "offset", t.readOff)
		t.Stats.Truncations.Add(1)
		return true, t.readCopy(ctx)
	}
	st, err := os.Stat(t.opt.Path)
	if err != nil || os.SameFile(st, fi) {
		return false, nil // not rotated, or removed and not yet re-created
	}
	// Rotated: whatever reached the old file before the switch is read now.
	if err := t.readToEOF(ctx); err != nil {
		return false, err
	}
	t.log.Info("source rotated; switching to the next file", "path", t.opt.Path, "old_size", t.readOff)
	t.Stats.Rotations.Add(1)
	return true, t.leave(ctx)
}

// leave finishes the current file, which will grow no more, and moves to
// the next one: a file rotated after it, or else the path (opened by Run).
func (t *Tailer) leave(ctx context.Context) error {
	if err := t.finishFile(ctx); err != nil {
		return err
	}
	t.consumed(t.head)
	next := t.successor(t.born, t.dev, t.ino) // a later copy, say
	if next == nil && t.copyOf.set {
		// Once its copies are read, the truncated file's own lines.
		t.copyOf.set = false
		if next = t.original(t.copyOf.dev, t.copyOf.ino); next != nil {
			t.closeFile()
			if filepath.Clean(next.Name()) == t.opt.Path {
				// Still the path: read on from its truncation. (Opening
				// the path again later could find the next file already.)
				return t.use(next, 0)
			}
			t.log.Info("reading the truncated file's newer lines where it was renamed to", "file", next.Name())
			return t.drain(ctx, next, 0)
		}
	}
	t.closeFile()
	if next == nil {
		return nil
	}
	t.log.Info("reading a file rotated in between", "file", next.Name())
	return t.drain(ctx, next, 0)
}

// drainCopy reads the copy f, from offset, of the truncated file dev/ino,
// and then that file's newer lines (see leave).
func (t *Tailer) drainCopy(ctx context.Context, f *os.File, offset int64, dev, ino uint64) error {
	t.copyOf.dev, t.copyOf.ino, t.copyOf.set = dev, ino, true
	return t.drain(ctx, f, offset)
}

// drain reads f from offset to its end, then leaves it.
func (t *Tailer) drain(ctx context.Context, f *os.File, offset int64) error {
	if err := t.use(f, offset); err != nil {
		return err
	}
	if err := t.readToEOF(ctx); err != nil {
		return err
	}
	return t.leave(ctx)
}

// readCopy handles a truncated file. With copytruncate the lines not read
// yet survive in the copy (same first bytes, another inode): read them from
// there first. Then the path is read again from offset 0.
func (t *Tailer) readCopy(ctx context.Context) error {
	t.consumed(t.head)
	end := t.pendOff
	if end > 0 && int64(len(t.head)) >= min(end, FingerprintBytes) {
		id := ID{Dev: t.dev, Ino: t.ino, FP: fingerprint(t.head[:min(end, FingerprintBytes)])}
		if f, ok := t.find(id, end); ok {
			t.log.Info("reading the rest of the truncated source from its copy", "file", f.Name(), "offset", end)
			return t.drainCopy(ctx, f, end, t.dev, t.ino)
		}
	}
	// Truncated twice since the last look: a copy made since then holds
	// lines never read, from its start.
	if next := t.successor(t.lastLook, t.dev, t.ino); next != nil {
		t.log.Info("reading a copy made since the last look", "file", next.Name())
		return t.drain(ctx, next, 0)
	}
	t.resetTo(0)
	return nil
}

// headUnchanged reports whether the first bytes are still those read before.
func (t *Tailer) headUnchanged() bool {
	if len(t.head) == 0 {
		return true
	}
	head, err := readHead(t.f, len(t.head))
	return err == nil && bytes.Equal(head, t.head)
}

// openPath opens the source path to read it from the start.
func (t *Tailer) openPath() error {
	f, err := openRegular(t.opt.Path)
	if err != nil {
		return err
	}
	return t.use(f, 0)
}

// use makes f the file being read, from offset.
func (t *Tailer) use(f *os.File, offset int64) error {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	var head []byte // from offset 0 it is taken from the bytes as they are read
	if offset > 0 {
		if head, err = readHead(f, FingerprintBytes); err != nil {
			f.Close()
			return err
		}
	}
	t.closeFile()
	t.f = f
	t.dev, t.ino = devIno(fi)
	t.name = jsonString(filepath.Base(f.Name()))
	t.born, _ = birth(f)
	t.resetTo(offset)
	t.head, t.fullID = head, ""
	t.log.Debug("reading source file", "file", f.Name(), "offset", offset)
	return nil
}

func (t *Tailer) closeFile() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// resetTo drops the pending partial line and reads next from offset.
func (t *Tailer) resetTo(offset int64) {
	t.readOff, t.pendOff, t.skipped = offset, offset, 0
	t.stopAt = -1 // another file, or this one rewritten: its size is taken again
	if t.cur != nil {
		t.cur.buf = t.cur.buf[:t.start]
	}
	if offset == 0 { // the first bytes are taken again as they are read
		t.head, t.fullID = nil, ""
	}
}

// id returns the identity of the current file for a line ending at end.
func (t *Tailer) id(end int64) string {
	if t.fullID != "" {
		return t.fullID
	}
	n := min(end, FingerprintBytes, int64(len(t.head)))
	id := ID{Dev: t.dev, Ino: t.ino, FP: fingerprint(t.head[:n])}.String()
	if n == FingerprintBytes {
		t.fullID = id
	}
	return id
}

// readToEOF reads and delivers all complete lines now in the file.
func (t *Tailer) readToEOF(ctx context.Context) error {
	for {
		// Stop between reads: a select with a free batch also ready would
		// pick at random and could read a whole backlog before stopping.
		if err := ctx.Err(); err != nil {
			return err
		}
		if t.readToStop() {
			return nil
		}
		if err := t.ensureBatch(ctx); err != nil {
			return err
		}
		b := t.cur
		if len(b.buf) == cap(b.buf) {
			t.makeRoom()
		}
		old := len(b.buf)
		n, err := t.f.ReadAt(b.buf[old:cap(b.buf)], t.readOff)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if n > 0 && !t.headUnchanged() {
			// Truncated and rewritten under us: these bytes may be new
			// content at an old offset. Drop them; check() starts over.
			t.rewritten = true
			return nil
		}
		b.buf = b.buf[:old+n]
		if int64(len(t.head)) == t.readOff && len(t.head) < FingerprintBytes {
			// The head is taken from the very bytes read, so it always
			// describes the content the offsets refer to.
			t.head = append(t.head, b.buf[old:old+min(n, FingerprintBytes-len(t.head))]...)
		}
		t.readOff += int64(n)
		t.scan(old)
		if len(b.Lines) > 0 {
			if err := t.send(ctx); err != nil {
				return err
			}
		}
		if n == 0 {
			t.lagBytes.Store(0)
			t.behindSince.Store(time.Now().UnixNano())
			return nil
		}
		t.measureLag()
	}
}

// measureLag records how far behind the source the reader is, at most a few
// times a second (one fstat).
func (t *Tailer) measureLag() {
	if time.Since(t.lagChecked) < 250*time.Millisecond {
		return
	}
	t.lagChecked = time.Now()
	if fi, err := t.f.Stat(); err == nil {
		t.lagBytes.Store(max(0, fi.Size()-t.readOff))
	}
}

// Resumed is closed once the position of the previous run is recovered
// (including reading the rest of a file rotated while stopped).
func (t *Tailer) Resumed() <-chan struct{} { return t.resumed }

// Lag returns the source bytes not read yet and since when the reader has
// been behind.
func (t *Tailer) Lag() (int64, time.Time) {
	return t.lagBytes.Load(), time.Unix(0, t.behindSince.Load())
}

// scan delivers the complete lines in cur.buf[from:].
func (t *Tailer) scan(from int) {
	b := t.cur
	for {
		i := bytes.IndexByte(b.buf[from:], '\n')
		if i < 0 {
			if t.skipped > 0 { // overlong line: keep only the preview
				t.skipped += int64(len(b.buf) - from)
				b.buf = b.buf[:from]
			}
			return
		}
		nl := from + i
		data := b.buf[t.start:nl]
		if t.skipped > 0 {
			data = data[:t.preview()]
		}
		t.emit(data, int64(nl-t.start)+t.skipped+1, t.skipped > 0)
		t.start = nl + 1
		from = t.start
	}
}

func (t *Tailer) emit(data []byte, length int64, truncated bool) {
	if !truncated && len(data) > t.opt.MaxLine {
		data, truncated = data[:t.preview()], true
	}
	end := t.pendOff + length
	t.cur.Lines = append(t.cur.Lines, Line{
		Data: data, Offset: t.pendOff, Length: length, Truncated: truncated,
		File: unsafeString(t.name), ID: t.id(end),
	})
	t.pendOff = end
	t.skipped = 0
	t.Stats.Lines.Add(1)
	t.Stats.Bytes.Add(uint64(length))
}

// makeRoom handles a pending line that fills the whole buffer: grow the
// buffer up to MaxLine, then keep only a preview and count the rest.
func (t *Tailer) makeRoom() {
	b := t.cur
	pending := len(b.buf) - t.start
	if t.skipped == 0 && pending <= t.opt.MaxLine {
		nb := make([]byte, len(b.buf), min(2*cap(b.buf), t.opt.MaxLine+t.opt.BufSize))
		copy(nb, b.buf)
		b.buf = nb
		return
	}
	if t.skipped == 0 {
		t.log.Warn("line longer than the limit; keeping a prefix", "max_line_bytes", t.opt.MaxLine, "offset", t.pendOff)
		t.skipped = int64(pending - t.preview())
		b.buf = b.buf[:t.start+t.preview()]
	}
}

// preview is how much of an overlong line is kept.
func (t *Tailer) preview() int { return min(previewBytes, t.opt.MaxLine) }

// ensureBatch makes sure a batch is being filled, carrying the pending line.
func (t *Tailer) ensureBatch(ctx context.Context) error {
	if t.cur != nil {
		return nil
	}
	select {
	case b := <-t.free:
		t.cur = b
		t.start = 0
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send delivers the current batch and starts the next with the pending line.
func (t *Tailer) send(ctx context.Context) error {
	b := t.cur
	pending := b.buf[t.start:]
	t.cur = nil
	if err := t.ensureBatch(ctx); err != nil {
		t.cur = b // keep the pending bytes for a clean stop
		return err
	}
	if cap(t.cur.buf) < len(pending)+t.opt.BufSize {
		t.cur.buf = make([]byte, 0, len(pending)+t.opt.BufSize)
	}
	t.cur.buf = append(t.cur.buf[:0], pending...)
	select {
	case t.out <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finishFile delivers a final line without a newline at the end of a file
// the tailer is leaving for good (rotated away): no more bytes will come.
func (t *Tailer) finishFile(ctx context.Context) error {
	if t.cur == nil || len(t.cur.buf) == t.start && t.skipped == 0 {
		return nil
	}
	pending := t.cur.buf[t.start:]
	t.emit(pending, int64(len(pending))+t.skipped, t.skipped > 0)
	t.start = len(t.cur.buf)
	return t.send(ctx)
}

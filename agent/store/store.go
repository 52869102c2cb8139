// Package store owns the canonical store on disk: append-only segments named
// by their first seq, group commit with fsync, rotation by size and age,
// background gzip of rotated segments, a per-segment index, retention,
// reading segments back (SegmentReader, the one reader of segment files),
// and the Merkle tree's hash tiles, written and recovered with the
// segments (tree.go). It knows the record layout only through package
// record and the tree only through package merkle, and imports nothing
// else of signer.
package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/signer/record"
)

// Options configure a Store.
type Options struct {
	Dir           string // $DATA_DIR/store
	SegmentMax    int64
	SegmentMaxAge time.Duration
	Retention     time.Duration // 0 keeps everything
	// Keep, if set, returns the lowest seq some reader still needs; segments
	// holding it or later records are never deleted by retention.
	Keep func() uint64
	// OnSync, if set, is told how long each fsync of the active segment took.
	OnSync func(time.Duration)
	// BeforeDelete, if set, is called before retention deletes segments,
	// with the last seq they hold (every record up to it is then gone) and
	// their names; an error keeps them for the next round. The agent
	// writes its signed retention record there, so that verify can tell
	// retention from deletion. It must return when stop is closed (the
	// store is closing). With it, retention runs only when asked
	// (ApplyRetention) or hourly, never while the store opens.
	BeforeDelete func(stop <-chan struct{}, through uint64, segments []string) error
	// OnIndexed, if set, is told the line store/index got for a segment
	// just compressed; the agent attests it with a signed index record.
	// It must return when stop is closed.
	OnIndexed func(stop <-chan struct{}, segment string, line []byte) error
	// KeepIndexLine, if set, is asked before the line of a segment just
	// compressed goes into store/index: false leaves the segment out of
	// the index (readers then read it whole, verify holds nothing to it).
	// The collector uses it so that its index never contradicts the
	// index records of the agent it copies.
	KeepIndexLine func(segment string, line []byte) bool
	// MemberBytes is where compression cuts a segment into gzip members
	// (see DefaultMemberBytes, the value for 0); negative writes one
	// member, as before v4 of the index. For tests and measurements.
	MemberBytes int
	// Compression is how rotated segments are compressed; "" is Gzip.
	Compression Compression
	// CompressionFor, if set, chooses it for each segment instead (named
	// as the active one was): the collector compresses each as its agent
	// did, so that their index lines are the same.
	CompressionFor func(segment string) Compression
	Logger         *slog.Logger
	Now            func() time.Time
}

// ActiveExt is the suffix of a segment not compressed (yet); see
// Compression for the others.
const ActiveExt = ".jsonl"

// Store appends lines to the active segment. Append and Commit are called
// from one goroutine; Durable may be read from any.
type Store struct {
	opt Options
	log *slog.Logger

	f        *os.File
	first    uint64 // seq of the active segment's first line
	size     int64
	opened   time.Time
	lastSeq  uint64 // last seq appended
	dirty    bool
	durable  atomic.Uint64
	notify   chan struct{} // closed and replaced on each commit
	notifyMu sync.Mutex

	tree *tree // the Merkle tree's edge and tiles

	// An fsync started by CommitAsync and not yet waited for: syncing
	// is closed when it ends, with syncErr set. Only the appending
	// goroutine starts or waits for one.
	syncing chan struct{}
	syncErr error

	bg     sync.WaitGroup
	jobs   chan string
	stop   chan struct{}
	retain chan struct{} // ApplyRetention's nudge
	// compressRetry is how long a compression that failed with nothing
	// left of it (a full disk) waits to be tried again.
	compressRetry time.Duration

	// What is on disk, for metrics: counted once at Open, then kept up to
	// date by Append, rotation, compression and retention.
	segments, bytes atomic.Int64
	// Restored counts active segments deleted under the agent and
	// written back (tailseal_store_restored_total).
	Restored atomic.Uint64
}

// Last is the last durable line found when opening (nil for an empty store).
type Last struct {
	Line []byte // without its newline
}

// SegmentName returns the file name of the segment starting at seq.
func SegmentName(first uint64, ext string) string {
	return fmt.Sprintf("%016d%s", first, ext)
}

// Open opens or creates the store, repairs a torn tail and returns the last
// complete line.
func Open(opt Options) (*Store, *Last, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create store dir: %w", err)
	}
	s := &Store{opt: opt, log: opt.Logger, notify: make(chan struct{}), jobs: make(chan string, 64), stop: make(chan struct{}), retain: make(chan struct{}, 1),
		compressRetry: time.Minute}
	segs, err := List(opt.Dir)
	if err != nil {
		return nil, nil, err
	}
	if err := s.cleanup(segs); err != nil {
		return nil, nil, err
	}
	if segs, err = List(opt.Dir); err != nil {
		return nil, nil, err
	}
	if err := s.finishSplits(segs); err != nil {
		return nil, nil, err
	}
	last, err := s.recover(segs)
	if err != nil {
		return nil, nil, err
	}
	if err := s.openTree(s.lastSeq); err != nil {
		s.f.Close()
		return nil, nil, fmt.Errorf("open Merkle tree: %w", err)
	}
	if err := s.count(); err != nil {
		return nil, nil, err
	}
	if err := s.attestNewest(); err != nil {
		s.log.Warn("store: cannot tell whether the newest compressed segment is attested", "error", err)
	}
	s.bg.Add(1)
	go s.background()
	for _, seg := range segs {
		if !seg.Compressed && seg.First != s.first {
			s.jobs <- seg.Name // rotated before a crash, not yet compressed
		}
	}
	return s, last, nil
}

// Segment is one segment file.
type Segment struct {
	Name       string
	First      uint64
	Compressed bool
}

// List returns the segments in seq order.
func List(dir string) ([]Segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list store: %w", err)
	}
	var segs []Segment
	for _, e := range entries {
		name := e.Name()
		base, compressed := CutCompressedExt(name)
		if !compressed {
			var ok bool
			if base, ok = strings.CutSuffix(name, ActiveExt); !ok {
				continue
			}
		}
		first, err := strconv.ParseUint(base, 10, 64)
		if err != nil || len(base) != 16 {
			continue
		}
		segs = append(segs, Segment{Name: name, First: first, Compressed: compressed})
	}
	sort.Slice(segs, func(i, j int) bool {
		return segs[i].First < segs[j].First || segs[i].First == segs[j].First && segs[i].Compressed
	})
	// Between the rename of a new .gz (or .zst) and the removal of its
	// .jsonl both exist, with the same records: list the segment once,
	// compressed.
	return slices.CompactFunc(segs, func(a, b Segment) bool { return a.First == b.First }), nil
}

// count sets the segment and byte counts from the store directory.
func (s *Store) count() error {
	segs, err := List(s.opt.Dir)
	if err != nil {
		return err
	}
	var size int64
	for _, seg := range segs {
		if fi, err := os.Stat(filepath.Join(s.opt.Dir, seg.Name)); err == nil {
			size += fi.Size()
		}
	}
	s.segments.Store(int64(len(segs)))
	s.bytes.Store(size)
	return nil
}

// Segments is the number of segment files in the store.
func (s *Store) Segments() int64 { return s.segments.Load() }

// Bytes is the size of all segment files on disk.
func (s *Store) Bytes() int64 { return s.bytes.Load() }

// cleanup removes leftovers of a compression cut short: a temporary file,
// or an uncompressed segment whose compressed copy is complete.
func (s *Store) cleanup(segs []Segment) error {
	tmps, _ := filepath.Glob(filepath.Join(s.opt.Dir, "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	// A crash between a .gz's rename and its .jsonl's removal leaves both
	// (List shows the .gz only). The index line is written in between:
	// once it is there the .jsonl goes; before, the .gz goes, and the
	// segment is compressed again at this start, so that it is indexed
	// (and attested) like every other. That holds when the .gz holds the
	// .jsonl's bytes, as a crash leaves them; a disk that lost or changed
	// either keeps the one that holds more (sameAsOriginal).
	var index map[string]string
	for _, seg := range segs {
		if !seg.Compressed {
			continue
		}
		base, _ := CutCompressedExt(seg.Name)
		orig := filepath.Join(s.opt.Dir, base+ActiveExt)
		if _, err := os.Lstat(orig); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if index == nil {
			var err error
			if index, err = ReadIndexDigests(s.opt.Dir); err != nil {
				return err
			}
		}
		compressed := filepath.Join(s.opt.Dir, seg.Name)
		gone := orig
		switch v, detail := sameAsOriginal(compressed, orig); {
		case v == copyShort:
			gone = compressed
			s.log.Warn("store: a compressed segment beside its original does not hold all of it; compressing the original again", "segment", seg.Name, "detail", detail)
		case v == copyLonger:
			s.log.Warn("store: the original beside a compressed segment differs from it; keeping the compressed segment", "segment", seg.Name, "detail", detail)
		default:
			if _, indexed := index[seg.Name]; !indexed {
				gone = compressed
				s.log.Info("store: a segment's compression was cut short before its index line; compressing it again", "segment", base+ActiveExt)
			}
		}
		if err := os.Remove(gone); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove a compression cut short: %w", err)
		}
	}
	return nil
}

// What a compressed segment holds of the original beside it.
type copyVerdict int

const (
	copySame   copyVerdict = iota // every byte, and nothing more
	copyShort                     // it cannot be read to its end, or it holds a part of the original
	copyLonger                    // it reads to its end and differs: the original was cut or changed since
)

// sameAsOriginal decompresses the segment in path and compares it with
// the uncompressed original, byte for byte.
func sameAsOriginal(path, orig string) (copyVerdict, string) {
	c, _ := CompressionOf(path)
	f, err := os.Open(path)
	if err != nil {
		return copyShort, err.Error()
	}
	defer f.Close()
	o, err := os.Open(orig)
	if err != nil {
		return copyLonger, err.Error()
	}
	defer o.Close()
	dec, release, err := segmentDecoder(c, bufio.NewReaderSize(f, diskBufSize))
	if err != nil {
		return copyShort, err.Error()
	}
	defer release()
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	var at int64
	for {
		n, err := io.ReadFull(dec, a)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return copyShort, err.Error()
		}
		m, oerr := io.ReadFull(o, b[:n])
		if oerr != nil && !errors.Is(oerr, io.EOF) && !errors.Is(oerr, io.ErrUnexpectedEOF) {
			return copyLonger, oerr.Error()
		}
		if m < n || !bytes.Equal(a[:n], b[:n]) {
			return copyLonger, fmt.Sprintf("they differ within the first %d bytes after %d", n, at)
		}
		at += int64(n)
		if n < len(a) { // the compressed segment's end
			if extra, _ := o.Read(b[:1]); extra > 0 {
				return copyShort, fmt.Sprintf("it ends after %d bytes, the original goes on", at)
			}
			return copySame, ""
		}
	}
}

// recover opens the active (last) segment, truncates a torn tail and finds
// the last complete line, looking into the previous segment if the active
// one is empty.
func (s *Store) recover(segs []Segment) (*Last, error) {
	var last []byte
	for i := len(segs) - 1; i >= 0 && last == nil; i-- {
		seg := segs[i]
		var err error
		if seg.Compressed {
			last, err = lastLine(s.opt.Dir, seg)
		} else {
			last, err = s.repairTail(filepath.Join(s.opt.Dir, seg.Name))
		}
		if err != nil {
			return nil, err
		}
	}
	var lastSeq uint64
	if last != nil {
		m, err := record.ParseMeta(last)
		if err != nil {
			return nil, fmt.Errorf("read last record: %w", err)
		}
		lastSeq = m.Seq
	}
	s.lastSeq = lastSeq
	s.durable.Store(lastSeq)
	if len(segs) > 0 && !segs[len(segs)-1].Compressed {
		if err := s.openActive(segs[len(segs)-1].First); err != nil {
			return nil, err
		}
	} else if err := s.openActive(lastSeq + 1); err != nil {
		return nil, err
	}
	if last == nil {
		return nil, nil
	}
	return &Last{Line: last}, nil
}

// repairTail cuts a segment after its last complete, well-formed line and
// returns that line (nil if none). It reads backwards from the end, so
// memory stays small whatever the segment's size.
func (s *Store) repairTail(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat segment: %w", err)
	}
	size := fi.Size()
	end := size
	var last []byte
	for end > 0 {
		start, line, err := lineBefore(f, end)
		if err != nil {
			return nil, fmt.Errorf("read segment: %w", err)
		}
		if line[len(line)-1] == '\n' {
			if _, err := record.ParseMeta(line[:len(line)-1]); err == nil {
				last = line[:len(line)-1]
				break
			}
		}
		end = start // torn or garbled: cut it
	}
	if end < size {
		s.log.Warn("store: cutting a torn tail from the active segment",
			"segment", filepath.Base(path), "bytes", size-end)
		if err := f.Truncate(end); err != nil {
			return nil, fmt.Errorf("truncate torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("sync segment: %w", err)
		}
	}
	return last, nil
}

// lineBefore returns the last line of f[:end] (with its newline, if any)
// and where it starts.
func lineBefore(f *os.File, end int64) (int64, []byte, error) {
	for w := int64(64 << 10); ; w *= 2 {
		from := max(0, end-w)
		buf := make([]byte, end-from)
		if _, err := f.ReadAt(buf, from); err != nil {
			return 0, nil, err
		}
		if i := bytes.LastIndexByte(buf[:len(buf)-1], '\n'); i >= 0 {
			return from + int64(i) + 1, buf[i+1:], nil
		}
		if from == 0 {
			return 0, buf, nil
		}
	}
}

func (s *Store) openActive(first uint64) error {
	path := filepath.Join(s.opt.Dir, SegmentName(first, ActiveExt))
	// Read and write: a deleted active segment is restored from it.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open active segment: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat active segment: %w", err)
	}
	if err := atomicfile.SyncDir(s.opt.Dir); err != nil {
		f.Close()
		return fmt.Errorf("sync store dir: %w", err)
	}
	s.f, s.first, s.size = f, first, fi.Size()
	s.opened = birthTime(path, s.opt.Now())
	return nil
}

// Append writes lines (complete, newline-terminated records with seqs
// first..last) to the active segment, rotating first if it is full or old.
// They are durable after the next Commit. On error nothing of data remains
// in the segment, so the same call can be retried.
func (s *Store) Append(data []byte, first, last uint64) error {
	if s.size > 0 && (s.size >= s.opt.SegmentMax || s.opt.Now().Sub(s.opened) >= s.opt.SegmentMaxAge) {
		if err := s.rotate(first); err != nil {
			return err
		}
	}
	n, err := s.f.Write(data)
	if err != nil {
		if n > 0 {
			if terr := s.f.Truncate(s.size); terr != nil {
				return fmt.Errorf("append: %w (and undo failed: %v)", err, terr)
			}
		}
		return fmt.Errorf("append: %w", err)
	}
	s.size += int64(n)
	s.bytes.Add(int64(n))
	if s.tree.ok {
		s.tree.hand(data)
	}
	s.lastSeq = last
	s.dirty = true
	return nil
}

// Commit makes everything appended durable and wakes waiters: it waits
// for a running fsync, then starts one for the rest and waits for it.
func (s *Store) Commit() error {
	if err := s.waitSync(); err != nil {
		return err
	}
	if err := s.CommitAsync(nil); err != nil {
		return err
	}
	return s.waitSync()
}

// CommitAsync starts making everything appended so far durable and
// returns: the fsync runs beside the caller, which goes on signing and
// appending, and Durable and Changed move when it ends (then done, if
// not nil, runs on the fsync's goroutine). One fsync runs at a time: while
// one runs, CommitAsync does nothing (done never runs), and the caller
// calls it again when SyncDone is closed. An error is the previous
// fsync's, or one before this one started; the next Commit or
// CommitAsync tries again.
func (s *Store) CommitAsync(done func()) error {
	if s.syncing != nil {
		select {
		case <-s.syncing:
		default:
			return nil // SyncDone will tell
		}
	}
	if err := s.waitSync(); err != nil {
		return err
	}
	if !s.dirty {
		return nil
	}
	seq, err := s.prepareSync()
	if err != nil {
		return err
	}
	s.syncing = make(chan struct{})
	go func(finished chan struct{}) {
		defer close(finished)
		if s.syncErr = s.syncFiles(); s.syncErr == nil {
			s.durableThrough(seq)
			if done != nil {
				done()
			}
		}
	}(s.syncing)
	return nil
}

// SyncDone is closed when CommitAsync's fsync ends; nil when none runs.
// The caller then calls CommitAsync (or Commit): it takes the fsync's
// result, and starts the next one if anything was appended meanwhile.
func (s *Store) SyncDone() <-chan struct{} { return s.syncing }

// waitSync waits for CommitAsync's fsync, if one runs, and returns its
// error: what it was to make durable is then dirty again.
func (s *Store) waitSync() error {
	if s.syncing == nil {
		return nil
	}
	<-s.syncing
	s.syncing = nil
	err := s.syncErr
	s.syncErr = nil
	if err != nil {
		s.dirty = true
	}
	return err
}

// prepareSync does, on the appending goroutine, what precedes an fsync:
// the tree's pending hashes written, the active segment still linked. It
// returns the last seq the fsync makes durable.
func (s *Store) prepareSync() (uint64, error) {
	if s.tree.ok {
		if err := s.tree.write(); err != nil {
			return 0, err
		}
	}
	if err := s.checkLinked(); err != nil {
		return 0, err
	}
	s.dirty = false
	return s.lastSeq, nil
}

// syncFiles fsyncs the active segment and the tree's level files. It
// touches only files that appends do not replace while it runs.
func (s *Store) syncFiles() error {
	start := time.Now()
	if err := s.tree.syncWith(s.syncSegment); err != nil {
		return err
	}
	if s.opt.OnSync != nil {
		s.opt.OnSync(time.Since(start))
	}
	return nil
}

// durableThrough makes seq the durable seq and wakes waiters.
func (s *Store) durableThrough(seq uint64) {
	s.durable.Store(seq)
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

func (s *Store) syncSegment() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("fsync segment: %w", err)
	}
	return nil
}

// Durable is the seq of the last durable line.
func (s *Store) Durable() uint64 { return s.durable.Load() }

// Changed returns a channel closed at the next commit.
func (s *Store) Changed() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.notify
}

// rotate closes the active segment and starts a new one at seq first.
func (s *Store) rotate(first uint64) error {
	if err := s.Commit(); err != nil {
		return err
	}
	return s.next(first, "rotated")
}

// next starts the active segment at seq first, closes the one before, and
// queues it for compression; how says why it ended (in the log). When the
// new segment cannot be opened (no inode left), the old one stays the
// active segment, open, and a retry rotates again.
func (s *Store) next(first uint64, how string) error {
	prev, old := s.f, SegmentName(s.first, ActiveExt)
	if err := s.openActive(first); err != nil {
		return err
	}
	// Commit synced what prev holds: an error closing it loses nothing.
	if err := prev.Close(); err != nil {
		s.log.Warn("store: closing a rotated segment failed", "segment", old, "error", err)
	}
	s.segments.Add(1)
	s.log.Info("store: segment "+how, "segment", old, "next", SegmentName(first, ActiveExt))
	select {
	case s.jobs <- old:
	default:
		s.log.Warn("store: compression queue full; will compress at next start", "segment", old)
	}
	return nil
}

// ActiveSegment returns the name of the segment being written.
func (s *Store) ActiveSegment() string { return SegmentName(s.first, ActiveExt) }

// Close commits, stops background work and closes the active segment.
func (s *Store) Close() error {
	err := s.Commit()
	close(s.stop)
	s.bg.Wait()
	return errors.Join(err, s.tree.close(), s.f.Close())
}

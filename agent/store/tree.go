package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/signer/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// HashDir holds the Merkle tree's stored hashes, one file per tile level
// (0, 1, 2, …), each the concatenation of C2SP tlog-tiles' tiles of its
// level (see package merkle): append-only, like the segments.
const HashDir = "hashes"

// tree keeps the store's Merkle tree: the right edge in memory, updated
// with every Append, and the level files, appended and fsynced by Commit
// with the segment, before the records they hash count as durable.
//
// Hashing runs on a goroutine of its own (hasher), beside the agent's,
// which only copies what it appends: two SHA-256 per record would
// otherwise slow the one goroutine that signs every line. Append and
// Commit's goroutine hands it the lines, and takes the edge and the
// hashes back at a barrier (caughtUp); in between, hasher owns them.
type tree struct {
	dir    string // HashDir
	log    *slog.Logger
	ok     bool // the tree covers the store from seq 1
	edge   merkle.Edge
	files  []*os.File // per level, written at size
	size   []int64    // bytes of each level file written
	pend   [][]byte   // per level: hashes not yet written
	synced []bool     // per level: nothing written since the last fsync
	onHash func(level int, h tlog.Hash)

	in      chan hashJob // lines for hasher, or a barrier
	free    chan []byte  // the hashBuffers buffers not in in
	running bool
	behind  bool // lines were handed to hasher since the last barrier
}

// hashJob is lines to hash, or (done set) a barrier: hasher answers it
// once everything sent before is hashed.
type hashJob struct {
	lines []byte
	done  chan struct{}
}

func newTree(dir string, log *slog.Logger) *tree {
	t := &tree{dir: dir, log: log}
	t.onHash = t.stored
	return t
}

// hashBuffers is how many copies of appended lines can be on their way
// to hasher: a fixed set, reused, so that copying allocates nothing once
// the buffers have grown to a batch (an allocation a batch made the
// agent's GC, at GOGC 25, cost more than the copies).
const hashBuffers = 3

// start runs hasher.
func (t *tree) start() {
	t.in, t.free = make(chan hashJob, hashBuffers), make(chan []byte, hashBuffers)
	for range hashBuffers {
		t.free <- nil
	}
	t.running = true
	go t.hasher()
}

func (t *tree) hasher() {
	for j := range t.in {
		if j.done != nil {
			close(j.done)
			continue
		}
		t.add(j.lines)
		t.free <- j.lines[:0]
	}
}

// hand gives hasher a copy of the newline-terminated lines of data,
// waiting for a buffer when hasher is that far behind.
func (t *tree) hand(data []byte) {
	buf := <-t.free
	t.in <- hashJob{lines: append(buf, data...)}
	t.behind = true
}

// caughtUp waits until hasher has hashed every line handed to it: the
// edge and the hashes are the caller's until it hands more.
func (t *tree) caughtUp() {
	if !t.behind {
		return
	}
	done := make(chan struct{})
	t.in <- hashJob{done: done}
	<-done
	t.behind = false
}

// add hashes the newline-terminated lines of data into the tree.
func (t *tree) add(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data)
		}
		t.edge.Append(merkle.LeafHash(data[:i]), t.onHash)
		data = data[min(i+1, len(data)):]
	}
}

func (t *tree) stored(level int, h tlog.Hash) {
	for level >= len(t.pend) {
		t.pend = append(t.pend, nil)
	}
	t.pend[level] = append(t.pend[level], h[:]...)
}

// write appends the hashes not yet written to the level files. On error
// nothing of them remains in the files, and the next write tries again.
func (t *tree) write() error {
	t.caughtUp()
	for l, p := range t.pend {
		if len(p) == 0 {
			continue
		}
		f, err := t.level(l)
		if err != nil {
			return err
		}
		// At the size written, not the file's offset: a write cut short
		// (a full disk) moved that past what the undo cut off.
		if n, err := f.WriteAt(p, t.size[l]); err != nil {
			if n > 0 {
				if terr := f.Truncate(t.size[l]); terr != nil {
					return fmt.Errorf("append hashes: %w (and undo failed: %v)", err, terr)
				}
			}
			return fmt.Errorf("append hashes: %w", err)
		}
		t.size[l] += int64(len(p))
		t.pend[l] = p[:0]
		t.synced[l] = false
	}
	return nil
}

// level opens level l's file, creating it.
func (t *tree) level(l int) (*os.File, error) {
	for l >= len(t.files) {
		t.files, t.size, t.synced = append(t.files, nil), append(t.size, 0), append(t.synced, true)
	}
	if t.files[l] != nil {
		return t.files[l], nil
	}
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create hash dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(t.dir, merkle.LevelFile(l)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open hashes: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open hashes: %w", err)
	}
	if err := atomicfile.SyncDir(t.dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync hash dir: %w", err)
	}
	t.files[l], t.size[l] = f, fi.Size()
	return f, nil
}

// sync fsyncs the level files written since the last sync.
func (t *tree) sync() error {
	for l, f := range t.files {
		if t.synced[l] || f == nil {
			continue
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync hashes: %w", err)
		}
		t.synced[l] = true
	}
	return nil
}

// dirty reports whether a sync has anything to do.
func (t *tree) dirty() bool {
	for _, s := range t.synced {
		if !s {
			return true
		}
	}
	return false
}

// syncWith runs fsync, the segment's, beside the tree's: two fsyncs at
// once take about as long as one.
func (t *tree) syncWith(fsync func() error) error {
	if !t.ok || !t.dirty() {
		return fsync()
	}
	var wg sync.WaitGroup
	var terr error
	wg.Go(func() { terr = t.sync() })
	err := fsync()
	wg.Wait()
	return errors.Join(err, terr)
}

func (t *tree) close() error {
	if t.running {
		close(t.in)
		t.running = false
	}
	var err error
	for _, f := range t.files {
		if f != nil {
			err = errors.Join(err, f.Close())
		}
	}
	t.files = nil
	return err
}

// TreeHead returns the size and RFC 6962 root of the tree of every record
// appended. ok is false when the store keeps no tree (see Open).
func (s *Store) TreeHead() (size uint64, root tlog.Hash, ok bool) {
	t := s.tree
	if !t.ok {
		return 0, tlog.Hash{}, false
	}
	t.caughtUp()
	return t.edge.Size(), t.edge.Root(), true
}

// openTree brings the tree up to the store's last record, lastSeq. It
// takes the hashes on disk for as many records as every level file has
// them (a torn or lost tail, after a crash, is hashed again from the
// segments) and drops those of records after lastSeq, which the store
// does not hold. A store with records from before the tree (made by an
// older agent) gets its tree built once, from seq 1; when its first
// records are gone by retention it keeps none, and its checkpoints stay
// chain heads (see the README).
func (s *Store) openTree(lastSeq uint64) error {
	t := newTree(filepath.Join(s.opt.Dir, HashDir), s.log)
	s.tree = t
	have, err := t.onDisk(lastSeq)
	if err != nil {
		return err
	}
	if have == 0 && lastSeq > 0 {
		segs, err := List(s.opt.Dir)
		if err != nil {
			return err
		}
		if len(segs) > 0 && segs[0].First != 1 {
			s.log.Warn("store: the store has no Merkle tree and its first records are gone (deleted by retention): "+
				"its checkpoints stay chain heads (the SHA-256 of their last line), and no inclusion proofs can be made", "first_seq", segs[0].First)
			return nil
		}
		s.log.Info("store: building the Merkle tree over the records already stored", "records", lastSeq)
	}
	if err := t.truncate(have); err != nil {
		return err
	}
	if have > 0 {
		bad, err := t.tailMismatch(s.opt.Dir, have)
		var unread errUnread
		switch {
		case errors.As(err, &unread):
			// The segments' damage is verify's to report; the hashes stay.
			s.log.Warn("store: the last records cannot be read to check the Merkle tree's stored hashes against them", "error", err)
		case err != nil:
			return err
		case bad != "":
			s.log.Warn("store: the Merkle tree's stored hashes do not match the records; building the tree again from the segments", "detail", bad)
			have = 0
			if err := t.truncate(0); err != nil {
				return err
			}
		}
	}
	e, err := merkle.EdgeAt(have, merkle.NewTiles(os.DirFS(t.dir)))
	if err != nil {
		return fmt.Errorf("read the Merkle tree's edge: %w", err)
	}
	t.edge = *e
	if have < lastSeq {
		if have > 0 {
			s.log.Info("store: hashing records into the Merkle tree again from the segments (a torn or lost tail)", "from_seq", have+1, "to_seq", lastSeq)
		}
		if err := t.rehash(s.opt.Dir, lastSeq); err != nil {
			t.close()
			s.log.Error("store: the Merkle tree cannot be brought up to the store: checkpoints stay chain heads", "error", err)
			return nil
		}
	}
	t.ok = true
	t.start()
	return nil
}

// checkTail is how many of the last records a start holds the stored
// hashes to. A write the level files kept only part of, or kept out of
// place, shows there: every hash after it is out of place too.
const checkTail = 1 << merkle.TileHeight

// tailMismatch holds the level files, holding a tree of size have, to the
// store's records: the leaf hashes of the last checkTail records, and at
// each higher level every hash of its last, partial tile (those every new
// root is made of) to the tile of hashes below it. It says what does not
// match ("" when all does).
func (t *tree) tailMismatch(dir string, have uint64) (string, error) {
	from := have - min(have, checkTail) + 1
	r := NewReader(dir, from)
	defer r.Close()
	for seq := from; seq <= have; seq++ {
		line, ok, err := r.Next(have)
		if err == nil && !ok {
			err = errors.New("the segments end before it")
		}
		if err != nil {
			return "", errUnread{fmt.Errorf("record %d: %w", seq, err)}
		}
		h, err := t.hashAt(0, seq-1)
		if err != nil {
			return "", err
		}
		if h != merkle.LeafHash(line) {
			return fmt.Sprintf("level 0 hash %d is not record %d's", seq-1, seq), nil
		}
	}
	tile := make([]byte, checkTail*tlog.HashSize)
	below := make([]tlog.Hash, checkTail)
	for l := 1; have>>(merkle.TileHeight*uint(l)) > 0; l++ {
		c := have >> (merkle.TileHeight * uint(l)) // hashes level l holds
		for j := c / checkTail * checkTail; j < c; j++ {
			if err := t.readTile(l-1, j, tile); err != nil {
				return "", err
			}
			for i := range below {
				copy(below[i][:], tile[i*tlog.HashSize:])
			}
			for n := len(below); n > 1; n /= 2 {
				for i := range n / 2 {
					below[i] = tlog.NodeHash(below[2*i], below[2*i+1])
				}
			}
			h, err := t.hashAt(l, j)
			if err != nil {
				return "", err
			}
			if h != below[0] {
				return fmt.Sprintf("level %d hash %d is not the root of the level %d tile below it", l, j, l-1), nil
			}
		}
	}
	return "", nil
}

// errUnread is a record tailMismatch could not read.
type errUnread struct{ error }

func (e errUnread) Unwrap() error { return e.error }

// readTile reads the full tile j of level file l into tile.
func (t *tree) readTile(l int, j uint64, tile []byte) error {
	f, err := t.level(l)
	if err != nil {
		return err
	}
	if _, err := f.ReadAt(tile, int64(j)*int64(len(tile))); err != nil {
		return fmt.Errorf("read hashes: %w", err)
	}
	return nil
}

// hashAt reads hash i of level file l.
func (t *tree) hashAt(l int, i uint64) (tlog.Hash, error) {
	var h tlog.Hash
	f, err := t.level(l)
	if err != nil {
		return h, err
	}
	if _, err := f.ReadAt(h[:], int64(i)*tlog.HashSize); err != nil {
		return h, fmt.Errorf("read hashes: %w", err)
	}
	return h, nil
}

// onDisk is the largest tree size, up to lastSeq, whose hashes every
// level file holds: level l must hold size>>(8l) of them.
func (t *tree) onDisk(lastSeq uint64) (uint64, error) {
	m := lastSeq
	for l := 0; l == 0 || m>>(merkle.TileHeight*uint(l)) > 0; l++ {
		c, err := t.count(l)
		if err != nil {
			return 0, err
		}
		if shift := merkle.TileHeight * uint(l); m>>shift > c {
			m = (c+1)<<shift - 1 // the largest size needing c of them
		}
	}
	return m, nil
}

// count is how many whole hashes level l's file holds (0: no file).
func (t *tree) count(l int) (uint64, error) {
	fi, err := os.Stat(filepath.Join(t.dir, merkle.LevelFile(l)))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stat hashes: %w", err)
	}
	return uint64(fi.Size() / tlog.HashSize), nil
}

// truncate cuts the level files to the hashes of a tree of size n: what
// is beyond is a torn write, or hashes of records the store lost.
func (t *tree) truncate(n uint64) error {
	for l := 0; ; l++ {
		if l > 0 {
			if _, err := os.Stat(filepath.Join(t.dir, merkle.LevelFile(l))); err != nil {
				return nil
			}
		}
		f, err := t.level(l)
		if err != nil {
			return err
		}
		want := int64(n>>(merkle.TileHeight*uint(l))) * tlog.HashSize
		if t.size[l] <= want {
			continue
		}
		if t.size[l]-want >= tlog.HashSize {
			t.log.Warn("store: dropping Merkle tree hashes of records the store does not hold", "level", l, "hashes", (t.size[l]-want)/tlog.HashSize)
		}
		if err := f.Truncate(want); err != nil {
			return fmt.Errorf("truncate hashes: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync hashes: %w", err)
		}
		t.size[l] = want
	}
}

// rehash appends the records after the edge's size, up to lastSeq, read
// from the segments in dir, and makes their hashes durable.
func (t *tree) rehash(dir string, lastSeq uint64) error {
	r := NewReader(dir, t.edge.Size()+1)
	defer r.Close()
	for t.edge.Size() < lastSeq {
		line, ok, err := r.Next(lastSeq)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the segments end at seq %d, before %d", t.edge.Size(), lastSeq)
		}
		t.edge.Append(merkle.LeafHash(line), t.onHash)
		if len(t.pend[0]) >= 1<<20 {
			if err := t.write(); err != nil {
				return err
			}
		}
	}
	if err := t.write(); err != nil {
		return err
	}
	return t.sync()
}

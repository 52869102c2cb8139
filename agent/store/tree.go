package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/signer/merkle"
	"github.com/tailseal/tailseal/signer/record"
	"golang.org/x/mod/sumdb/tlog"
)

// The Merkle tree's files in the store directory: hash tiles in the C2SP
// tlog-tiles layout (tile/<L>/<N>[.p/<W>]), and TreeFile, which names
// the largest tree size whose tiles are all fsynced, with its root.
const (
	TileDir  = "tile"
	TreeFile = "tree.json"
	tileTmp  = ".tiletmp" // tiles are written here, then renamed into place
)

// treeSyncEvery is how often the tiles written are fsynced and TreeFile
// moves on, in the background: at 2 ms an fsync, the thousand tiles a
// second of a full-speed ingest cannot be synced in the group commit.
// After a crash the tree is rebuilt from TreeFile's size on, from the
// segments, so this bounds that work to a second of records.
const treeSyncEvery = time.Second

// treeState is TreeFile's content.
type treeState struct {
	Size uint64    `json:"size"`
	Root tlog.Hash `json:"root"`
}

// tree keeps the store's Merkle tree (see package merkle): the right edge
// in memory, updated by Append, and the tiles on disk, written by Commit
// before the records they hash count as durable, so that every reader
// finds the hashes of every durable record. Append and Commit's goroutine
// owns it, the syncer only the lists it is handed.
type tree struct {
	dir    string // the store directory
	log    *slog.Logger
	ok     bool // the tree covers the store from seq 1
	edge   merkle.Edge
	onFull func(tlog.Tile, []tlog.Hash)

	pending []tileWrite // full tiles to write at the next flush
	spare   [][]byte    // tile buffers to reuse
	heads   []uint64    // sizes whose partial tiles the next flush writes
	written []string    // tile files written since the last sync job
	madeDir string      // the tile directory made last

	lastJob time.Time
	jobs    chan syncJob
	wg      sync.WaitGroup
	failed  []string // files whose fsync failed, for the next job (syncer's)
}

type tileWrite struct {
	tile tlog.Tile
	data []byte
}

type syncJob struct {
	files []string
	state treeState
	done  chan error // nil: nobody waits
}

func newTree(dir string, log *slog.Logger) *tree {
	t := &tree{dir: dir, log: log, jobs: make(chan syncJob, 1)}
	t.onFull = t.full
	return t
}

// add hashes the newline-terminated lines of data into the tree.
func (t *tree) add(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			i = len(data)
		}
		t.edge.Append(merkle.LeafHash(data[:i]), t.onFull)
		data = data[min(i+1, len(data)):]
	}
}

// full queues a completed tile for the next flush.
func (t *tree) full(tile tlog.Tile, hs []tlog.Hash) {
	var buf []byte
	if n := len(t.spare); n > 0 {
		buf, t.spare = t.spare[n-1][:0], t.spare[:n-1]
	} else {
		buf = make([]byte, 0, merkle.TileWidth*tlog.HashSize)
	}
	for i := range hs {
		buf = append(buf, hs[i][:]...)
	}
	t.pending = append(t.pending, tileWrite{tile, buf})
}

// flush writes the full tiles completed since the last flush and the
// partial tiles of the sizes TreeHead handed out. A tile that could not
// be written stays queued: the next flush tries it again.
func (t *tree) flush() error {
	for len(t.pending) > 0 {
		w := t.pending[0]
		if err := t.write(w.tile, w.data); err != nil {
			return err
		}
		// C2SP lets a log delete partial tiles once the full one exists.
		if err := os.RemoveAll(t.path(w.tile) + ".p"); err != nil {
			return fmt.Errorf("remove partial tiles: %w", err)
		}
		t.spare = append(t.spare, w.data)
		t.pending = t.pending[1:]
	}
	t.pending = t.pending[:0]
	for len(t.heads) > 0 {
		tiles, hs := t.edge.Partial(t.heads[0])
		for i, tile := range tiles {
			if err := t.write(tile, merkle.TileHashes(hs[i])); err != nil {
				return err
			}
		}
		t.heads = t.heads[1:]
	}
	return nil
}

func (t *tree) path(tile tlog.Tile) string {
	return filepath.Join(t.dir, filepath.FromSlash(merkle.Path(tile)))
}

// write puts a tile in place whole (through a temporary file and a
// rename: a reader never sees half a tile). fsync is the syncer's.
func (t *tree) write(tile tlog.Tile, data []byte) error {
	path := t.path(tile)
	if dir := filepath.Dir(path); dir != t.madeDir {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("write tile: %w", err)
		}
		t.madeDir = dir
	}
	tmp := filepath.Join(t.dir, tileTmp, "tile")
	err := os.WriteFile(tmp, data, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(tmp), 0o700); err == nil {
			err = os.WriteFile(tmp, data, 0o600)
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("write tile %s: %w", merkle.Path(tile), err)
	}
	t.written = append(t.written, path)
	return nil
}

// afterCommit hands the tiles written so far to the syncer, at most
// every treeSyncEvery and never while it is busy. size is durable.
func (t *tree) afterCommit(now time.Time) {
	if len(t.written) == 0 || now.Sub(t.lastJob) < treeSyncEvery {
		return
	}
	job := syncJob{files: t.written, state: treeState{Size: t.edge.Size(), Root: t.edge.Root()}}
	select {
	case t.jobs <- job:
		t.written, t.lastJob = nil, now
	default:
	}
}

// syncer fsyncs the tiles of each job, then their directories, then
// records the job's tree size in TreeFile.
func (t *tree) syncer() {
	defer t.wg.Done()
	for job := range t.jobs {
		err := t.sync(job)
		if err != nil {
			t.log.Warn("store: syncing the Merkle tree's tiles failed; will retry", "error", err)
		}
		if job.done != nil {
			job.done <- err
		}
	}
}

func (t *tree) sync(job syncJob) error {
	files := append(t.failed, job.files...)
	t.failed = nil
	dirs := map[string]bool{}
	var mu sync.Mutex
	var failed []string
	var firstErr error
	work := make(chan string)
	var wg sync.WaitGroup
	// fsyncs wait on the disk, not the CPU: many at once finish in the
	// time of a few.
	for range 32 {
		wg.Go(func() {
			for p := range work {
				if err := syncFile(p); err != nil {
					mu.Lock()
					failed = append(failed, p)
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, p := range files {
		dirs[filepath.Dir(p)] = true
		work <- p
	}
	close(work)
	wg.Wait()
	for d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			firstErr = cmpErr(firstErr, err)
		}
	}
	if firstErr != nil {
		t.failed = failed
		return firstErr
	}
	b, _ := json.Marshal(job.state)
	return atomicfile.WriteFile(filepath.Join(t.dir, TreeFile), append(b, '\n'), 0o600)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// syncFile fsyncs a file; one gone since (a partial tile the full tile
// replaced) needs none.
func syncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

// close syncs everything written and records the tree's size, then stops
// the syncer. The store is committed.
func (t *tree) close() error {
	var err error
	if t.ok {
		done := make(chan error, 1)
		t.jobs <- syncJob{files: t.written, state: treeState{Size: t.edge.Size(), Root: t.edge.Root()}, done: done}
		t.written = nil
		err = <-done
	}
	close(t.jobs)
	t.wg.Wait()
	return err
}

// TreeHead returns the size and RFC 6962 root of the tree of every record
// appended, and has the next Commit write that size's partial tiles, which
// C2SP tlog-tiles has a log serve for each of its checkpoints. ok is false
// when the store keeps no tree (see Open).
func (s *Store) TreeHead() (size uint64, root tlog.Hash, ok bool) {
	t := s.tree
	if !t.ok {
		return 0, tlog.Hash{}, false
	}
	t.heads = append(t.heads, t.edge.Size())
	return t.edge.Size(), t.edge.Root(), true
}

// openTree brings the tree up to the store's last record, lastSeq: it
// drops tiles of records the store does not hold, trusts the tiles up to
// TreeFile's size (its root checks them), and hashes every record after
// it from the segments again. A store with records before the tree came
// (made by an older agent) gets its tree built once, from seq 1; when its
// first records are gone by retention it keeps none, and its checkpoints
// stay chain heads (see the README).
func (s *Store) openTree(lastSeq uint64) error {
	t := newTree(s.opt.Dir, s.log)
	s.tree = t
	os.RemoveAll(filepath.Join(s.opt.Dir, tileTmp))
	if err := t.dropBeyond(lastSeq); err != nil {
		return err
	}
	var st treeState
	if b, err := os.ReadFile(filepath.Join(s.opt.Dir, TreeFile)); err == nil && json.Unmarshal(b, &st) == nil && st.Size <= lastSeq {
		from := st.Size &^ (merkle.TileWidth - 1)
		if e, err := merkle.EdgeAt(from, merkle.NewTiles(os.DirFS(s.opt.Dir))); err == nil {
			t.edge = *e
			err = t.rehash(lastSeq, &st)
			if err == nil {
				t.ok = true
				return t.start(lastSeq, st.Size)
			}
			s.log.Warn("store: the Merkle tree's tiles do not match the store; building the tree again from seq 1", "error", err)
		}
	}
	t.edge = merkle.Edge{}
	t.pending, t.heads, t.written = nil, nil, nil
	if lastSeq > 0 {
		segs, err := List(s.opt.Dir)
		if err != nil {
			return err
		}
		if len(segs) > 0 && segs[0].First != 1 {
			s.log.Warn("store: the store holds no tree of Merkle hashes and its first records are gone (deleted by retention): "+
				"checkpoints stay chain heads (the SHA-256 of their last line), and no inclusion proofs can be made", "first_seq", segs[0].First)
			return nil
		}
		s.log.Info("store: building the Merkle tree over the records already stored", "records", lastSeq)
	}
	if err := t.rehash(lastSeq, nil); err != nil {
		s.log.Error("store: the Merkle tree cannot be built from the segments: checkpoints stay chain heads", "error", err)
		return nil
	}
	t.ok = true
	return t.start(lastSeq, 0)
}

// start runs the syncer, after syncing what rehash wrote when that was
// more than the last tile's worth.
func (t *tree) start(lastSeq, from uint64) error {
	t.wg.Add(1)
	go t.syncer()
	if err := t.flush(); err != nil {
		return err
	}
	if lastSeq == 0 || lastSeq-from < merkle.TileWidth {
		return nil // what was hashed again is a tile's worth at most
	}
	done := make(chan error, 1)
	t.jobs <- syncJob{files: t.written, state: treeState{Size: t.edge.Size(), Root: t.edge.Root()}, done: done}
	t.written = nil
	return <-done
}

// rehash appends the records after the edge's size, up to lastSeq, read
// from the segments; when want is set, the root at its size must be its
// root. Checkpoint records have their size's partial tiles written.
func (t *tree) rehash(lastSeq uint64, want *treeState) error {
	if want != nil && t.edge.Size() == want.Size && t.edge.Root() != want.Root {
		return fmt.Errorf("the root of the tiles at size %d is not the one %s names", want.Size, TreeFile)
	}
	r := NewReader(t.dir, t.edge.Size()+1)
	defer r.Close()
	for t.edge.Size() < lastSeq {
		line, ok, err := r.Next(lastSeq)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the segments end at seq %d, before %d", t.edge.Size(), lastSeq)
		}
		t.edge.Append(merkle.LeafHash(line), t.onFull)
		if typ, _ := record.StringField(line, "event_type"); string(typ) == record.TypeCheckpoint {
			t.heads = append(t.heads, t.edge.Size()-1)
		}
		if want != nil && t.edge.Size() == want.Size && t.edge.Root() != want.Root {
			return fmt.Errorf("the root of records 1..%d is not the one %s names", want.Size, TreeFile)
		}
		if len(t.pending) >= 1024 {
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropBeyond removes the tiles that hash records after lastSeq: a crash
// can leave tiles of records whose segment bytes never reached the disk.
func (t *tree) dropBeyond(lastSeq uint64) error {
	for l := 0; 8*(l+1) < 64; l++ {
		if _, err := os.Stat(filepath.Join(t.dir, TileDir, strconv.Itoa(l))); err != nil {
			return nil
		}
		span := uint64(1) << (merkle.TileHeight * uint(l+1)) // records a full tile covers
		for n := lastSeq / span; ; n++ {
			full := tlog.Tile{H: merkle.TileHeight, L: l, N: int64(n), W: merkle.TileWidth}
			path := t.path(full)
			_, ferr := os.Stat(path)
			entries, perr := os.ReadDir(path + ".p")
			if ferr != nil && perr != nil {
				break
			}
			if ferr == nil && (n+1)*span > lastSeq {
				if err := os.Remove(path); err != nil {
					return fmt.Errorf("drop tile: %w", err)
				}
			}
			for _, e := range entries {
				w, err := strconv.ParseUint(e.Name(), 10, 64)
				if err == nil && n*span+w*(span>>merkle.TileHeight) <= lastSeq {
					continue
				}
				if err := os.Remove(filepath.Join(path+".p", e.Name())); err != nil {
					return fmt.Errorf("drop tile: %w", err)
				}
			}
		}
	}
	return nil
}

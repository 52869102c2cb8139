package store

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// refTree is the tree of records 1..n as tlog computes it, from the
// records' lines alone.
type refTree []tlog.Hash

func (r refTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = r[x]
	}
	return out, nil
}

func reference(t *testing.T, n uint64) refTree {
	t.Helper()
	var r refTree
	for seq := uint64(1); seq <= n; seq++ {
		hs, err := tlog.StoredHashes(int64(seq-1), []byte(rec(seq)), r)
		if err != nil {
			t.Fatal(err)
		}
		r = append(r, hs...)
	}
	return r
}

// crash abandons a store as kill -9 would after its last commit: nothing
// more is written, nothing synced.
func crash(s *Store) {
	close(s.stop)
	s.bg.Wait()
	close(s.tree.jobs)
	s.tree.wg.Wait()
	s.f.Close()
}

// checkpoint takes a tree head at size n, as the agent does for a
// checkpoint, and appends record n+1 (the checkpoint record) and commits:
// the tiles of size n are then on disk.
func checkpoint(t *testing.T, s *Store, n uint64) {
	t.Helper()
	if size, _, ok := s.TreeHead(); !ok || size != n {
		t.Fatalf("tree head at size %d, %v; want %d", size, ok, n)
	}
	appendN(t, s, n+1, n+1)
}

// checkTree holds the store's tiles to tlog: every tile a tree of size n
// (a checkpoint's) needs, full or partial, is on disk and, read through
// tlog's authenticated reader, gives proofs that check against the
// reference root.
func checkTree(t *testing.T, dir string, n uint64) {
	t.Helper()
	ref := reference(t, n)
	root, _ := tlog.TreeHash(int64(n), ref)
	tiles := merkle.NewTiles(os.DirFS(dir))
	for _, tile := range tlog.NewTiles(merkle.TileHeight, 0, int64(n)) {
		want, _ := tlog.ReadTileData(tile, ref)
		got, err := tiles.Read(tile.L, tile.N, tile.W)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("tile %s: %v", merkle.Path(tile), err)
		}
	}
	hr := tlog.TileHashReader(tlog.Tree{N: int64(n), Hash: root}, tiles)
	for _, i := range []int64{0, int64(n) / 2, int64(n) - 1} {
		p, err := tlog.ProveRecord(int64(n), i, hr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, int64(n), root, i, tlog.RecordHash([]byte(rec(uint64(i+1))))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTreeHeadIsTheRootOfTheRecords(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 20 << 10}) // rotates every ~150 records
	appendN(t, s, 1, 1000)
	size, root, ok := s.TreeHead()
	want, _ := tlog.TreeHash(1000, reference(t, 1000))
	if !ok || size != 1000 || root != want {
		t.Fatalf("tree head %d %v %v, want 1000 %v", size, root, ok, want)
	}
	appendN(t, s, 1001, 1001) // the checkpoint record: its commit writes size 1000's partial tiles
	for _, p := range []string{"tile/0/003.p/232", "tile/1/000.p/3"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("partial tile of the checkpoint's size: %v", err)
		}
	}
	appendN(t, s, 1002, 2100)
	checkpoint(t, s, 2100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tile/0/003.p")); err == nil {
		t.Error("partial tiles kept after their full tile was written")
	}
	checkTree(t, dir, 1000)
	checkTree(t, dir, 2100)
	var st treeState
	b, _ := os.ReadFile(filepath.Join(dir, TreeFile))
	if json.Unmarshal(b, &st); st.Size != 2101 {
		t.Fatalf("%s after a clean close: %s", TreeFile, b)
	}
	s, _ = open(t, Options{Dir: dir})
	defer s.Close()
	if size, root, _ := s.TreeHead(); size != 2101 || root != st.Root {
		t.Fatalf("reopened: tree head %d %v", size, root)
	}
}

// After a crash the tiles since the last sync may be gone or stale: the
// tree is rebuilt from TreeFile's size on, from the segments, and tiles
// of records the store lost are dropped.
func TestTreeRecovery(t *testing.T) {
	for _, c := range []struct {
		name string
		harm func(t *testing.T, dir string)
	}{
		{"kill -9", func(*testing.T, string) {}},
		{"tiles since the sync lost", func(t *testing.T, dir string) {
			for _, p := range []string{"tile/0/005", "tile/0/006", "tile/0/007"} {
				os.Remove(filepath.Join(dir, p))
			}
		}},
		{"a tile zeroed", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "tile/0/006"), make([]byte, 8192), 0o600)
		}},
		{"no tree file", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, TreeFile)) }},
		{"a tile below the synced size corrupted", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "tile/1/000.p/4"), make([]byte, 4*32), 0o600)
			os.Remove(filepath.Join(dir, "tile/0/003"))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			now := time.Unix(1e9, 0)
			s, _ := open(t, Options{Dir: dir, Now: func() time.Time { return now }})
			appendN(t, s, 1, 1100)    // the first commit syncs
			s.tree.wait(t)            // and records its size
			appendN(t, s, 1101, 2000) // within the second: not synced
			crash(s)
			c.harm(t, dir)
			s, _ = open(t, Options{Dir: dir})
			appendN(t, s, 2001, 2050)
			checkpoint(t, s, 2050)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			checkTree(t, dir, 2050)
		})
	}
}

// wait blocks until the syncer has no job.
func (tr *tree) wait(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	tr.jobs <- syncJob{done: done, state: treeState{Size: tr.edge.Size(), Root: tr.edge.Root()}}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestTilesOfLostRecordsAreDropped(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir})
	appendN(t, s, 1, 600)
	crash(s)
	// The segment loses its last 100 records (a power cut before their
	// fsync reached the disk), the tiles do not.
	active := filepath.Join(dir, SegmentName(1, ActiveExt))
	data, _ := os.ReadFile(active)
	cut := 0
	for i := 0; i < 500; i++ {
		cut += bytes.IndexByte(data[cut:], '\n') + 1
	}
	os.WriteFile(active, data[:cut], 0o600)
	s, last := open(t, Options{Dir: dir})
	if m := string(last.Line); m != rec(500) {
		t.Fatalf("last %s", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "tile/0/001")); err == nil {
		t.Fatal("a tile of records 257..512 survived the loss of 501..600")
	}
	// Other records take seqs 501..: their hashes, not the lost ones'.
	appendN(t, s, 501, 800)
	checkpoint(t, s, 800)
	s.Close()
	checkTree(t, dir, 800)
}

// A store whose first records were deleted before it had a tree keeps
// none: its checkpoints stay chain heads.
func TestNoTreeWithoutTheFirstRecords(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 2 << 10})
	appendN(t, s, 1, 100)
	s.Close()
	os.RemoveAll(filepath.Join(dir, TileDir))
	os.Remove(filepath.Join(dir, TreeFile))
	os.Remove(filepath.Join(dir, SegmentName(1, CompressedExt)))
	os.Remove(filepath.Join(dir, SegmentName(1, ActiveExt)))
	s, _ = open(t, Options{Dir: dir})
	defer s.Close()
	if _, _, ok := s.TreeHead(); ok {
		t.Fatal("a tree over a store that lost its first records")
	}
	appendN(t, s, 101, 110)
}

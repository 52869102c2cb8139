package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

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

// crash abandons a store as kill -9 would after its last commit.
func crash(s *Store) {
	close(s.stop)
	s.bg.Wait()
	s.tree.close()
	s.f.Close()
}

// checkTree holds the store's level files to tlog: every tile of a tree
// of size n, full or partial, is there and, read through tlog's
// authenticated reader, gives proofs that check against the reference
// root of the records' lines.
func checkTree(t *testing.T, dir string, n uint64) {
	t.Helper()
	ref := reference(t, n)
	root, _ := tlog.TreeHash(int64(n), ref)
	tiles := merkle.NewTiles(os.DirFS(filepath.Join(dir, HashDir)))
	defer tiles.Close()
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
	// Nothing beyond the tree.
	for l := 0; ; l++ {
		fi, err := os.Stat(filepath.Join(dir, HashDir, merkle.LevelFile(l)))
		if err != nil {
			break
		}
		if want := int64(n>>(8*l)) * 32; fi.Size() != want {
			t.Fatalf("level %d: %d bytes, want %d", l, fi.Size(), want)
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
	checkTree(t, dir, 1000) // committed: on disk
	appendN(t, s, 1001, 70000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkTree(t, dir, 70000)
	s, _ = open(t, Options{Dir: dir})
	defer s.Close()
	want, _ = tlog.TreeHash(70000, reference(t, 70000))
	if size, root, _ := s.TreeHead(); size != 70000 || root != want {
		t.Fatalf("reopened: tree head %d %v", size, root)
	}
}

// After a crash the level files may have lost or torn their tails: the
// tree takes what every level holds and hashes the rest again from the
// segments.
func TestTreeRecovery(t *testing.T) {
	cut := func(level string, bytes int64) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, HashDir, level)
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-bytes)
		}
	}
	for _, c := range []struct {
		name string
		harm func(t *testing.T, dir string)
	}{
		{"kill -9", func(*testing.T, string) {}},
		{"level 0 lost its last 300 hashes", cut("0", 300*32)},
		{"a torn hash", cut("0", 5)},
		{"level 1 lost its last hash", cut("1", 32)},
		{"level 1 gone", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, HashDir, "1")) }},
		{"no hashes at all", func(t *testing.T, dir string) { os.RemoveAll(filepath.Join(dir, HashDir)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			opt := Options{Dir: dir, SegmentMax: 20 << 10} // segments of ~150 records, compressed
			s, _ := open(t, opt)
			appendN(t, s, 1, 2000)
			crash(s)
			c.harm(t, dir)
			s, _ = open(t, opt)
			appendN(t, s, 2001, 2050)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			checkTree(t, dir, 2050)
		})
	}
}

func TestHashesOfLostRecordsAreDropped(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir})
	appendN(t, s, 1, 600)
	crash(s)
	// The segment loses its last 100 records (a power cut before their
	// fsync reached the disk), the level files do not.
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
	checkTree(t, dir, 500)
	// Other records take seqs 501..: their hashes, not the lost ones'.
	appendN(t, s, 501, 800)
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
	os.RemoveAll(filepath.Join(dir, HashDir))
	os.Remove(filepath.Join(dir, SegmentName(1, CompressedExt)))
	os.Remove(filepath.Join(dir, SegmentName(1, ActiveExt)))
	s, _ = open(t, Options{Dir: dir})
	defer s.Close()
	if _, _, ok := s.TreeHead(); ok {
		t.Fatal("a tree over a store that lost its first records")
	}
	appendN(t, s, 101, 110)
	if _, err := os.Stat(filepath.Join(dir, HashDir)); err == nil {
		t.Fatal("hashes written for a store without a tree")
	}
}

// A write of the level files cut short (a full disk: here the process's
// file size limit, in a child process) is undone, and the next write puts
// the hashes where the undo cut, not after a gap.
func TestTreeWriteCutShort(t *testing.T) {
	const n = 3000 // level 0: 96,000 bytes
	if dir := os.Getenv("STORE_TEST_TREE_DIR"); dir != "" {
		tr := newTree(filepath.Join(dir, HashDir), slog.New(slog.DiscardHandler))
		var lines []byte
		for seq := uint64(1); seq <= n; seq++ {
			lines = append(append(lines, rec(seq)...), '\n')
		}
		tr.add(lines)
		var lim syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim)
		full := lim.Cur
		lim.Cur = 50_000
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			fmt.Println("setrlimit:", err)
			os.Exit(3)
		}
		if err := tr.write(); !errors.Is(err, syscall.EFBIG) {
			fmt.Println("write at the limit:", err)
			os.Exit(4)
		}
		lim.Cur = full
		syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim)
		if err := errors.Join(tr.write(), tr.sync()); err != nil {
			fmt.Println("write again:", err)
			os.Exit(5)
		}
		tr.close()
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTreeWriteCutShort$")
	cmd.Env = append(os.Environ(), "STORE_TEST_TREE_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v %s", err, out)
	}
	checkTree(t, dir, n)
}

// Level files that kept a write out of place (a run of zero hashes where
// a write was cut short, the rest after it, as tree.write once left them)
// are found at the next start and the tree built again from the segments,
// rather than extended and signed.
func TestTreeHashesOutOfPlace(t *testing.T) {
	gap := func(level string, at int) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, HashDir, level)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b = append(b[:at*32:at*32], append(make([]byte, 7*32), b[at*32:]...)...)
			os.WriteFile(p, b, 0o600)
		}
	}
	for _, c := range []struct {
		name string
		harm func(t *testing.T, dir string)
	}{
		{"level 0, long before the tail", gap("0", 300)},
		{"level 0, in the last tile", gap("0", 1990)},
		{"level 1", gap("1", 2)},
		{"one level 1 hash zeroed, not the last", func(t *testing.T, dir string) {
			p := filepath.Join(dir, HashDir, "1")
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 32), 2*32); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			opt := Options{Dir: dir, SegmentMax: 20 << 10}
			s, _ := open(t, opt)
			appendN(t, s, 1, 2000)
			crash(s)
			c.harm(t, dir)
			s, _ = open(t, opt)
			appendN(t, s, 2001, 2050)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			checkTree(t, dir, 2050)
		})
	}
}

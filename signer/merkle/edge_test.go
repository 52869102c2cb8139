package merkle

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"testing/fstest"

	"golang.org/x/mod/sumdb/tlog"
)

// memHashes is the Go checksum database's own way to store a tree: every
// stored hash, in StoredHashIndex order. The edge is held to it.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}

func leaf(i int) []byte { return fmt.Appendf(nil, `{"seq":%d,"x":1}`, i+1) }

// build appends n leaves to an edge and to the reference store, and keeps
// the hashes the edge stores in level files.
func build(t *testing.T, n int, check func(size int, e *Edge, ref memHashes)) (*Edge, memHashes, fstest.MapFS) {
	t.Helper()
	var e Edge
	var ref memHashes
	fsys := fstest.MapFS{}
	for i := range n {
		hs, err := tlog.StoredHashes(int64(i), leaf(i), ref)
		if err != nil {
			t.Fatal(err)
		}
		ref = append(ref, hs...)
		e.Append(LeafHash(leaf(i)), func(level int, h tlog.Hash) {
			f := fsys[LevelFile(level)]
			if f == nil {
				f = &fstest.MapFile{}
				fsys[LevelFile(level)] = f
			}
			f.Data = append(f.Data, h[:]...)
		})
		if check != nil {
			check(i+1, &e, ref)
		}
	}
	return &e, ref, fsys
}

func TestEdgeRootIsRFC6962(t *testing.T) {
	if e := (Edge{}); e.Root() != EmptyRoot {
		t.Fatal("empty tree")
	}
	build(t, 70000, func(size int, e *Edge, ref memHashes) {
		if size > 600 && size%997 != 0 && size != 65536 && size != 65537 {
			return
		}
		want, err := tlog.TreeHash(int64(size), ref)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Root(); got != want {
			t.Fatalf("size %d: root %v, want %v", size, got, want)
		}
	})
}

// The level files hold the tiles tlog computes, full and partial, for
// every size.
func TestLevelFilesHoldTlogTiles(t *testing.T) {
	const n = 65536 + 300
	_, ref, fsys := build(t, n, nil)
	tiles := NewTiles(fsys)
	defer tiles.Close()
	for _, size := range []int64{n, n - 44, 70000 - 65536, 256, 1} {
		for _, tile := range tlog.NewTiles(TileHeight, 0, size) {
			want, err := tlog.ReadTileData(tile, ref)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tiles.Read(tile.L, tile.N, tile.W)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("size %d, tile %s: %v", size, Path(tile), err)
			}
		}
	}
	if _, err := tiles.Read(0, n/256, n%256+1); !errors.Is(err, ErrTileMissing) {
		t.Fatalf("a tile wider than the tree: %v", err)
	}
	if got := len(fsys["0"].Data) + len(fsys["1"].Data) + len(fsys["2"].Data); got != 32*(n+n/256+n/65536) {
		t.Fatalf("%d bytes stored", got)
	}
}

func TestPath(t *testing.T) {
	for _, c := range []struct {
		tile tlog.Tile
		path string
	}{
		{tlog.Tile{H: 8, L: 0, N: 1234067, W: 256}, "tile/0/x001/x234/067"},
		{tlog.Tile{H: 8, L: 2, N: 5, W: 17}, "tile/2/005.p/17"},
	} {
		if got := Path(c.tile); got != c.path {
			t.Errorf("%v: %s, want %s", c.tile, got, c.path)
		}
		if back, err := ParsePath(c.path); err != nil || back != c.tile {
			t.Errorf("ParsePath(%s) = %v, %v", c.path, back, err)
		}
	}
	if _, err := ParsePath("tile/data/000"); err == nil {
		t.Error("entries are not hash tiles")
	}
}

// An edge rebuilt from tiles at any size continues exactly like the
// original: partial tiles on disk or not.
func TestEdgeAt(t *testing.T) {
	const n = 65536 + 700
	_, ref, fsys := build(t, n, nil)
	tiles := NewTiles(fsys)
	for _, size := range []uint64{0, 1, 255, 256, 257, 512, 65535, 65536, 65536 + 256, 65536 + 300} {
		e, err := EdgeAt(size, tiles)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		for i := size; i < size+300; i++ {
			want, _ := tlog.TreeHash(int64(i), ref)
			if got := e.Root(); got != want {
				t.Fatalf("edge at %d, size %d: root differs", size, i)
			}
			e.Append(LeafHash(leaf(int(i))), nil)
		}
	}
	short := fstest.MapFS{"0": &fstest.MapFile{Data: fsys["0"].Data[:32*299]}, "1": fsys["1"]}
	if _, err := EdgeAt(300, NewTiles(short)); !errors.Is(err, ErrTileMissing) {
		t.Fatalf("hashes missing went unnoticed: %v", err)
	}
}

// Proofs from the tiles, through tlog's own authenticated reader.
func TestProofsFromTiles(t *testing.T) {
	const n = 65536 + 700
	e, ref, fsys := build(t, n, nil)
	tree := tlog.Tree{N: n, Hash: e.Root()}
	hr := tlog.TileHashReader(tree, NewTiles(fsys))
	for _, i := range []int64{0, 255, 256, 40000, n - 1} {
		p, err := tlog.ProveRecord(n, i, hr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, n, tree.Hash, i, LeafHash(leaf(int(i)))); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	for _, old := range []int64{1, 256, 65536, 65537, n - 1} {
		p, err := tlog.ProveTree(n, old, hr)
		if err != nil {
			t.Fatal(err)
		}
		oldRoot, _ := tlog.TreeHash(old, ref)
		if err := tlog.CheckTree(p, n, tree.Hash, old, oldRoot); err != nil {
			t.Fatalf("%d..%d: %v", old, n, err)
		}
	}
	// A wrong tile is caught by tlog's reader, not turned into a proof.
	bad := bytes.Clone(fsys["0"].Data)
	bad[(100*256+7)*32] ^= 1
	fsys["0"] = &fstest.MapFile{Data: bad}
	hr = tlog.TileHashReader(tree, NewTiles(fsys))
	if _, err := tlog.ProveRecord(n, 100*256+5, hr); err == nil {
		t.Fatal("a proof from a corrupt tile")
	}
}

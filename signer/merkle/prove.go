package merkle

import (
	"fmt"
	"io/fs"

	"golang.org/x/mod/sumdb/tlog"
)

// Prover makes inclusion and consistency proofs from a store's stored
// hashes, and checks each against the roots it is for before handing it
// out: whatever the hashes on disk are, a proof it returns verifies.
// Not safe for concurrent use; Close it.
type Prover struct {
	tiles *Tiles
	cache map[tlog.Tile][]byte // tiles read, at the width read
}

// NewProver reads the level files in fsys.
func NewProver(fsys fs.FS) *Prover {
	return &Prover{tiles: NewTiles(fsys), cache: map[tlog.Tile][]byte{}}
}

// Close closes the files read.
func (p *Prover) Close() error { return p.tiles.Close() }

// proverCache bounds the tiles kept in memory (8 KiB at most each).
const proverCache = 1024

// ReadHashes implements tlog.HashReader over the stored hashes: a hash
// at a tree level between two tile levels is computed from its tile, as
// tlog.HashFromTile does.
func (p *Prover) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		t := tlog.TileForIndex(TileHeight, x)
		data, ok := p.cache[t]
		if !ok {
			var err error
			if data, err = p.tiles.Read(t.L, t.N, t.W); err != nil {
				return nil, err
			}
			if len(p.cache) >= proverCache {
				clear(p.cache)
			}
			p.cache[t] = data
		}
		h, err := tlog.HashFromTile(t, data, x)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// Leaf returns the stored leaf hash of leaf index.
func (p *Prover) Leaf(index uint64) (tlog.Hash, error) {
	hs, err := p.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(index))})
	if err != nil {
		return tlog.Hash{}, err
	}
	return hs[0], nil
}

// ErrNotInTree says the stored hashes do not give the tree a root names.
var ErrNotInTree = fmt.Errorf("the stored hashes are not those of the tree the checkpoint signs")

// Inclusion proves that leaf is leaf index of the tree of size records
// whose root is root.
func (p *Prover) Inclusion(size, index uint64, root, leaf tlog.Hash) (tlog.RecordProof, error) {
	if index >= size {
		return nil, fmt.Errorf("leaf index %d is not in a tree of %d records", index, size)
	}
	proof, err := tlog.ProveRecord(int64(size), int64(index), p)
	if err != nil {
		return nil, err
	}
	if err := tlog.CheckRecord(proof, int64(size), root, int64(index), leaf); err != nil {
		return nil, fmt.Errorf("%w (checking the proof of leaf %d: %v)", ErrNotInTree, index, err)
	}
	return proof, nil
}

// Consistency proves that the tree of oldSize records whose root is
// oldRoot is a prefix of the tree of newSize records whose root is newRoot.
func (p *Prover) Consistency(newSize, oldSize uint64, newRoot, oldRoot tlog.Hash) (tlog.TreeProof, error) {
	if oldSize > newSize {
		return nil, fmt.Errorf("size %d is larger than size %d", oldSize, newSize)
	}
	if oldSize == 0 {
		return tlog.TreeProof{}, nil // every tree extends the empty one
	}
	proof, err := tlog.ProveTree(int64(newSize), int64(oldSize), p)
	if err != nil {
		return nil, err
	}
	if err := tlog.CheckTree(proof, int64(newSize), newRoot, int64(oldSize), oldRoot); err != nil {
		return nil, fmt.Errorf("%w (checking the proof from size %d to %d: %v)", ErrNotInTree, oldSize, newSize, err)
	}
	return proof, nil
}

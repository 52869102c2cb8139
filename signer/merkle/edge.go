// Package merkle owns the store's Merkle tree as the C2SP transparency-log
// specifications define it: the RFC 6962 leaf hash of a stored line
// (SHA-256 of 0x00 and the line without its newline; leaf index seq-1),
// the right edge of the tree that turns appended leaves into full hash
// tiles and roots, the tlog-tiles paths of those tiles, reading them back,
// and the proof bundles that `tailseal prove` writes and anyone can check
// with golang.org/x/mod/sumdb/tlog and the checkpoint verifier key.
//
// It knows no store layout beyond the tile paths, which are the C2SP
// contract: the agent writes tiles under its store directory, and readers
// hand this package an fs.FS rooted there.
package merkle

import (
	"crypto/sha256"

	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is C2SP tlog-tiles' fixed tile height: a full tile holds
// 256 hashes.
const TileHeight = 8

// TileWidth is the number of hashes in a full tile.
const TileWidth = 1 << TileHeight

// LeafHash is the tree's hash of a stored line (without its newline).
func LeafHash(line []byte) tlog.Hash { return tlog.RecordHash(line) }

// EmptyRoot is the root of the tree of no records (RFC 6962: the hash of
// the empty string).
var EmptyRoot = tlog.Hash(sha256.Sum256(nil))

// Edge is the right edge of the tree: for each tile level, the hashes of
// the tile still being filled, which is all that appending leaves and
// computing the root need. Level 0 holds leaf hashes; level L a hash per
// full tile of level L-1. It is not safe for concurrent use.
type Edge struct {
	n      uint64
	levels [][]tlog.Hash // each shorter than TileWidth
	buf    [TileWidth / 2]tlog.Hash
}

// Size is how many leaves the edge has taken.
func (e *Edge) Size() uint64 { return e.n }

// Append adds the next leaf hash. Each tile it completes, from level 0
// up, is passed to full with its 256 hashes, valid only during the call.
func (e *Edge) Append(leaf tlog.Hash, full func(t tlog.Tile, hashes []tlog.Hash)) {
	h := leaf
	for l := 0; ; l++ {
		if l == len(e.levels) {
			e.levels = append(e.levels, make([]tlog.Hash, 0, TileWidth))
		}
		e.levels[l] = append(e.levels[l], h)
		if len(e.levels[l]) < TileWidth {
			break
		}
		t := tlog.Tile{H: TileHeight, L: l, N: int64(e.n >> (TileHeight * uint(l+1))), W: TileWidth}
		if full != nil {
			full(t, e.levels[l])
		}
		h = e.subtree(e.levels[l])
		e.levels[l] = e.levels[l][:0]
	}
	e.n++
}

// subtree is the root of the perfect subtree whose leaves (at their
// level) are hs, len(hs) a power of two.
func (e *Edge) subtree(hs []tlog.Hash) tlog.Hash {
	if len(hs) == 1 {
		return hs[0]
	}
	w := e.buf[:len(hs)/2]
	for i := range w {
		w[i] = tlog.NodeHash(hs[2*i], hs[2*i+1])
	}
	for len(w) > 1 {
		for i := 0; i < len(w)/2; i++ {
			w[i] = tlog.NodeHash(w[2*i], w[2*i+1])
		}
		w = w[:len(w)/2]
	}
	return w[0]
}

// Root is the RFC 6962 root of the leaves appended so far: the perfect
// subtrees the size decomposes into, folded from the right.
func (e *Edge) Root() tlog.Hash {
	if e.n == 0 {
		return EmptyRoot
	}
	var parts [64]tlog.Hash
	k := 0
	for l := len(e.levels) - 1; l >= 0; l-- {
		hs := e.levels[l]
		for off := 0; off < len(hs); {
			w := 1
			for w*2 <= len(hs)-off {
				w *= 2
			}
			parts[k] = e.subtree(hs[off : off+w])
			k++
			off += w
		}
	}
	r := parts[k-1]
	for i := k - 2; i >= 0; i-- {
		r = tlog.NodeHash(parts[i], r)
	}
	return r
}

// Partial returns the partial tiles of the tree of the given size that
// the edge still holds: those C2SP tlog-tiles asks a log to serve for a
// checkpoint of that size. A level whose tile has been completed since
// is left out (its full tile serves instead); size may not exceed Size.
// The hashes are valid until the next Append.
func (e *Edge) Partial(size uint64) (tiles []tlog.Tile, hashes [][]tlog.Hash) {
	for l := range e.levels {
		w := int((size >> (TileHeight * uint(l))) % TileWidth)
		n := int64(size >> (TileHeight * uint(l+1)))
		if w == 0 || n != int64(e.n>>(TileHeight*uint(l+1))) || len(e.levels[l]) < w {
			continue
		}
		tiles = append(tiles, tlog.Tile{H: TileHeight, L: l, N: n, W: w})
		hashes = append(hashes, e.levels[l][:w])
	}
	return tiles, hashes
}

// Clone returns an independent copy of the edge.
func (e *Edge) Clone() *Edge {
	c := &Edge{n: e.n, levels: make([][]tlog.Hash, len(e.levels))}
	for l, hs := range e.levels {
		c.levels[l] = append(make([]tlog.Hash, 0, TileWidth), hs...)
	}
	return c
}

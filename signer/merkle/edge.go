// Package merkle owns the store's Merkle tree as the C2SP transparency-log
// specifications define it: the RFC 6962 leaf hash of a stored line
// (SHA-256 of 0x00 and the line without its newline; leaf index seq-1),
// the right edge of the tree that turns appended leaves into stored hashes
// and roots, the tlog-tiles view of the stored hashes (tile paths, and a
// tlog.TileReader), and the proof bundles that `tailseal prove` writes
// and anyone can check with golang.org/x/mod/sumdb/tlog and the checkpoint
// verifier key.
//
// The stored hashes of level L (TileHeight levels of the tree apart) are
// kept back to back in one file named L: that file is the concatenation
// of C2SP tlog-tiles' level-L tiles, so tile L/N of width W is its bytes
// from 8192·N, W·32 long. Readers hand this package an fs.FS holding
// those files.
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

// Append adds the next leaf hash. stored, if set, is told every hash the
// tree stores for it, in order: the leaf hash at level 0, and the root
// of each tile it completes at the level above (RFC 6962 hashes of
// subtrees of 256, 65,536, … leaves): level L's hashes, back to back, are
// C2SP tlog-tiles' level-L tiles, full ones and the partial last one.
func (e *Edge) Append(leaf tlog.Hash, stored func(level int, h tlog.Hash)) {
	h := leaf
	for l := 0; ; l++ {
		if l == len(e.levels) {
			e.levels = append(e.levels, make([]tlog.Hash, 0, TileWidth))
		}
		e.levels[l] = append(e.levels[l], h)
		if stored != nil {
			stored(l, h)
		}
		if len(e.levels[l]) < TileWidth {
			break
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

// Clone returns an independent copy of the edge.
func (e *Edge) Clone() *Edge {
	c := &Edge{n: e.n, levels: make([][]tlog.Hash, len(e.levels))}
	for l, hs := range e.levels {
		c.levels[l] = append(make([]tlog.Hash, 0, TileWidth), hs...)
	}
	return c
}

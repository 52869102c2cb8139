package merkle

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// Path is the C2SP tlog-tiles path of t, tile/<L>/<N>[.p/<W>]: the Go
// checksum database's tile path without its height element, which
// tlog-tiles fixes at 8.
func Path(t tlog.Tile) string {
	p := t.Path() // tile/8/<L>/...
	return "tile/" + p[len("tile/"+strconv.Itoa(TileHeight)+"/"):]
}

// ParsePath is the inverse of Path.
func ParsePath(p string) (tlog.Tile, error) {
	rest, ok := strings.CutPrefix(p, "tile/")
	if !ok {
		return tlog.Tile{}, fmt.Errorf("malformed tile path %q", p)
	}
	t, err := tlog.ParseTilePath("tile/" + strconv.Itoa(TileHeight) + "/" + rest)
	if err != nil || t.L < 0 {
		return tlog.Tile{}, fmt.Errorf("malformed tile path %q", p)
	}
	return t, nil
}

// ErrTileMissing says a tile the tree needs is not on disk.
var ErrTileMissing = errors.New("hash tile missing")

// Tiles reads the tiles of a tree from a file system rooted where its
// tile/ directory is (the store directory, or a copy of it). A tile of
// width w is served from its partial tile, a wider one or the full
// tile, as C2SP lets a client fall back to; above level 0, from the
// full tiles below it when it is on disk in no width at all. It
// implements tlog.TileReader; tlog.TileHashReader checks what it reads
// against a tree's root. Not safe for concurrent use.
type Tiles struct {
	fsys  fs.FS
	cache map[tlog.Tile][]byte // full tiles read
	edge  Edge                 // scratch for subtree hashes
}

var _ tlog.TileReader = (*Tiles)(nil)

// NewTiles reads tiles from fsys.
func NewTiles(fsys fs.FS) *Tiles { return &Tiles{fsys: fsys, cache: map[tlog.Tile][]byte{}} }

// cacheTiles bounds the full tiles kept in memory (8 KiB each).
const cacheTiles = 512

// Height implements tlog.TileReader.
func (r *Tiles) Height() int { return TileHeight }

// ReadTiles implements tlog.TileReader.
func (r *Tiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := r.Read(t.L, t.N, t.W)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

// SaveTiles implements tlog.TileReader: the tiles are on disk already.
func (r *Tiles) SaveTiles([]tlog.Tile, [][]byte) {}

// Read returns the first w hashes (w*32 bytes) of tile n at level l.
func (r *Tiles) Read(l int, n int64, w int) ([]byte, error) {
	full := tlog.Tile{H: TileHeight, L: l, N: n, W: TileWidth}
	if data, ok := r.cache[full]; ok {
		return data[:w*tlog.HashSize], nil
	}
	data, err := fs.ReadFile(r.fsys, Path(full))
	if err == nil && len(data) == TileWidth*tlog.HashSize {
		if len(r.cache) >= cacheTiles {
			clear(r.cache)
		}
		r.cache[full] = data
		return data[:w*tlog.HashSize], nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", Path(full), err)
	}
	if w < TileWidth {
		if data, ok := r.partial(full, w); ok {
			return data, nil
		}
	}
	if l == 0 {
		return nil, fmt.Errorf("%w: %s (width %d)", ErrTileMissing, Path(full), w)
	}
	// Each hash of a level-l tile is the root of a full tile below it.
	out := make([]byte, 0, w*tlog.HashSize)
	for i := range w {
		below, err := r.Read(l-1, n*TileWidth+int64(i), TileWidth)
		if err != nil {
			return nil, err
		}
		h := r.edge.subtree(hashes(below))
		out = append(out, h[:]...)
	}
	return out, nil
}

// partial reads the narrowest partial tile of full's coordinates that is
// at least w wide.
func (r *Tiles) partial(full tlog.Tile, w int) ([]byte, bool) {
	exact := full
	exact.W = w
	if data, err := fs.ReadFile(r.fsys, Path(exact)); err == nil && len(data) == w*tlog.HashSize {
		return data, true
	}
	dir := path.Dir(Path(exact))
	entries, err := fs.ReadDir(r.fsys, dir)
	if err != nil {
		return nil, false
	}
	best := TileWidth
	for _, e := range entries {
		if ww, err := strconv.Atoi(e.Name()); err == nil && ww > w && ww < best {
			best = ww
		}
	}
	if best == TileWidth {
		return nil, false
	}
	data, err := fs.ReadFile(r.fsys, dir+"/"+strconv.Itoa(best))
	if err != nil || len(data) != best*tlog.HashSize {
		return nil, false
	}
	return data[:w*tlog.HashSize], true
}

// hashes views tile data as hashes.
func hashes(data []byte) []tlog.Hash {
	hs := make([]tlog.Hash, len(data)/tlog.HashSize)
	for i := range hs {
		copy(hs[i][:], data[i*tlog.HashSize:])
	}
	return hs
}

// EdgeAt rebuilds the right edge of the tree of the given size from its
// tiles. Nothing is checked: compare its Root with a trusted root, or
// append leaves and compare a later one.
func EdgeAt(size uint64, r *Tiles) (*Edge, error) {
	e := &Edge{n: size}
	for l := 0; l == 0 || size>>(TileHeight*uint(l)) > 0; l++ {
		w := int((size >> (TileHeight * uint(l))) % TileWidth)
		n := int64(size >> (TileHeight * uint(l+1)))
		level := make([]tlog.Hash, 0, TileWidth)
		if w > 0 {
			data, err := r.Read(l, n, w)
			if err != nil {
				return nil, err
			}
			level = append(level, hashes(data)...)
		}
		e.levels = append(e.levels, level)
	}
	return e, nil
}

// TileHashes is the data of a tile: its hashes back to back.
func TileHashes(hs []tlog.Hash) []byte {
	out := make([]byte, 0, len(hs)*tlog.HashSize)
	for i := range hs {
		out = append(out, hs[i][:]...)
	}
	return out
}

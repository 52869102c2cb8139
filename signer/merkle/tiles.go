package merkle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// LevelFile names the file of level l's stored hashes.
func LevelFile(l int) string { return strconv.Itoa(l) }

// ErrTileMissing says hashes the tree needs are not on disk.
var ErrTileMissing = errors.New("hashes missing")

// Tiles reads tiles from the level files of a tree (see the package
// doc) in fsys, whose files must be io.ReaderAt (os.DirFS's are). It
// implements tlog.TileReader; tlog.TileHashReader checks what it reads
// against a tree's root. Not safe for concurrent use; Close it.
type Tiles struct {
	fsys  fs.FS
	files map[int]io.ReaderAt
	open  []io.Closer
}

var _ tlog.TileReader = (*Tiles)(nil)

// NewTiles reads tiles from fsys.
func NewTiles(fsys fs.FS) *Tiles { return &Tiles{fsys: fsys, files: map[int]io.ReaderAt{}} }

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
	f, err := r.level(l)
	if err != nil {
		return nil, err
	}
	data := make([]byte, w*tlog.HashSize)
	if _, err := f.ReadAt(data, n*TileWidth*tlog.HashSize); err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: %s (width %d)", ErrTileMissing, Path(tlog.Tile{H: TileHeight, L: l, N: n, W: w}), w)
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", Path(tlog.Tile{H: TileHeight, L: l, N: n, W: w}), err)
	}
	return data, nil
}

func (r *Tiles) level(l int) (io.ReaderAt, error) {
	if f, ok := r.files[l]; ok {
		return f, nil
	}
	f, err := r.fsys.Open(LevelFile(l))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no level-%d hashes", ErrTileMissing, l)
	}
	if err != nil {
		return nil, err
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("level-%d hashes: the file system cannot read at an offset", l)
	}
	r.files[l] = ra
	r.open = append(r.open, f)
	return ra, nil
}

// Close closes the files read.
func (r *Tiles) Close() error {
	var err error
	for _, f := range r.open {
		err = errors.Join(err, f.Close())
	}
	r.open, r.files = nil, map[int]io.ReaderAt{}
	return err
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
// stored hashes. Nothing is checked: compare its Root with a trusted
// root, or append leaves and compare a later one.
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

package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression is how rotated segments are compressed (TAILSEAL_COMPRESSION).
// Both are read whatever the agent writes, so a store may hold both.
//
//   - gzip, the default: <seq>.jsonl.gz, gzip members, read by zcat and
//     every gzip library.
//   - zstd: <seq>.jsonl.zst, one zstd frame per member and a skippable
//     frame at the end, read by zstdcat. It compresses at the same speed
//     and 12 to 15 % smaller, and decompresses 3.5 times faster, so that
//     verify, queries and exports read faster (docs/performance.md).
type Compression string

const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// Compressed segment file name suffixes.
const (
	CompressedExt = ".jsonl.gz"
	ZstdExt       = ".jsonl.zst"
)

// ParseCompression checks a TAILSEAL_COMPRESSION value.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(strings.ToLower(s)); c {
	case Gzip, Zstd:
		return c, nil
	}
	return "", fmt.Errorf("compression %q: must be gzip or zstd", s)
}

// Ext is the file name suffix of a segment compressed so.
func (c Compression) Ext() string {
	if c == Zstd {
		return ZstdExt
	}
	return CompressedExt
}

// CompressionOf is how the segment file name is compressed, if it is.
func CompressionOf(name string) (Compression, bool) {
	switch {
	case strings.HasSuffix(name, CompressedExt):
		return Gzip, true
	case strings.HasSuffix(name, ZstdExt):
		return Zstd, true
	}
	return "", false
}

// CutCompressedExt returns name without its compressed suffix.
func CutCompressedExt(name string) (string, bool) {
	if c, ok := CompressionOf(name); ok {
		return name[:len(name)-len(c.Ext())], true
	}
	return name, false
}

// A zstd segment ends with a skippable frame (RFC 8878 §3.1.2, which every
// zstd reader skips) that holds the segment's uncompressed size: the
// trailer Intact reads, as it reads a gzip member's.
const (
	zstdTrailerMagic = 0x184D2A5B
	zstdTrailerLen   = 16 // magic, frame size (8), the size
)

func zstdTrailer(size int64) []byte {
	var b [zstdTrailerLen]byte
	binary.LittleEndian.PutUint32(b[:], zstdTrailerMagic)
	binary.LittleEndian.PutUint32(b[4:], 8)
	binary.LittleEndian.PutUint64(b[8:], uint64(size))
	return b[:]
}

// readZstdTrailer is the size the trailer at the end of f gives, or -1
// when f does not end with one.
func readZstdTrailer(f *os.File) int64 {
	fi, err := f.Stat()
	if err != nil || fi.Size() < zstdTrailerLen {
		return -1
	}
	var b [zstdTrailerLen]byte
	if _, err := f.ReadAt(b[:], fi.Size()-zstdTrailerLen); err != nil ||
		binary.LittleEndian.Uint32(b[:]) != zstdTrailerMagic || binary.LittleEndian.Uint32(b[4:]) != 8 {
		return -1
	}
	return int64(binary.LittleEndian.Uint64(b[8:]))
}

// maxZstdMemory bounds what a zstd reader may allocate for a frame: the
// agent's frames are a member each, and an edited one must not make a
// reader allocate what it claims.
const maxZstdMemory = 2 * maxMemberBytes

// zstdEncoders and zstdDecoders are kept between segments: an encoder's
// tables are a few hundred KB. A frame is a member of about 64 KiB, so a
// window of 128 KiB loses nothing, and with the lower memory option the
// encoder takes 0.8 MB of heap instead of 2.7 (1 MiB window, the default
// memory): the agent's peak RSS is a target. Each frame ends with its
// checksum, as a gzip member ends with its CRC: a damaged member is an
// error at its end, to zstd -t as to every reader. A reader of the whole
// segment may have given out the member's lines before that, as with
// gzip; a reader of one member (ScanMembers) checks it first.
var (
	zstdEncoders = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(true), zstd.WithWindowSize(128<<10), zstd.WithLowerEncoderMem(true))
		return e
	}}
	zstdDecoders = sync.Pool{New: func() any {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxZstdMemory))
		return d
	}}
)

// memberEncoder compresses one member at a time.
type memberEncoder interface {
	begin(w io.Writer)
	io.Writer
	end() error
	// finish writes what follows the last member, for a segment of size
	// uncompressed bytes.
	finish(w io.Writer, size int64) error
}

func newMemberEncoder(c Compression) memberEncoder {
	if c == Zstd {
		return &zstdMember{enc: zstdEncoders.Get().(*zstd.Encoder)}
	}
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return &gzipMember{zw: zw}
}

// BestSpeed: on a small sidecar, CPU for ingest matters more than the
// last few percent of compression.
type gzipMember struct{ zw *gzip.Writer }

func (g *gzipMember) begin(w io.Writer)             { g.zw.Reset(w) }
func (g *gzipMember) Write(p []byte) (int, error)   { return g.zw.Write(p) }
func (g *gzipMember) end() error                    { return g.zw.Close() }
func (g *gzipMember) finish(io.Writer, int64) error { return nil }

// zstdMember gathers a member and compresses it whole, so that its frame
// header holds its size (EncodeAll writes it).
type zstdMember struct {
	enc       *zstd.Encoder
	w         io.Writer
	in, frame []byte
}

func (z *zstdMember) begin(w io.Writer) { z.w, z.in = w, z.in[:0] }

func (z *zstdMember) Write(p []byte) (int, error) {
	z.in = append(z.in, p...)
	return len(p), nil
}

func (z *zstdMember) end() error {
	z.frame = z.enc.EncodeAll(z.in, z.frame[:0])
	_, err := z.w.Write(z.frame)
	return err
}

func (z *zstdMember) finish(w io.Writer, size int64) error {
	zstdEncoders.Put(z.enc)
	z.enc = nil
	_, err := w.Write(zstdTrailer(size))
	return err
}

// segmentDecoder reads a compressed segment whole, its members one after
// the other.
func segmentDecoder(c Compression, r io.Reader) (io.Reader, func(), error) {
	if c == Zstd {
		d := zstdDecoders.Get().(*zstd.Decoder)
		if err := d.Reset(r); err != nil {
			zstdDecoders.Put(d)
			return nil, nil, err
		}
		return d, func() { d.Reset(nil); zstdDecoders.Put(d) }, nil
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	return zr, func() { zr.Close() }, nil
}

// memberDecoder decompresses single members, one after the other.
type memberDecoder struct {
	gz   gzip.Reader
	br   *bufio.Reader
	zs   *zstd.Decoder
	comp []byte
}

// errNotOneMember: the bytes are not exactly one member.
var errNotOneMember = errors.New("it does not end where the next one begins")

// decode decompresses the member in the file's bytes [from, to), which
// must be exactly one, into buf (n bytes are expected; more is an error).
func (d *memberDecoder) decode(c Compression, f io.ReaderAt, from, to, n int64, buf []byte) ([]byte, error) {
	if c == Zstd {
		return d.decodeZstd(f, from, to, n, buf)
	}
	return d.decodeGzip(f, from, to, n, buf)
}

func (d *memberDecoder) decodeGzip(f io.ReaderAt, from, to, n int64, buf []byte) ([]byte, error) {
	if d.br == nil {
		d.br = bufio.NewReaderSize(nil, 64<<10)
	}
	d.br.Reset(io.NewSectionReader(f, from, to-from))
	if err := d.gz.Reset(d.br); err != nil {
		return buf, err
	}
	d.gz.Multistream(false)
	buf = slices.Grow(buf[:0], int(n))[:n]
	if got, err := io.ReadFull(&d.gz, buf); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("%d bytes or fewer, the table says %d", got, n)
		}
		return buf[:0], err
	}
	// Then the member's end: io.EOF only once its trailer was read whole
	// and held to the bytes (a trailer cut short by the next offset gives
	// io.ErrUnexpectedEOF, and its CRC is not checked).
	var one [1]byte
	switch k, err := d.gz.Read(one[:]); {
	case k > 0:
		return buf[:0], fmt.Errorf("more bytes than the table's %d", n)
	case err != io.EOF:
		return buf[:0], fmt.Errorf("its gzip trailer: %v", err)
	}
	if _, err := d.br.ReadByte(); err != io.EOF {
		return buf[:0], errNotOneMember
	}
	return buf, nil
}

func (d *memberDecoder) decodeZstd(f io.ReaderAt, from, to, n int64, buf []byte) ([]byte, error) {
	if to-from > maxMemberBytes {
		return buf[:0], fmt.Errorf("%d compressed bytes", to-from)
	}
	d.comp = slices.Grow(d.comp[:0], int(to-from))[:to-from]
	if _, err := f.ReadAt(d.comp, from); err != nil {
		return buf[:0], err
	}
	var h zstd.Header
	if err := h.Decode(d.comp); err != nil || h.Skippable || !h.HasFCS || h.FrameContentSize != uint64(n) {
		return buf[:0], fmt.Errorf("not a zstd frame of %d bytes", n)
	}
	if d.zs == nil {
		d.zs = zstdDecoders.Get().(*zstd.Decoder)
	}
	out, err := d.zs.DecodeAll(d.comp, buf[:0])
	switch {
	case err != nil:
		return out[:0], err
	case int64(len(out)) != n:
		return out[:0], errNotOneMember
	}
	return out, nil
}

// release gives back what the decoder holds.
func (d *memberDecoder) release() {
	if d.zs != nil {
		zstdDecoders.Put(d.zs)
		d.zs = nil
	}
}

// memberStartsAt reports whether a member of n uncompressed bytes starts
// at the file's offset off (for gzip, its trailer, before end, says n
// modulo 2^32): the two small reads checkOffsets makes of each member.
func memberStartsAt(c Compression, f io.ReaderAt, off, end, n int64) bool {
	if off < 0 || end-off < 6 { // offsets are not attested: anything may be there
		return false
	}
	if c == Zstd {
		var b [zstd.HeaderMaxSize]byte
		k, _ := f.ReadAt(b[:min(int64(len(b)), end-off)], off)
		var h zstd.Header
		return h.Decode(b[:k]) == nil && !h.Skippable && h.HasFCS && h.FrameContentSize == uint64(n)
	}
	var b [4]byte
	_, err1 := f.ReadAt(b[:2], off)
	head := b[0] == 0x1f && b[1] == 0x8b
	_, err2 := f.ReadAt(b[:], end-4)
	return err1 == nil && err2 == nil && head && end-off >= 18 && binary.LittleEndian.Uint32(b[:]) == uint32(n)
}

// membersEnd is where the last member ends in a file of size bytes.
func membersEnd(c Compression, size int64) int64 {
	if c == Zstd {
		return size - zstdTrailerLen
	}
	return size
}

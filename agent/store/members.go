package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// A compressed segment is a series of gzip members (RFC 1952 allows any
// number, and every gzip reader reads them as one stream), or of zstd
// frames (likewise), cut at line boundaries: a member ends with the first
// line that brings it to MemberBytes uncompressed bytes. Since v4 of the
// index, the segment's filter file describes every member (where it starts, uncompressed and
// compressed, its first seq and line) with a lead and a pseudonym Bloom
// filter of its own, so that a lead or subject query decompresses only
// the members that may hold it instead of the whole segment.

// DefaultMemberBytes is the uncompressed size at which a member is cut.
// Measured on 52 MB segments of stored records (docs/performance.md):
// 64 KiB members cost 2.7 % of compression, 128 KiB 1.4 %, 256 KiB
// 0.7 %; a query reads whole members, so smaller ones read less: a
// subject in every segment of a 10M-event store took 0.60 s at 64 KiB
// against 0.93 at 128 KiB.
const DefaultMemberBytes = 64 << 10

// MemberRef is what an index entry attests of a segment's members: their
// table and filters are in the segment's filter file after the segment's
// own filters, Bytes long, with SHA-256 SHA256. Only what the segment's
// lines determine is attested (so that a collector compressing the same
// records writes the same index line whatever its compressor): the
// compressed offsets follow, unattested, and a reader holds each member
// it reads to the table (its length, lines and first seq), reading the
// segment whole when it does not match.
type MemberRef struct {
	Size   int    `json:"size"`  // the cut: MemberBytes when written
	Count  int    `json:"count"` // members
	Last   int64  `json:"last"`  // uncompressed offset of the last member: a gzip one's trailer holds Bytes-Last
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// memberRowSize is one row of the member table: uncompressed offset,
// first seq, first line (uint64 each), then the words of its lead and
// pseudonym filters (uint32 each), little-endian.
const memberRowSize = 32

// Member is one gzip member (or zstd frame) of a compressed segment.
type Member struct {
	Offset     int64  // uncompressed, in the segment
	Seq        uint64 // of its first line; 0 when that line is not a record
	Line       int    // 1-based number of its first line in the segment
	GZ         int64  // compressed offset in the file (gzip or zstd): unattested
	Leads      *Bloom // its lead_id values
	Pseudonyms *Bloom // its <kind:hex> tokens
}

// memberTable builds the attested member section of a filter file while
// the indexer goes through a segment.
type memberTable struct {
	size       int
	rows, bits []byte
	cur        Member
	count      int
	// the current member's filters, unfolded: each member reuses them
	leads, pseudonyms Bloom
	leadBits, tokBits []uint64
}

// newMemberTable starts the table of a segment of about segment bytes,
// in members of size bytes. Its rows and filters are sized for that
// segment up front: grown by appends, they had cost the agent 1 MiB of
// peak memory at each compression.
func newMemberTable(size int, segment int64) *memberTable {
	segment = min(max(segment, 0), 1<<30) // a guess only: an edited entry may claim anything
	n := int(segment/int64(size)) + 1
	t := &memberTable{size: size, leadBits: newBloom(size / filterBytes).bits, tokBits: newBloom(size / memberTokenBytes).bits,
		rows: make([]byte, 0, n*memberRowSize), bits: make([]byte, 0, segment/recordsPerFilterByte)}
	t.start(0, 1)
	return t
}

// start begins a member at uncompressed offset off, line line.
func (t *memberTable) start(off int64, line int) {
	clear(t.leadBits)
	clear(t.tokBits)
	t.leads, t.pseudonyms = Bloom{k: bloomK, bits: t.leadBits}, Bloom{k: bloomK, bits: t.tokBits}
	t.cur = Member{Offset: off, Line: line, Leads: &t.leads, Pseudonyms: &t.pseudonyms}
}

// recordsPerFilterByte is the segment bytes per byte of member filters,
// folded, on the records the agent stores (466 KB for the 403 members
// of 128 KiB of a 52 MB segment, about the same in 64 KiB members): the
// table's first guess, a little over.
const recordsPerFilterByte = 100

// memberTokenBytes sizes a member's pseudonym filter: room for one token
// per 64 bytes (records carry several), folded down to what it holds.
const memberTokenBytes = 64

// end folds the member's filters and adds it to the table.
func (t *memberTable) end() {
	m := &t.cur
	m.Leads.fold()
	m.Pseudonyms.fold()
	t.rows = binary.LittleEndian.AppendUint64(t.rows, uint64(m.Offset))
	t.rows = binary.LittleEndian.AppendUint64(t.rows, m.Seq)
	t.rows = binary.LittleEndian.AppendUint64(t.rows, uint64(m.Line))
	t.rows = binary.LittleEndian.AppendUint32(t.rows, uint32(len(m.Leads.bits)))
	t.rows = binary.LittleEndian.AppendUint32(t.rows, uint32(len(m.Pseudonyms.bits)))
	for _, b := range []*Bloom{m.Leads, m.Pseudonyms} {
		for _, w := range b.bits {
			t.bits = binary.LittleEndian.AppendUint64(t.bits, w)
		}
	}
	t.count++
}

// section is the attested bytes, the rows then the filters, and their
// reference.
func (t *memberTable) section() ([][]byte, *MemberRef) {
	h := sha256.New()
	h.Write(t.rows)
	h.Write(t.bits)
	last := int64(binary.LittleEndian.Uint64(t.rows[len(t.rows)-memberRowSize:]))
	return [][]byte{t.rows, t.bits}, &MemberRef{Size: t.size, Count: t.count, Last: last, Bytes: len(t.rows) + len(t.bits),
		SHA256: base64.StdEncoding.EncodeToString(h.Sum(nil))}
}

// memberWriter compresses a segment into members cut at line boundaries,
// feeding the indexer the same bytes and telling it where members start.
type memberWriter struct {
	size  int64
	in    int64 // uncompressed bytes in the open member
	total int64 // in the segment
	open  bool
	zw    memberEncoder
	out   *countingWriter
	ix    *indexer
	gz    []int64 // compressed offset of each member
}

func newMemberWriter(w io.Writer, c Compression, size int, ix *indexer) *memberWriter {
	out := &countingWriter{w: w}
	zw := newMemberEncoder(c)
	zw.begin(out)
	return &memberWriter{size: int64(size), open: true, zw: zw, out: out, ix: ix, gz: []int64{0}}
}

func (w *memberWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if !w.open {
			w.zw.begin(w.out)
			w.gz = append(w.gz, w.out.n)
			w.ix.startMember()
			w.open, w.in = true, 0
		}
		k := len(p)
		if w.size > 0 {
			from := max(w.size-1-w.in, 0) // the member's last line ends at or after here
			if from < int64(len(p)) {
				if j := bytes.IndexByte(p[from:], '\n'); j >= 0 {
					k = int(from) + j + 1
				}
			}
		}
		w.ix.Write(p[:k])
		if _, err := w.zw.Write(p[:k]); err != nil {
			return n - len(p), err
		}
		w.in += int64(k)
		w.total += int64(k)
		if w.size > 0 && w.in >= w.size && p[k-1] == '\n' {
			if err := w.zw.end(); err != nil {
				return n - len(p), err
			}
			w.open = false
		}
		p = p[k:]
	}
	return n, nil
}

// Close ends the last member, and the segment.
func (w *memberWriter) Close() error {
	if w.open {
		w.open = false
		if err := w.zw.end(); err != nil {
			return err
		}
	}
	return w.zw.finish(w.out, w.total)
}

// offsets is the unattested tail of the filter file: each member's
// compressed offset.
func (w *memberWriter) offsets() []byte {
	raw := make([]byte, 0, 8*len(w.gz))
	for _, o := range w.gz {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(o))
	}
	return raw
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Members returns the member table of the segment e describes, in the
// store in dir, with each member's filters: from its filter file, the
// attested part checked against e (ErrFilter when it does not match).
// Nil with no error when the entry has no member table (index v3 and
// before: the segment is one member).
func Members(dir string, e *IndexEntry) ([]Member, error) {
	if e.Filters == nil || e.Filters.Members == nil {
		return nil, nil
	}
	ref := e.Filters.Members
	if k := e.Filters.K; k == 0 || k > 32 {
		return nil, fmt.Errorf("%w: k=%d", ErrFilter, k)
	}
	if ref.Count <= 0 || ref.Count > 1<<24 || ref.Bytes < ref.Count*memberRowSize || ref.Bytes > 1<<30 {
		return nil, fmt.Errorf("%w: %d members in %d bytes", ErrFilter, ref.Count, ref.Bytes)
	}
	f, err := os.Open(filepath.Join(dir, FilterPath(e.Segment)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFilter, err)
	}
	defer f.Close()
	at := 8 * int64(e.Filters.Leads.Words+e.Filters.Pseudonyms.Words)
	if fi, err := f.Stat(); err != nil || at < 0 || fi.Size() < at+int64(ref.Bytes+8*ref.Count) {
		// before allocating what an edited entry claims
		return nil, fmt.Errorf("%w: %s is shorter than its entry says", ErrFilter, FilterPath(e.Segment))
	}
	raw := make([]byte, ref.Bytes+8*ref.Count)
	if _, err := f.ReadAt(raw, at); err != nil {
		return nil, fmt.Errorf("%w: %s: members: %v", ErrFilter, FilterPath(e.Segment), err)
	}
	section, offsets := raw[:ref.Bytes], raw[ref.Bytes:]
	if sum := sha256.Sum256(section); base64.StdEncoding.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, fmt.Errorf("%w: %s has another member table than the entry attests", ErrFilter, FilterPath(e.Segment))
	}
	out := make([]Member, ref.Count)
	bits := section[ref.Count*memberRowSize:]
	for i := range out {
		row := section[i*memberRowSize:]
		m := &out[i]
		m.Offset, m.Seq, m.Line = int64(binary.LittleEndian.Uint64(row)), binary.LittleEndian.Uint64(row[8:]), int(binary.LittleEndian.Uint64(row[16:]))
		m.GZ = int64(binary.LittleEndian.Uint64(offsets[8*i:]))
		for _, b := range []**Bloom{&m.Leads, &m.Pseudonyms} {
			n := int(binary.LittleEndian.Uint32(row[24:]))
			if b == &m.Pseudonyms {
				n = int(binary.LittleEndian.Uint32(row[28:]))
			}
			if n <= 0 || n&(n-1) != 0 || 8*n > len(bits) {
				return nil, fmt.Errorf("%w: %s: member %d has a filter of %d words", ErrFilter, FilterPath(e.Segment), i, n)
			}
			*b = &Bloom{k: e.Filters.K, bits: make([]uint64, n)}
			for j := range (*b).bits {
				(*b).bits[j] = binary.LittleEndian.Uint64(bits[8*j:])
			}
			bits = bits[8*n:]
		}
		if i > 0 && (m.Offset <= out[i-1].Offset || m.Line <= out[i-1].Line || m.GZ <= out[i-1].GZ) {
			return nil, fmt.Errorf("%w: %s: member %d does not follow member %d", ErrFilter, FilterPath(e.Segment), i, i-1)
		}
	}
	if len(bits) != 0 || out[0].Offset != 0 || out[0].Line != 1 || out[0].GZ != 0 || out[len(out)-1].Offset != ref.Last || ref.Last > e.Bytes {
		return nil, fmt.Errorf("%w: %s: the member table does not describe the segment", ErrFilter, FilterPath(e.Segment))
	}
	return out, nil
}

// MemberCandidates returns the indexes of the members that may hold a
// record matching lead (nil: any) and one of subjects (nil: any),
// as their filters say.
func MemberCandidates(ms []Member, lead []byte, subjects [][]byte) []int {
	lh := Hash(lead)
	sh := make([]uint64, len(subjects))
	for i, s := range subjects {
		sh[i] = Hash(s)
	}
	var out []int
	for i := range ms {
		if lead != nil && !ms[i].Leads.mayContainHash(lh) {
			continue
		}
		if subjects != nil && !slices.ContainsFunc(sh, ms[i].Pseudonyms.mayContainHash) {
			continue
		}
		out = append(out, i)
	}
	return out
}

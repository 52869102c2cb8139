package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tailseal/tailseal/agent/atomicfile"
)

// FilterDir holds the Bloom filters of the compressed segments, one file
// per segment, since v3 of the index: decoding them from base64 JSON was
// most of the cost of loading the index, and most queries need none.
const FilterDir = "filters"

// Filters is what an index entry holds of its segment's Bloom filters:
// their bits are in FilterDir/<first seq>.bloom, the lead filter's 64-bit
// words and then the pseudonym filter's, little-endian. The entry, which
// the agent attests, holds their sizes and digests, so a reader checks
// the bits it loads: a filter that does not match is not used and the
// segment is read whole. A tampered filter file costs a scan, it cannot
// hide records. Since v4, the member table follows (see MemberRef).
type Filters struct {
	K          uint32     `json:"k"`
	Leads      FilterRef  `json:"leads"`
	Pseudonyms FilterRef  `json:"pseudonyms"`
	Members    *MemberRef `json:"members,omitempty"`
}

// FilterRef sizes and attests one filter in a segment's filter file.
type FilterRef struct {
	Words  int    `json:"words"`
	SHA256 string `json:"sha256"` // standard base64 of the SHA-256 of its bytes
}

// ErrFilter means a segment's filter file is missing or does not match
// its index entry.
var ErrFilter = errors.New("Bloom filter does not match the index entry")

// FilterPath is where the filters of a segment (named as in the index)
// are kept, relative to the store directory.
func FilterPath(segment string) string {
	base, _ := CutCompressedExt(segment)
	return filepath.Join(FilterDir, base+".bloom")
}

// filterRef returns the reference to b's bytes.
func filterRef(raw []byte) FilterRef {
	sum := sha256.Sum256(raw)
	return FilterRef{Words: len(raw) / 8, SHA256: base64.StdEncoding.EncodeToString(sum[:])}
}

// words are the filter's bits as stored: little-endian 64-bit words.
func (b *Bloom) words() []byte {
	raw := make([]byte, 0, 8*len(b.bits))
	for _, w := range b.bits {
		raw = binary.LittleEndian.AppendUint64(raw, w)
	}
	return raw
}

// writeFilters makes a segment's filter file durable (a temporary file,
// fsync, rename, the directory synced): before the index line that
// points to it, so that no entry names filters a crash lost.
// members are the attested member section and the compressed offsets
// after it (none for a segment of one member).
func writeFilters(dir, segment string, leads, pseudonyms *Bloom, members ...[]byte) error {
	return atomicfile.WriteParts(filepath.Join(dir, FilterPath(segment)), 0o600, append([][]byte{leads.words(), pseudonyms.words()}, members...)...)
}

// removeFilters deletes a segment's filter file, if any.
func removeFilters(dir, segment string) error {
	err := os.Remove(filepath.Join(dir, FilterPath(segment)))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// LeadFilter returns the lead filter of the segment e describes, for the
// store in dir: from the filter file, checked against e (ErrFilter when
// it does not match), or the one an older entry holds in its line. Nil
// with no error when the entry has none: it rules nothing out.
func LeadFilter(dir string, e *IndexEntry) (*Bloom, error) {
	if e.Filters == nil {
		return e.Leads, nil
	}
	return loadFilter(dir, e, 0, e.Filters.Leads)
}

// PseudonymFilter is LeadFilter for the pseudonym filter.
func PseudonymFilter(dir string, e *IndexEntry) (*Bloom, error) {
	if e.Filters == nil {
		return e.Pseudonyms, nil
	}
	return loadFilter(dir, e, int64(8*e.Filters.Leads.Words), e.Filters.Pseudonyms)
}

// loadFilter reads the filter ref describes at off in e's filter file.
func loadFilter(dir string, e *IndexEntry, off int64, ref FilterRef) (*Bloom, error) {
	n := ref.Words
	if k := e.Filters.K; k == 0 || k > 32 || n <= 0 || n&(n-1) != 0 || n > 1<<24 {
		return nil, fmt.Errorf("%w: k=%d with %d words", ErrFilter, k, n)
	}
	f, err := os.Open(filepath.Join(dir, FilterPath(e.Segment)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFilter, err)
	}
	defer f.Close()
	raw := make([]byte, 8*n)
	if _, err := f.ReadAt(raw, off); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFilter, FilterPath(e.Segment), err)
	}
	if filterRef(raw) != ref {
		return nil, fmt.Errorf("%w: %s has other bits than the entry attests", ErrFilter, FilterPath(e.Segment))
	}
	b := &Bloom{k: e.Filters.K, bits: make([]uint64, n)}
	for i := range b.bits {
		b.bits[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return b, nil
}

// CheckFilters holds a segment's filter file to its index entry: nil
// when it matches or the entry has no filter file.
func CheckFilters(dir string, e *IndexEntry) error {
	if e.Filters == nil {
		return nil
	}
	if _, err := LeadFilter(dir, e); err != nil {
		return err
	}
	if _, err := PseudonymFilter(dir, e); err != nil {
		return err
	}
	want := 8 * int64(e.Filters.Leads.Words+e.Filters.Pseudonyms.Words)
	if ref := e.Filters.Members; ref != nil {
		ms, err := Members(dir, e)
		if err != nil {
			return err
		}
		if err := checkOffsets(dir, e, ms); err != nil {
			return err
		}
		want += int64(ref.Bytes) + 8*int64(ref.Count)
	}
	fi, err := os.Stat(filepath.Join(dir, FilterPath(e.Segment)))
	if err == nil && fi.Size() != want {
		return fmt.Errorf("%w: %s has %d bytes, the entry says %d", ErrFilter, FilterPath(e.Segment), fi.Size(), want)
	}
	return err
}

// checkOffsets holds the member table's compressed offsets, which no
// entry attests, to the segment: a gzip header at each, and before the
// next one (or the end) the trailer of a member of the size the table
// says; or a zstd frame header that gives that size. One or two small
// reads a member; a query reading a member checks more.
func checkOffsets(dir string, e *IndexEntry, ms []Member) error {
	f, err := os.Open(filepath.Join(dir, e.Segment))
	if err != nil {
		return nil // the segment's own problem: verify reports it
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	c, _ := CompressionOf(e.Segment)
	for i, m := range ms {
		end, gzEnd := e.Bytes, membersEnd(c, fi.Size())
		if i+1 < len(ms) {
			end, gzEnd = ms[i+1].Offset, ms[i+1].GZ
		}
		if !memberStartsAt(c, f, m.GZ, gzEnd, end-m.Offset) {
			return fmt.Errorf("%w: %s: member %d is not at the compressed offset its table gives", ErrFilter, FilterPath(e.Segment), i)
		}
	}
	return nil
}

// Intact reports whether the compressed segment e describes, in the store
// in dir, ends with the gzip trailer of its last member (e.Bytes bytes
// for a segment of one member; the size modulo 2^32), or with the zstd
// trailer of a segment of e.Bytes: a check of a few bytes that it was not
// truncated or replaced since it was indexed, for readers that answer
// from the entry alone.
func Intact(dir string, e *IndexEntry) bool {
	f, err := os.Open(filepath.Join(dir, e.Segment))
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < 18 { // a gzip header and trailer; more than a zstd trailer
		return false
	}
	if c, _ := CompressionOf(e.Segment); c == Zstd {
		size := readZstdTrailer(f)
		return size >= 0 && size == e.Bytes
	}
	var trailer [4]byte
	if _, err := f.ReadAt(trailer[:], fi.Size()-4); err != nil {
		return false
	}
	last := int64(0) // the last member's size is in the trailer
	if e.Filters != nil && e.Filters.Members != nil {
		last = e.Filters.Members.Last
	}
	return binary.LittleEndian.Uint32(trailer[:]) == uint32(e.Bytes-last)
}

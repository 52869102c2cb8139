package store

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// IndexCheck rebuilds a segment's index entry from its lines, as the
// compressor built it, to hold the index file to the segment: an edited
// index would make queries skip segments that hold matches.
type IndexCheck struct {
	want     IndexEntry
	ix       *indexer
	size     int64 // where members are cut, 0 for one member
	inMember int64 // bytes in the current member
}

// NewIndexCheck starts checking entry, the index's entry for a segment.
func NewIndexCheck(entry IndexEntry) *IndexCheck {
	c := &IndexCheck{want: entry}
	if f := entry.Filters; f != nil && f.Members != nil && f.Members.Size > 0 {
		c.size = int64(f.Members.Size)
	}
	c.ix = newIndexer(entry.Segment, entry.Bytes, int(c.size))
	return c
}

// Add takes the segment's next line (without its newline). Members are
// cut as the compressor cuts them (memberWriter): after the first line
// that brings one to the entry's size.
func (c *IndexCheck) Add(line []byte) {
	if c.size > 0 && c.inMember >= c.size {
		c.ix.startMember()
		c.inMember = 0
	}
	c.ix.entry.Bytes += int64(len(line)) + 1
	c.inMember += int64(len(line)) + 1
	c.ix.add(line)
}

// Mismatch says how the entry differs from the segment read, "" when it
// does not. An entry written before values were canonicalized is held to
// its seqs, count and size only.
func (c *IndexCheck) Mismatch() string {
	c.ix.finish()
	got, want := c.ix.entry, c.want
	if d := Contradicts(want, got.FirstSeq, got.LastSeq); d != "" {
		return d
	}
	if got.Count != want.Count || got.Bytes != want.Bytes {
		return fmt.Sprintf("the index says %d records in %d bytes, the segment has %d in %d", want.Count, want.Bytes, got.Count, got.Bytes)
	}
	if !want.Canonical {
		return ""
	}
	got.Segment = want.Segment
	if want.Filters == nil { // v2: the filters in the line, no summary
		got.Filters, got.Summary = nil, nil
		got.Leads, got.Pseudonyms = c.ix.leads, c.ix.pseudonyms
	}
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	if !bytes.Equal(a, b) {
		return "the index entry's types, workflows, times, filters, summary or sources differ from the segment's records"
	}
	return ""
}

// Contradicts says how an index entry contradicts the seqs a segment is
// known to hold (first from its name, last from where the next one
// begins; 0 when unknown), "" when it does not. Cheap enough for every
// query.
func Contradicts(e IndexEntry, first, last uint64) string {
	switch {
	case e.FirstSeq != first:
		return fmt.Sprintf("the index says the segment starts at seq %d, it starts at %d", e.FirstSeq, first)
	case last != 0 && e.LastSeq != last:
		return fmt.Sprintf("the index says the segment ends at seq %d, it ends at %d", e.LastSeq, last)
	case e.LastSeq < e.FirstSeq || uint64(e.Count) != e.LastSeq-e.FirstSeq+1:
		return fmt.Sprintf("the index entry counts %d records for seqs %d to %d", e.Count, e.FirstSeq, e.LastSeq)
	}
	return ""
}

package collect

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// The agent's own records that the collected store's files and segments
// follow, and the store's hooks that keep the collected layout the
// agent's.

// special looks at the agent's own records that the collected store's
// files follow: the genesis (genesis.json), checkpoints
// (checkpoints.jsonl), index records (where the agent's segments begin)
// and retention records (what may be deleted here).
func (o *origin) special(m msg, seq uint64, now time.Time) error {
	typ, _ := record.StringField(m.line, "event_type")
	switch string(typ) {
	case record.TypeGenesis:
		d, err := record.ParseGenesis(m.line)
		if err != nil || seq != 1 {
			return nil // verify reports a genesis that is not one
		}
		if d.Origin != o.name {
			if seq > o.lastSeq || o.lastSeq == 0 { // not yet stored
				return o.finding(m, now, FindingOrigin, fmt.Sprintf("a genesis record of origin %q on the subject of %q", d.Origin, o.name), true)
			}
			return nil
		}
		o.genesis = append(o.genesis[:0], m.line...)
	case record.TypeCheckpoint:
		meta, err := record.ParseMeta(m.line)
		var d record.CheckpointDetails
		if err != nil || jsonUnmarshal(meta.Details, &d) != nil || d.Size == 0 || d.Size <= o.newestCkpt {
			return nil
		}
		line, err := checkpointLine(d, meta.Timestamp)
		if err != nil {
			return err
		}
		o.checkpoints = append(o.checkpoints, line)
		o.newestCkpt = d.Size
	case record.TypeIndex:
		d, err := record.ParseIndex(m.line)
		if err != nil {
			return nil
		}
		first, ok := segmentFirst(d.Segment)
		if !ok {
			return nil
		}
		o.mu.Lock()
		o.attested[d.Segment] = d.SHA256
		if c, ok := store.CompressionOf(d.Segment); ok {
			o.compression = c
		}
		o.mu.Unlock()
		o.splits = append(o.splits, first)
	case record.TypeRetention:
		if d, err := record.ParseRetention(m.line); err == nil && d.DeletedThrough > o.retained.Load() {
			o.retained.Store(d.DeletedThrough)
			o.st.ApplyRetention()
		}
	}
	return nil
}

// segmentFirst is the first seq a segment's name gives.
func segmentFirst(name string) (uint64, bool) {
	base, ok := store.CutCompressedExt(name)
	if !ok {
		base, _ = cutSuffix(name, store.ActiveExt)
	}
	n, err := strconv.ParseUint(base, 10, 64)
	return n, err == nil && len(base) == 16 && n > 0
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// split cuts the active segment where the agent's segment at began, so
// that the collected store's segments are the agent's.
func (o *origin) split(at uint64) error {
	seg := o.st.ActiveSegment()
	first, _ := segmentFirst(seg)
	if at <= first {
		return nil
	}
	if at > o.st.Durable() {
		o.log.Warn("an index record names a segment that starts after the last record collected; not split", "segment_first", at, "last_seq", o.st.Durable())
		return nil
	}
	if !o.learnedAttested {
		// After a restart: the index record of the active segment itself
		// is in it (it came after the agent's next rotation).
		if err := o.learnAttested(seg); err != nil {
			return err
		}
	}
	if err := o.st.Split(at); err != nil {
		return fmt.Errorf("origin %s: %w", o.name, err)
	}
	return nil
}

// learnAttested reads the index records of the active segment.
func (o *origin) learnAttested(seg string) error {
	dir := filepath.Join(o.dir, agent.StoreDir)
	first, _ := segmentFirst(seg)
	err := store.ScanSegment(dir, store.Segment{Name: seg, First: first}, func(_ store.Segment, _ int, line []byte) error {
		if typ, _ := record.StringField(line, "event_type"); string(typ) == record.TypeIndex {
			if d, err := record.ParseIndex(line); err == nil {
				o.mu.Lock()
				o.attested[d.Segment] = d.SHA256
				o.mu.Unlock()
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("origin %s: read active segment: %w", o.name, err)
	}
	o.learnedAttested = true
	return nil
}

// compressionFor is how the agent compressed the segment (the active
// segment's name), as its index record names it; or, for a segment whose
// record is not known yet, as it compressed its last one (gzip when none).
// The collector compresses it the same, so that their index lines agree.
// After a restart the record is looked for in the store: a segment is
// split only once its agent's index record is stored, after it.
func (o *origin) compressionFor(segment string) store.Compression {
	base, _ := cutSuffix(segment, store.ActiveExt)
	o.mu.Lock()
	for _, c := range []store.Compression{store.Gzip, store.Zstd} {
		if _, ok := o.attested[base+c.Ext()]; ok {
			o.mu.Unlock()
			return c
		}
	}
	last := o.compression
	o.mu.Unlock()
	if name, _, ok := o.findAttested(base); ok {
		if c, ok := store.CompressionOf(name); ok {
			return c
		}
	}
	return last
}

// lastCompression is how the newest compressed segment in dir is
// compressed: until the agent's next index record says, the collector
// goes on so after a restart. Gzip when there is none.
func lastCompression(dir string) store.Compression {
	segs, _ := store.List(dir)
	for i := len(segs) - 1; i >= 0; i-- {
		if c, ok := store.CompressionOf(segs[i].Name); ok {
			return c
		}
	}
	return store.Gzip
}

// keepIndexLine is the store's KeepIndexLine: a collected segment whose
// index line is not the one the agent attested for the same name (the
// agent did not attest where its next segment began, after a crash, so
// this one spans two of the agent's) stays out of store/index, which
// then never contradicts the agent's index records.
func (o *origin) keepIndexLine(segment string, line []byte) bool {
	o.mu.Lock()
	want, ok := o.attested[segment]
	o.mu.Unlock()
	if !ok {
		// A segment split before a restart and compressed as the store
		// opened: its index record is in a later segment.
		base, _ := store.CutCompressedExt(segment)
		var name string
		if name, want, ok = o.findAttested(base); ok && name != segment {
			want = "" // the agent compressed it otherwise
		}
	}
	if !ok || want == store.IndexDigest(line) {
		return true
	}
	o.m.unindexed.WithLabelValues(o.name).Inc()
	o.log.Warn("collected segment differs from the agent's segment of that name (the agent attested no segment start inside it); left out of store/index, readers read it whole",
		"segment", segment)
	return false
}

// findAttested looks for the agent's index record of the segment whose
// name, without its extension, is base, in the segments after it: the
// segment's name and the digest the record attests.
func (o *origin) findAttested(base string) (name, digest string, found bool) {
	dir := filepath.Join(o.dir, agent.StoreDir)
	first, _ := segmentFirst(base + store.ActiveExt)
	segs, err := store.List(dir)
	if err != nil {
		return "", "", false
	}
	done := errors.New("found")
	for _, seg := range segs {
		if seg.First <= first {
			continue
		}
		err := store.ScanSegment(dir, seg, func(_ store.Segment, _ int, line []byte) error {
			if typ, _ := record.StringField(line, "event_type"); string(typ) == record.TypeIndex {
				if d, err := record.ParseIndex(line); err == nil {
					if b, ok := store.CutCompressedExt(d.Segment); ok && b == base {
						name, digest = d.Segment, d.SHA256
						return done
					}
				}
			}
			return nil
		})
		if errors.Is(err, done) {
			return name, digest, true
		}
	}
	return "", "", false
}

// keep is the store's Keep: retention deletes only records the agent's
// own signed retention records say it deleted, so that verify accepts the
// collected store's start as it accepts the agent's.
func (o *origin) keep() uint64 {
	if r := o.retained.Load(); r > 0 {
		return r + 1
	}
	return 0 // nothing may go
}

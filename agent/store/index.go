package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/signer/record"
)

// IndexFile is the per-segment metadata file inside the store directory.
const IndexFile = "index"

// IndexEntry describes one rotated segment, so readers can skip it.
type IndexEntry struct {
	Segment   string         `json:"segment"`
	FirstSeq  uint64         `json:"first_seq"`
	LastSeq   uint64         `json:"last_seq"`
	FirstTime string         `json:"first_time"`
	LastTime  string         `json:"last_time"`
	Count     int            `json:"count"`
	Bytes     int64          `json:"bytes"`
	Types     map[string]int `json:"types"`

	// Since v2 of the index; absent in older entries, which then cannot
	// rule anything out.
	MinTime    string         `json:"min_time,omitempty"` // RFC 3339, over parsable timestamps
	MaxTime    string         `json:"max_time,omitempty"`
	Workflows  map[string]int `json:"workflows,omitempty"`  // nil when more than maxWorkflows
	Leads      *Bloom         `json:"leads,omitempty"`      // lead_id values; v2 only (see Filters)
	Pseudonyms *Bloom         `json:"pseudonyms,omitempty"` // <kind:hex> tokens anywhere in the line; v2 only
	// Canonical says the seed values above (types, workflows, leads) were
	// canonicalized (record.AppendCanonical) before they were counted and
	// hashed. Older entries hold them as the application escaped them:
	// ReadIndex canonicalizes their type and workflow keys, and their
	// lead filter is only asked about values no JSON encoder escapes.
	Canonical bool `json:"canonical,omitempty"`
	// Sources are the identities of the source files its records came from
	// (dev:inode:fingerprint), at most maxSources, for the tailer to know
	// copies of what it has read.
	Sources []string `json:"sources,omitempty"`

	// Since v3 of the index. Filters replace Leads and Pseudonyms: the
	// same filters, their bits in a file of their own (FilterDir).
	Filters *Filters `json:"filters,omitempty"`
	// Summary counts the segment's records as stats does; nil when it
	// would not be exact (then stats reads the segment).
	Summary *Summary `json:"summary,omitempty"`
}

// maxSources bounds the source ids kept per segment.
const maxSources = 64

// maxWorkflows bounds the exact workflow set kept per segment.
const maxWorkflows = 256

// indexer builds an IndexEntry from the bytes of a segment as they stream by.
type indexer struct {
	entry      IndexEntry
	leads      *Bloom // lead_id values
	pseudonyms *Bloom // <kind:hex> tokens anywhere in the line
	sum        *summarizer
	partial    []byte
	minT, maxT time.Time
	manyFlows  bool
	canon      []byte // scratch for canonical values
	head       record.Head
	lastTime   []byte // the last record's timestamp, for LastTime at finish
	types      tally  // the entry's Types and Workflows, until finish
	workflows  tally
	lines      int          // lines added
	members    *memberTable // nil: one member (index v3)
	// memberSection is the attested part of the member table, at finish.
	memberSection [][]byte
}

// Sizing the filters of a segment of a given size (they are folded down to
// what it holds): a filter has room for one value per filterBytes of
// segment, about one per record (a record is rarely under 250 bytes: seq,
// source, prev and signature alone take 200). A segment with more distinct
// values gets a fuller filter, with more false positives: bounded memory in
// the agent matters more. 50 MB segments take 256 KiB per filter.
const filterBytes = 256

// newIndexer indexes a segment of size bytes written in members cut at
// memberBytes (0: one member, as before v4 of the index).
func newIndexer(name string, size int64, memberBytes int) *indexer {
	ix := &indexer{entry: IndexEntry{Segment: name, Canonical: true}, types: tally{}, workflows: tally{},
		leads: newBloom(int(size / filterBytes)), pseudonyms: newBloom(int(size / filterBytes)), sum: newSummarizer()}
	if memberBytes > 0 {
		ix.members = newMemberTable(memberBytes, size)
	}
	return ix
}

// startMember ends the current member at a line boundary and starts the
// next one.
func (ix *indexer) startMember() {
	ix.members.end()
	ix.members.start(ix.entry.Bytes, ix.lines+1)
}

func (ix *indexer) Write(p []byte) (int, error) {
	ix.entry.Bytes += int64(len(p))
	data := p
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			ix.partial = append(ix.partial, data...)
			return len(p), nil
		}
		line := data[:i]
		if len(ix.partial) > 0 {
			line = append(ix.partial, line...)
			ix.partial = ix.partial[:0]
		}
		ix.add(line)
		data = data[i+1:]
	}
}

func (ix *indexer) add(line []byte) {
	ix.lines++
	var m *Member
	if ix.members != nil {
		m = &ix.members.cur
	}
	// One parse of the record's head serves the summary and the entry;
	// a line without the record layout takes the slower field lookups.
	h := &ix.head
	parsed := h.Parse(line)
	ix.sum.add(h, parsed)
	seq, ok := h.Seq, parsed
	if !parsed {
		seq, ok = record.Seq(line)
	}
	if !ok {
		return
	}
	if m != nil && m.Line == ix.lines {
		m.Seq = seq
	}
	e := &ix.entry
	ts, _ := record.StringField(line, "timestamp") // as written: h.Timestamp is canonical
	if e.Count == 0 {
		e.FirstSeq, e.FirstTime = seq, string(ts)
	}
	e.LastSeq = seq
	ix.lastTime = append(ix.lastTime[:0], ts...)
	e.Count++
	wf, lead, okFlow := h.Workflow, h.Lead, parsed // canonical, as the entry keeps them
	if parsed {
		ix.types.add(h.Type)
	} else {
		if typ, ok := record.StringField(line, "event_type"); ok {
			ix.types.add(ix.canonical(typ))
		}
		if w, ok := record.StringField(line, "workflow"); ok {
			wf, okFlow = bytes.Clone(ix.canonical(w)), true
		}
		if l, ok := record.StringField(line, "lead_id"); ok {
			lead = bytes.Clone(ix.canonical(l))
		}
	}
	var t time.Time
	var tOK bool
	if parsed && !record.NeedsCanonical(ts) {
		t, tOK = h.Time() // parsed once, for the summary too
	} else {
		var err error
		t, err = time.Parse(time.RFC3339Nano, string(ts))
		tOK = err == nil
	}
	if tOK {
		if ix.minT.IsZero() || t.Before(ix.minT) {
			ix.minT = t
		}
		if t.After(ix.maxT) {
			ix.maxT = t
		}
	}
	if okFlow && !ix.manyFlows {
		ix.workflows.add(wf)
		ix.manyFlows = len(ix.workflows) > maxWorkflows
	}
	if len(lead) > 0 {
		hv := Hash(lead)
		ix.leads.addHash(hv)
		if m != nil {
			m.Leads.addHash(hv)
		}
	}
	if id, ok := record.SourceID(line); ok && len(e.Sources) < maxSources &&
		(len(e.Sources) == 0 || e.Sources[len(e.Sources)-1] != string(id)) && !slices.Contains(e.Sources, string(id)) {
		e.Sources = append(e.Sources, string(id))
	}
	for rest := line; ; {
		tok, after, ok := record.NextPseudonym(rest)
		if !ok {
			break
		}
		hv := Hash(tok)
		ix.pseudonyms.addHash(hv)
		if m != nil {
			m.Pseudonyms.addHash(hv)
		}
		rest = after
	}
}

// canonical returns v in canonical form: v itself for what the agent
// wrote since it canonicalizes at ingest, a copy for records stored before.
func (ix *indexer) canonical(v []byte) []byte {
	if !record.NeedsCanonical(v) {
		return v
	}
	ix.canon = record.AppendCanonical(ix.canon[:0], v)
	return ix.canon
}

// tally counts keys with one map lookup a line (a map of ints takes a
// lookup and an assignment), allocating only a key's first time.
type tally map[string]*int

func (t tally) add(k []byte) {
	if n := t[string(k)]; n != nil {
		*n++
		return
	}
	n := 1
	t[string(k)] = &n
}

// counts is t as the index's JSON keeps it.
func (t tally) counts() map[string]int {
	m := make(map[string]int, len(t))
	for k, n := range t {
		m[k] = *n
	}
	return m
}

func (ix *indexer) finish() {
	if len(ix.partial) > 0 {
		ix.add(ix.partial)
	}
	e := &ix.entry
	if e.Count > 0 {
		e.LastTime = string(ix.lastTime)
	}
	if !ix.minT.IsZero() {
		e.MinTime, e.MaxTime = ix.minT.UTC().Format(time.RFC3339Nano), ix.maxT.UTC().Format(time.RFC3339Nano)
	}
	e.Types, e.Workflows = ix.types.counts(), nil
	if !ix.manyFlows {
		e.Workflows = ix.workflows.counts()
	}
	ix.leads.fold()
	ix.pseudonyms.fold()
	e.Filters = &Filters{K: ix.leads.k, Leads: filterRef(ix.leads.words()), Pseudonyms: filterRef(ix.pseudonyms.words())}
	if ix.members != nil {
		ix.members.end()
		ix.memberSection, e.Filters.Members = ix.members.section()
	}
	e.Summary = ix.sum.summary()
}

// appendIndex adds an entry's line (its JSON) to the index file and makes
// it durable.
func appendIndex(dir string, line []byte) error {
	return atomicfile.Append(filepath.Join(dir, IndexFile), append(line, '\n'), 0o600)
}

// IndexDigest is what an index record attests of an index line (without
// its newline): its SHA-256 in standard base64.
func IndexDigest(line []byte) string {
	sum := sha256.Sum256(line)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ReadIndexDigests returns the digest of each segment's index line, the
// last one where a segment has several (a compression redone after a
// crash), as ReadIndex reads them.
func ReadIndexDigests(dir string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(dir, IndexFile))
	if os.IsNotExist(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e struct {
			Segment string `json:"segment"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out[e.Segment] = IndexDigest(sc.Bytes())
		}
	}
	return out, sc.Err()
}

// ReadIndex returns the index entries by segment name. A torn last line is
// ignored: the entry is rebuilt by whoever needs it.
func ReadIndex(dir string) (map[string]IndexEntry, error) {
	f, err := os.Open(filepath.Join(dir, IndexFile))
	if os.IsNotExist(err) {
		return map[string]IndexEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	defer f.Close()
	out := map[string]IndexEntry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e IndexEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			if !e.Canonical {
				e.Types, e.Workflows = canonicalKeys(e.Types), canonicalKeys(e.Workflows)
			}
			out[e.Segment] = e
		}
	}
	return out, sc.Err()
}

// RecentSources returns up to max distinct source ids of the newest records
// of the store in dir, newest first: from the segments not compressed yet
// (read whole) and then the index. The tailer uses them to recognise, after
// a restart, copies of files it has already read.
func RecentSources(dir string, max int) ([]string, error) {
	segs, err := List(dir)
	if err != nil {
		return nil, err
	}
	index, err := ReadIndex(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	add := func(id string) {
		if len(out) < max && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	for i := len(segs) - 1; i >= 0 && len(out) < max; i-- {
		seg := segs[i]
		if e, ok := index[seg.Name]; ok && seg.Compressed {
			for j := len(e.Sources) - 1; j >= 0; j-- {
				add(e.Sources[j])
			}
			continue
		}
		if seg.Compressed {
			continue // indexed before v2 of the index
		}
		var ids []string
		err := ScanSegment(dir, seg, func(_ Segment, _ int, line []byte) error {
			if id, ok := record.SourceID(line); ok && (len(ids) == 0 || ids[len(ids)-1] != string(id)) {
				ids = append(ids, string(id))
			}
			return nil
		})
		if err != nil {
			return out, err
		}
		for j := len(ids) - 1; j >= 0; j-- {
			add(ids[j])
		}
	}
	return out, nil
}

// canonicalKeys merges the keys of an entry written before the index
// canonicalized values: "caf\u00e9" and "café" are one workflow.
func canonicalKeys(m map[string]int) map[string]int {
	for k, n := range m {
		if c := string(record.AppendCanonical(nil, []byte(k))); c != k {
			delete(m, k)
			m[c] += n
		}
	}
	return m
}

// attestNewest tells OnIndexed again of the newest compressed segment's
// index line when no record after the segment attests it: a kill between
// the line and its index record leaves it so. Only the newest can lack
// its record (compressions run one after the other, each attested before
// the next), and the segments after it are not compressed yet.
func (s *Store) attestNewest() error {
	if s.opt.OnIndexed == nil {
		return nil
	}
	segs, err := List(s.opt.Dir)
	if err != nil {
		return err
	}
	newest := -1
	for i, seg := range segs {
		if seg.Compressed {
			newest = i
		}
	}
	if newest < 0 {
		return nil
	}
	name := segs[newest].Name
	line, err := indexLine(s.opt.Dir, name)
	if err != nil || line == nil {
		return err // not indexed: there is nothing to attest
	}
	errFound := errors.New("found")
	for _, seg := range segs[newest+1:] {
		err := ScanSegment(s.opt.Dir, seg, func(_ Segment, _ int, l []byte) error {
			if !bytes.Contains(l, []byte(`"event_type":"`+record.TypeIndex+`"`)) {
				return nil
			}
			if d, err := record.ParseIndex(l); err == nil && d.Segment == name {
				return errFound
			}
			return nil
		})
		if errors.Is(err, errFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	s.log.Info("store: the newest compressed segment has no index record after it; attesting its index line again", "segment", name)
	return s.opt.OnIndexed(s.stop, name, line)
}

// indexLine is the last line of store/index for segment name, nil when
// there is none.
func indexLine(dir, name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, IndexFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	defer f.Close()
	var line []byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e struct {
			Segment string `json:"segment"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Segment == name {
			line = bytes.Clone(sc.Bytes())
		}
	}
	return line, sc.Err()
}

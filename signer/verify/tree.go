package verify

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"

	"github.com/tailseal/tailseal/signer/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// treeCheck follows the RFC 6962 Merkle tree of the records as the
// verifier reads them in seq order, to hold each checkpoint to it: a
// checkpoint signs the tree's root at its size (a tree head), or, in
// stores written before the tree, the SHA-256 of line #size (a chain
// head). Where records are missing (retention, a deleted segment) the
// tree continues from the store's stored hashes, when there are any: the
// next checkpoint's root then vouches for them.
type treeCheck struct {
	edge  *merkle.Edge  // the tree of records 1..edge.Size(); nil: not known here
	tiles *merkle.Tiles // the stored hashes; nil: none
	fsys  fs.FS         // their files; nil: none
	// storedBad is what the check of the stored hashes found wrong, at
	// the records from storedBadSeq.
	storedBad    string
	storedBadSeq uint64
	heads        []treeHead      // checkpoints found to be tree heads
	held         map[uint64]bool // checkpoint sizes held to their record
	first        uint64          // the first seq read, 0 before
	// Flood control: after a line's finding, every later checkpoint's
	// root differs; one finding says so.
	lastBad, reportedFor uint64
	stored               *storedHashes // held to the tree as it grows from seq 1; nil: not
}

// storedHashes holds the stored level files to the hashes the tree makes
// from the records, one after the other: proofs are made of them, so one
// that is damaged makes proofs fail while the records verify. A level
// file that ends first (a live agent writes them at its commit) is
// checked that far.
type storedHashes struct {
	fsys  fs.FS
	files []*bufio.Reader // per level; nil once ended or unreadable
	close []io.Closer
	n     []uint64 // hashes compared, per level
	bad   string   // the first mismatch, once found: nothing more is compared
	seq   uint64   // the first record under it
}

func (s *storedHashes) hash(level int, h tlog.Hash) {
	if s.bad != "" {
		return
	}
	for level >= len(s.files) {
		var r *bufio.Reader
		if f, err := s.fsys.Open(merkle.LevelFile(len(s.files))); err == nil {
			r = bufio.NewReaderSize(f, 64<<10)
			s.close = append(s.close, f)
		}
		s.files, s.n = append(s.files, r), append(s.n, 0)
	}
	r := s.files[level]
	if r == nil {
		return
	}
	var got tlog.Hash
	if _, err := io.ReadFull(r, got[:]); err != nil {
		s.files[level] = nil
		return
	}
	if got != h {
		s.seq = s.n[level]<<(merkle.TileHeight*uint(level)) + 1
		s.bad = fmt.Sprintf("stored Merkle hash %d of level %d (file store/hashes/%s) is not the one the records give: inclusion and consistency proofs through it fail", s.n[level], level, merkle.LevelFile(level))
	}
	s.n[level]++
}

func (s *storedHashes) done() {
	for _, c := range s.close {
		c.Close()
	}
}

type treeHead struct {
	size uint64
	root tlog.Hash
	line int // of checkpoints.jsonl
}

// leaf adds record seq's leaf hash: the next leaf, or one after records
// the store lacks, whose hashes then come from the stored hashes.
func (t *treeCheck) leaf(seq uint64, h tlog.Hash) {
	if t.first == 0 {
		t.first = seq
	}
	if t.edge == nil || t.edge.Size() != seq-1 {
		t.edge = nil
		t.stopStored()
		switch {
		case seq == 1:
			t.edge = &merkle.Edge{}
			if t.fsys != nil {
				t.stored = &storedHashes{fsys: t.fsys}
			}
		case t.tiles != nil:
			t.edge, _ = merkle.EdgeAt(seq-1, t.tiles)
		}
		if t.edge == nil {
			return
		}
	}
	if t.stored != nil {
		t.edge.Append(h, t.stored.hash)
		return
	}
	t.edge.Append(h, nil)
}

// stopStored ends the check of the stored hashes, keeping what it found.
func (t *treeCheck) stopStored() {
	if t.stored == nil {
		return
	}
	if t.stored.bad != "" {
		t.storedBad, t.storedBadSeq = t.stored.bad, t.stored.seq
	}
	t.stored.done()
	t.stored = nil
}

// head is what the tree says of a checkpoint of the size the tree has
// now: true when it signs the tree's root there.
func (t *treeCheck) head(size uint64, hash [32]byte) bool {
	return t.edge != nil && t.edge.Size() == size && t.edge.Root() == tlog.Hash(hash)
}

// checkHead takes the checkpoint of size seq at record seq, read in
// order: a tree head, a chain head (h is the line's hash), or a finding.
func (v *verifier) checkHead(it *item, seq uint64, c checkpointAt, h [32]byte) {
	t := &v.tree
	t.held[seq] = true
	switch {
	case t.head(seq, c.hash):
		v.sum.TreeHeads++
		t.heads = append(t.heads, treeHead{size: seq, root: c.hash, line: c.line})
		return
	case c.hash == h:
		v.sum.ChainHeads++
		return
	case t.edge == nil:
		// Records before it are missing and no stored hashes stand in
		// for them (their absence is a finding of its own): its root
		// cannot be known here.
		v.sum.Unchecked++
		return
	case v.replacedIn == it.seg.Name:
		return // its segment was reported replaced
	}
	detail := fmt.Sprintf("checkpoint %d (%s line %d) signed neither the Merkle root of records 1..%d as stored nor line %d", seq, c.file, c.line, seq, seq)
	switch {
	case t.lastBad == 0:
		detail += ": the records it covers are not the ones it signed"
	case t.reportedFor == t.lastBad:
		return // explained by the same findings as the last one
	default:
		detail += fmt.Sprintf(": records it covers were changed (the findings above, up to seq %d); later checkpoints that differ for the same reason are not listed", t.lastBad)
		t.reportedFor = t.lastBad
	}
	v.sum.Findings = append(v.sum.Findings, Finding{Segment: it.seg.Name, Line: it.lineNo, Seq: seq, Kind: BadCheckpoint, Detail: detail})
}

// finishTree checks, with the stored hashes, the checkpoints of records
// the store no longer holds, and a consistency proof between each tree
// head and the next: the log only grew between them.
func (v *verifier) finishTree() {
	t := &v.tree
	t.stopStored()
	if t.storedBad != "" {
		v.sum.Findings = append(v.sum.Findings, Finding{Segment: "store/hashes", Seq: t.storedBadSeq, Kind: TreeHashes,
			Detail: t.storedBad + " (while the store still has its first records, removing store/hashes makes the agent build them again at its next start)"})
	}
	if t.tiles == nil || len(t.heads) == 0 {
		return
	}
	defer t.tiles.Close()
	newest := t.heads[len(t.heads)-1]
	hr := tlog.TileHashReader(tlog.Tree{N: int64(newest.size), Hash: newest.root}, t.tiles)
	for _, size := range slices.Sorted(maps.Keys(v.want)) {
		c := v.want[size]
		if t.held[size] || size == 0 || size > newest.size {
			continue // held to its record, nothing to hold, or after the store's end
		}
		// Its record is gone: its root, from the hashes the newest tree
		// head vouches for.
		root, err := tlog.TreeHash(int64(size), hr)
		switch {
		case err != nil:
			v.sum.Unchecked++
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: "store/hashes", Seq: size, Kind: TreeHashes,
				Detail: fmt.Sprintf("the stored Merkle hashes do not give the root of checkpoint %d (%s line %d), whose records are gone: %v", size, c.file, c.line, err)})
		case root == tlog.Hash(c.hash):
			v.sum.TreeHeads++
			t.heads = append(t.heads, treeHead{size: size, root: c.hash, line: c.line})
		default:
			v.sum.Unchecked++ // a chain head of a record gone, or a root the hashes do not give
		}
	}
	slices.SortFunc(t.heads, func(a, b treeHead) int { return cmp.Compare(a.size, b.size) })
	for i := 1; i < len(t.heads); i++ {
		old, cur := t.heads[i-1], t.heads[i]
		if old.size == cur.size {
			continue
		}
		hr := tlog.TileHashReader(tlog.Tree{N: int64(cur.size), Hash: cur.root}, t.tiles)
		p, err := tlog.ProveTree(int64(cur.size), int64(old.size), hr)
		if err != nil {
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: "store/hashes", Seq: cur.size, Kind: TreeHashes,
				Detail: fmt.Sprintf("no consistency proof from checkpoint %d to checkpoint %d out of the stored Merkle hashes: %v", old.size, cur.size, err)})
			return
		}
		if err := tlog.CheckTree(p, int64(cur.size), cur.root, int64(old.size), old.root); err != nil {
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: "checkpoints.jsonl", Line: cur.line, Seq: cur.size, Kind: Forked,
				Detail: fmt.Sprintf("checkpoint %d (line %d) is not consistent with checkpoint %d (line %d): the log was forked or rewritten between them", cur.size, cur.line, old.size, old.line)})
			continue
		}
		v.sum.Consistent++
	}
}

package verify

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"sort"

	"github.com/tailseal/tailseal/signer/merkle"
	"github.com/tailseal/tailseal/signer/record"
	"golang.org/x/mod/sumdb/tlog"
)

type checkpointAt struct {
	hash [32]byte
	line int
	file string // checkpoints.jsonl, or cosignatures.jsonl
}

// verifier holds what the checks of one line need from the lines before.
type verifier struct {
	opt Options
	sum *Summary

	expected   uint64 // next seq in order
	lastSeq    uint64
	last       [32]byte // hash of the last line in the chain
	haveLast   bool
	lastFlag   bool // the last chained line had a finding
	lastEpoch  uint64
	lastSeal   uint64 // next_epoch of the last chained line if a seal, else 0
	haveEpoch  bool
	ahead      map[uint64][32]byte // lines met before their turn (reordered)
	deleted    [][2]uint64         // seq ranges reported missing
	want       map[uint64]checkpointAt
	newest     uint64   // largest checkpoint size
	replacedIn string   // segment reported replaced: its signatures are not reported one by one
	startGap   *Finding // the store starts after seq 1: a finding unless retention explains it
	end        tailRecord
	sawEpochs  bool // a trusted record past epoch 0 or a seal: the agent seals every epoch
	// What trusted index records attest: segment NUL digest, and segment.
	attested, attestedSeg map[string]bool
	present               map[string]bool // the store's segments, by name
	sawSeq1               bool            // the store holds seq 1
	genesisAt1            bool            // and it is a trusted genesis record
	genesisSeg            string          // where the trusted genesis is: a segment, or genesis.json
	genesisLine           int
	noteOrigins           map[string]int // origin of the checkpoints: first line naming it
	retainedGenesis       string         // the genesis hash trusted retention records name
	firstSeq              uint64         // of the first record read

	tree      treeCheck
	cosigners map[uint64]map[string]bool // size → trusted witnesses that cosigned it
	aheadLeaf map[uint64]tlog.Hash       // leaf hashes of the lines in ahead

	keys   *epochKeys // nil: signatures are not checked
	probe  *epochKeys // the key probe's, until it has decided
	probed int        // records the probe tried

	items   [2]item
	cur     *item // the line waiting for its successor
	spare   *item
	lastB64 [44]byte // last as a prev field holds it
}

func newVerifier(opt Options) *verifier {
	v := &verifier{opt: opt, sum: &Summary{Signatures: opt.K0 != nil, Notes: len(opt.Verifiers) > 0},
		ahead: map[uint64][32]byte{}, want: map[uint64]checkpointAt{}, attested: map[string]bool{}, attestedSeg: map[string]bool{}, present: map[string]bool{},
		noteOrigins: map[string]int{}, aheadLeaf: map[uint64]tlog.Hash{}, cosigners: map[uint64]map[string]bool{}}
	v.tree.held = map[uint64]bool{}
	if opt.Hashes != nil {
		v.tree.tiles, v.tree.fsys = merkle.NewTiles(opt.Hashes), opt.Hashes
	}
	v.spare = &v.items[0]
	if opt.K0 != nil {
		v.keys, v.probe = &epochKeys{k0: opt.K0}, &epochKeys{k0: opt.K0}
	}
	return v
}

func (v *verifier) add(it *item, seq uint64, kind, detail string) {
	v.tree.lastBad = max(v.tree.lastBad, seq)
	v.sum.Findings = append(v.sum.Findings, Finding{Segment: it.seg.Name, Line: it.lineNo, Seq: seq, Kind: kind, Detail: detail})
}

// line checks one line; next is the following line (not ok at the end,
// atEnd).
func (v *verifier) line(it *item, next *parsed, atEnd bool) {
	v.sum.Records++
	v.sum.Bytes += int64(len(it.data)) + 1
	p := &it.p
	if !p.ok {
		if atEnd {
			v.add(it, v.expected, Truncated, "the last line is cut off")
		} else {
			v.add(it, v.expected, Malformed, "not a record")
		}
		v.haveLast, v.lastFlag = false, true
		return
	}
	h := it.h
	v.sawSeq1 = v.sawSeq1 || p.seq == 1
	if !v.order(it, next, h) {
		return // not part of the chain
	}
	v.tree.leaf(p.seq, it.leaf)
	kind := classify(v.facts(it, next))
	reported := kind != ""
	v.report(it, kind)
	if kind == inReplaced {
		v.haveEpoch = false
	}
	if !reported && v.haveEpoch {
		if kind, detail := epochRule(v.lastEpoch, v.lastSeal, p.epoch); kind != "" {
			v.add(it, p.seq, kind, detail)
		}
	}
	if c, ok := v.want[p.seq]; ok {
		v.checkHead(it, p.seq, c, h)
	}
	v.advance(it, h, reported)
}

// standing is where a line's seq stands relative to the one expected next.
type standing int

const (
	inOrder standing = iota
	gap              // records before it are missing
	early            // ahead, and the expected one follows it: the two are swapped
	behind           // its seq was passed already: reordered back, or inserted
)

// stand places a line's seq; segStart says the line opens its segment
// with the seq the segment's name gives, so a gap before it is a lost
// segment and not a reordering.
func stand(expected, seq uint64, segStart bool, next *parsed) standing {
	switch {
	case seq > expected && !segStart && next.ok && next.seq == expected:
		return early
	case seq > expected:
		return gap
	case seq < expected:
		return behind
	}
	return inOrder
}

// order reports what is out of order about a line and whether it joins the
// chain: a line early or behind does not, a line after a gap does.
func (v *verifier) order(it *item, next *parsed, h [32]byte) bool {
	p := &it.p
	if v.expected == 0 {
		v.expected = p.seq
		if p.seq != 1 {
			// Reported at the end unless a retention record explains it.
			v.startGap = &Finding{Segment: it.seg.Name, Line: it.lineNo, Seq: p.seq, Kind: Deleted,
				Detail: fmt.Sprintf("the store starts at seq %d: records 1..%d are missing, and no retention record says they were deleted by retention", p.seq, p.seq-1)}
			v.deleted = append(v.deleted, [2]uint64{1, p.seq - 1})
		}
	}
	segStart := it.lineNo == 1 && it.seg.First == p.seq
	switch stand(v.expected, p.seq, segStart, next) {
	case early:
		v.add(it, p.seq, Reordered, fmt.Sprintf("seq %d comes before seq %d", p.seq, v.expected))
		v.ahead[p.seq] = h
		v.aheadLeaf[p.seq] = it.leaf
		return false
	case behind:
		if v.wasDeleted(p.seq) {
			v.add(it, p.seq, Reordered, fmt.Sprintf("seq %d comes after seq %d", p.seq, v.lastSeq))
		} else {
			v.add(it, p.seq, Inserted, fmt.Sprintf("seq %d appears again after seq %d", p.seq, v.lastSeq))
		}
		return false
	case gap:
		v.overGap(it, segStart)
	}
	return true
}

// overGap reports the records missing before a line and continues the
// chain with it.
func (v *verifier) overGap(it *item, segStart bool) {
	p := &it.p
	missing := fmt.Sprintf("records %d..%d are missing", v.expected, p.seq-1)
	if segStart {
		v.add(it, p.seq, SegmentMissing, "a segment before this one is gone: "+missing)
	} else {
		v.add(it, p.seq, Deleted, missing)
	}
	v.deleted = append(v.deleted, [2]uint64{v.expected, p.seq - 1})
	v.expected, v.lastFlag = p.seq, true
	v.haveEpoch = false // the seal may be among the missing records
}

// facts gathers what classify decides on.
func (v *verifier) facts(it *item, next *parsed) lineFacts {
	p := &it.p
	return lineFacts{
		firstOfSegment: it.lineNo == 1,
		haveKey:        v.keys != nil,
		sigOK:          v.keys == nil || v.keys.verdict(p, it.sig),
		linkOK:         !v.haveLast || bytes.Equal(p.prev, v.lastB64[:]),
		nextLinkOK:     !next.ok || next.seq != p.seq+1 || bytes.Equal(next.prev, it.hb64[:]),
		chained:        v.haveLast,
		lastReported:   v.lastFlag,
		inReplaced:     v.replacedIn == it.seg.Name,
	}
}

// lineFacts is what is known about a line in order, for classify.
type lineFacts struct {
	firstOfSegment bool // line 1 of its segment
	haveKey        bool // signatures are checked
	sigOK          bool // the signature verifies (true without a key)
	linkOK         bool // its prev is the hash of the last chained line
	nextLinkOK     bool // the next line's prev is its hash, or the next is not its successor
	chained        bool // a line before it is in the chain
	lastReported   bool // the last chained line had a finding
	inReplaced     bool // its segment was reported replaced already
}

// inReplaced is classify's word for a line of a segment reported replaced
// already: not to be trusted, and not reported again. It is no Finding
// kind.
const inReplaced = "in a replaced segment"

// classify names the finding for a line in order: "" for none, inReplaced
// for one not to be reported. Any other answer means the line is not to be
// trusted.
func classify(f lineFacts) string {
	switch {
	case f.firstOfSegment && (!f.sigOK && f.nextLinkOK || !f.haveKey && !f.linkOK && f.chained && !f.lastReported):
		// A consistent chain under a key that is not ours, or (without the
		// key) a chain that does not continue ours: a foreign segment.
		return SegmentReplace
	case f.inReplaced:
		return inReplaced
	case !f.sigOK && !f.nextLinkOK, !f.haveKey && !f.nextLinkOK:
		return Edited
	case !f.sigOK:
		return BadSignature
	}
	return ""
}

// report adds the finding classify named.
func (v *verifier) report(it *item, kind string) {
	p := &it.p
	switch kind {
	case SegmentReplace:
		v.add(it, p.seq, kind, "this segment's records were not signed and chained by this store")
		v.replacedIn = it.seg.Name
	case Edited:
		v.add(it, p.seq, kind, "the line differs from what was signed and chained")
	case BadSignature:
		v.add(it, p.seq, kind, fmt.Sprintf("the signature does not verify under the key of epoch %d", p.epoch))
	}
}

// epochRule checks a trusted line's epoch against the last trusted one's:
// epochs never go back, and each new one follows the seal of the last.
func epochRule(lastEpoch, lastSeal, epoch uint64) (kind, detail string) {
	switch {
	case epoch < lastEpoch:
		return EpochBackwards, fmt.Sprintf("epoch %d after epoch %d", epoch, lastEpoch)
	case epoch > lastEpoch && lastSeal != epoch:
		return SealMissing, fmt.Sprintf("epoch %d follows epoch %d without its seal", epoch, lastEpoch)
	}
	return "", ""
}

// advance makes the line the end of the chain, then the lines met before
// their turn that now follow it.
func (v *verifier) advance(it *item, h [32]byte, reported bool) {
	p := &it.p
	v.lastSeq, v.last, v.lastB64, v.haveLast, v.lastFlag = p.seq, h, it.hb64, true, reported
	v.expected = p.seq + 1
	for {
		ah, ok := v.ahead[v.expected]
		if !ok {
			break
		}
		delete(v.ahead, v.expected)
		v.tree.leaf(v.expected, v.aheadLeaf[v.expected])
		delete(v.aheadLeaf, v.expected)
		v.lastSeq, v.last = v.expected, ah
		base64.StdEncoding.Encode(v.lastB64[:], ah[:])
		v.expected++
	}
	if !reported { // an edited line's epoch is not to be trusted
		v.lastEpoch, v.haveEpoch = p.epoch, true
		v.lastSeal = 0
		// The newest trusted line, for the end-of-store check: copied
		// out of its chunk only when the chunk goes back (see let).
		v.end.line, v.end.chunk = it.data, it.chunk
		v.end.segment, v.end.lineNo, v.end.seq = it.seg.Name, it.lineNo, p.seq
		v.sawEpochs = v.sawEpochs || p.epoch > 0
		switch string(p.eventType) {
		case record.TypeSeal:
			v.sawEpochs = true
			v.lastSeal = sealNext(it.data)
		case record.TypeRetention:
			v.retained(it.data)
		case record.TypeIndex:
			if d, err := record.ParseIndex(it.data); err == nil {
				v.attested[d.Segment+"\x00"+d.SHA256], v.attestedSeg[d.Segment] = true, true
			}
		case record.TypeGenesis:
			v.genesis(it, h)
		}
	}
}

// tailRecord is the newest trusted line and where it is.
type tailRecord struct {
	line    []byte // in chunk, or in own
	chunk   *chunk
	own     []byte
	segment string
	lineNo  int
	seq     uint64
}

// retained takes a trusted retention record: records up to its
// deleted_through were deleted by retention, which explains a store that
// starts after 1.
func (v *verifier) retained(line []byte) {
	d, err := record.ParseRetention(line)
	if err != nil {
		return
	}
	v.sum.RetainedThrough = max(v.sum.RetainedThrough, d.DeletedThrough)
	if d.Genesis != "" {
		v.retainedGenesis = d.Genesis
	}
	if v.startGap != nil && d.DeletedThrough >= v.startGap.Seq-1 {
		v.startGap = nil
	}
}

// wasDeleted reports whether seq was reported missing. Gaps are recorded in
// increasing order, so a binary search finds the candidate.
func (v *verifier) wasDeleted(seq uint64) bool {
	i := sort.Search(len(v.deleted), func(i int) bool { return v.deleted[i][1] >= seq })
	return i < len(v.deleted) && seq >= v.deleted[i][0]
}

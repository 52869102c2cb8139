package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sort"

	"github.com/tailseal/tailseal/signer/record"
)

type checkpointAt struct {
	hash [32]byte
	line int
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
	newest     uint64 // largest checkpoint size
	replacedIn string // segment reported replaced: its signatures are not reported one by one

	keys   *epochKeys // nil: signatures are not checked
	probe  *epochKeys // the key probe's, until it has decided
	probed int        // records the probe tried

	items   [2]item
	cur     *item // the line waiting for its successor
	spare   *item
	lastB64 [44]byte // scratch for base64 hashes
	hashB64 [44]byte
}

func newVerifier(opt Options) *verifier {
	v := &verifier{opt: opt, sum: &Summary{Signatures: opt.K0 != nil, Notes: opt.Verifier != nil},
		ahead: map[uint64][32]byte{}, want: map[uint64]checkpointAt{}}
	v.spare = &v.items[0]
	if opt.K0 != nil {
		v.keys, v.probe = &epochKeys{k0: opt.K0}, &epochKeys{k0: opt.K0}
	}
	return v
}

func (v *verifier) add(it *item, seq uint64, kind, detail string) {
	v.sum.Findings = append(v.sum.Findings, Finding{Segment: it.seg.Name, Line: it.lineNo, Seq: seq, Kind: kind, Detail: detail})
}

// line checks one line; next is the following line (not ok at the end,
// atEnd).
func (v *verifier) line(it *item, next *parsed, atEnd bool) {
	p := &it.p
	v.sum.Records++
	v.sum.Bytes += int64(len(it.data)) + 1
	if !p.ok {
		if atEnd {
			v.add(it, v.expected, Truncated, "the last line is cut off")
		} else {
			v.add(it, v.expected, Malformed, "not a record")
		}
		v.haveLast, v.lastFlag = false, true
		return
	}
	if v.expected == 0 {
		v.expected = p.seq
		if p.seq != 1 {
			v.add(it, p.seq, Deleted, fmt.Sprintf("the store starts at seq %d: records 1..%d are missing", p.seq, p.seq-1))
			v.deleted = append(v.deleted, [2]uint64{1, p.seq - 1})
		}
	}
	h := sha256.Sum256(it.data)

	switch {
	case p.seq > v.expected:
		missing := fmt.Sprintf("records %d..%d are missing", v.expected, p.seq-1)
		switch {
		case it.lineNo == 1 && it.seg.First == p.seq:
			v.add(it, p.seq, SegmentMissing, "a segment before this one is gone: "+missing)
		case next != nil && next.ok && next.seq == v.expected:
			v.add(it, p.seq, Reordered, fmt.Sprintf("seq %d comes before seq %d", p.seq, v.expected))
			v.ahead[p.seq] = h
			return
		default:
			v.add(it, p.seq, Deleted, missing)
		}
		v.deleted = append(v.deleted, [2]uint64{v.expected, p.seq - 1})
		v.expected, v.lastFlag = p.seq, true
		v.haveEpoch = false // the seal may be among the missing records
	case p.seq < v.expected:
		if v.wasDeleted(p.seq) {
			v.add(it, p.seq, Reordered, fmt.Sprintf("seq %d comes after seq %d", p.seq, v.lastSeq))
		} else {
			v.add(it, p.seq, Inserted, fmt.Sprintf("seq %d appears again after seq %d", p.seq, v.lastSeq))
		}
		return // not part of the chain
	}

	linkOK := !v.haveLast || bytes.Equal(p.prev, b64(&v.lastB64, v.last))
	sigOK := v.keys == nil || v.keys.verifies(*p)
	nextLinkOK := next == nil || !next.ok || next.seq != p.seq+1 || bytes.Equal(next.prev, b64(&v.hashB64, h))
	reported := false
	switch {
	case it.lineNo == 1 && (!sigOK && nextLinkOK || v.opt.K0 == nil && !linkOK && v.haveLast && !v.lastFlag):
		// A consistent chain under a key that is not ours, or (without the
		// key) a chain that does not continue ours: a foreign segment.
		v.add(it, p.seq, SegmentReplace, "this segment's records were not signed and chained by this store")
		v.replacedIn, reported = it.seg.Name, true
	case v.replacedIn == it.seg.Name:
		reported = true // part of a replaced segment, reported once
		v.haveEpoch = false
	case !sigOK && !nextLinkOK, v.opt.K0 == nil && !nextLinkOK:
		v.add(it, p.seq, Edited, "the line differs from what was signed and chained")
		reported = true
	case !sigOK:
		v.add(it, p.seq, BadSignature, fmt.Sprintf("the signature does not verify under the key of epoch %d", p.epoch))
		reported = true
	}
	if !reported && v.haveEpoch {
		switch {
		case p.epoch < v.lastEpoch:
			v.add(it, p.seq, EpochBackwards, fmt.Sprintf("epoch %d after epoch %d", p.epoch, v.lastEpoch))
		case p.epoch > v.lastEpoch && v.lastSeal != p.epoch:
			v.add(it, p.seq, SealMissing, fmt.Sprintf("epoch %d follows epoch %d without its seal", p.epoch, v.lastEpoch))
		}
	}
	if c, ok := v.want[p.seq]; ok && c.hash != h && v.replacedIn != it.seg.Name {
		v.add(it, p.seq, BadCheckpoint, fmt.Sprintf("checkpoint %d (checkpoints.jsonl line %d) signed a different line", p.seq, c.line))
	}

	v.lastSeq, v.last, v.haveLast, v.lastFlag = p.seq, h, true, reported
	v.expected = p.seq + 1
	for {
		ah, ok := v.ahead[v.expected]
		if !ok {
			break
		}
		delete(v.ahead, v.expected)
		v.lastSeq, v.last = v.expected, ah
		v.expected++
	}
	if !reported { // an edited line's epoch is not to be trusted
		v.lastEpoch, v.haveEpoch = p.epoch, true
		v.lastSeal = 0
		if string(p.eventType) == record.TypeSeal {
			v.lastSeal = sealNext(it.data)
		}
	}
}

// wasDeleted reports whether seq was reported missing. Gaps are recorded in
// increasing order, so a binary search finds the candidate.
func (v *verifier) wasDeleted(seq uint64) bool {
	i := sort.Search(len(v.deleted), func(i int) bool { return v.deleted[i][1] >= seq })
	return i < len(v.deleted) && seq >= v.deleted[i][0]
}

func b64(buf *[44]byte, h [32]byte) []byte {
	base64.StdEncoding.Encode(buf[:], h[:])
	return buf[:]
}

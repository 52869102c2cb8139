// Package verify owns checking a store end to end, with nothing but the
// store, the checkpoints file and the verification keys: seq contiguity
// within and across segments, the prev hash chain, each signature under the
// key of its epoch, epoch order and seals, and every checkpoint.
package verify

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"sort"
	"strconv"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
	"golang.org/x/mod/sumdb/note"
)

// Kinds of findings.
const (
	Edited         = "edited"
	Deleted        = "deleted"
	Inserted       = "inserted"
	Reordered      = "reordered"
	Truncated      = "truncated"
	Malformed      = "malformed"
	SegmentMissing = "segment missing"
	SegmentReplace = "segment replaced"
	BadSignature   = "bad signature"
	BadCheckpoint  = "bad checkpoint"
	EpochBackwards = "epoch backwards"
	SealMissing    = "seal missing"
	Unreadable     = "segment unreadable"
)

// Options say what to verify and with which keys.
type Options struct {
	StoreDir    string
	Checkpoints string        // path of checkpoints.jsonl; "" or missing: none
	K0          []byte        // nil: signatures are not checked
	Verifier    note.Verifier // nil: checkpoint signatures are not checked
	Progress    func(bytes int64)
}

// Finding is one thing wrong, with its place.
type Finding struct {
	Segment string `json:"segment"`
	Line    int    `json:"line"`
	Seq     uint64 `json:"seq"`
	Kind    string `json:"kind"`
	Detail  string `json:"detail"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d seq %d: %s: %s", f.Segment, f.Line, f.Seq, f.Kind, f.Detail)
}

// Summary is the result of a run.
type Summary struct {
	Records     int       `json:"records"`
	Segments    int       `json:"segments"`
	Checkpoints int       `json:"checkpoints"`
	Bytes       int64     `json:"bytes"` // of records, uncompressed
	Signatures  bool      `json:"signatures_checked"`
	Notes       bool      `json:"checkpoint_signatures_checked"`
	Findings    []Finding `json:"findings"`
}

// Errors for keys that cannot be right: a clear error, not false findings.
var (
	ErrWrongKey      = errors.New("the verification key does not match this store")
	ErrWrongVerifier = errors.New("the checkpoint verifier key does not match any checkpoint")
)

// keyProbe is how many leading records are tried to tell a wrong key from
// edited records: the key is wrong if none of them verifies.
const keyProbe = 16

// Run verifies the store.
func Run(opt Options) (*Summary, error) {
	segs, err := store.List(opt.StoreDir)
	if err != nil {
		return nil, err
	}
	v := &verifier{opt: opt, sum: &Summary{Segments: len(segs), Signatures: opt.K0 != nil, Notes: opt.Verifier != nil},
		ahead: map[uint64][32]byte{}, want: map[uint64]checkpointAt{}}
	if err := v.loadCheckpoints(); err != nil {
		return nil, err
	}
	if opt.K0 != nil {
		if err := v.probeKey(segs); err != nil {
			return nil, err
		}
	}
	v.scan(&lines{dir: opt.StoreDir, segs: segs})
	v.finish()
	return v.sum, nil
}

type checkpointAt struct {
	hash [32]byte
	line int
}

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

	epoch   uint64
	macKey  []byte
	mac     hash.Hash
	macSum  [32]byte
	hashB64 [44]byte
}

// parsed holds the fields of one stored line.
type parsed struct {
	ok        bool
	seq       uint64
	epoch     uint64
	prev      []byte // base64 text
	msg, sig  []byte
	eventType []byte
}

var epochField = []byte(`,"epoch":`)

func parse(line []byte) parsed {
	var p parsed
	var ok bool
	if p.seq, ok = record.Seq(line); !ok {
		return p
	}
	if p.msg, p.sig, ok = record.SplitSigned(line); !ok {
		return p
	}
	// `,"epoch":N,"prev":"<44 base64 chars or none>"` ends the message.
	tail := p.msg[max(0, len(p.msg)-96):]
	i := record.LastIndexComma(tail, epochField)
	if i < 0 {
		return p
	}
	rest := tail[i+len(`,"epoch":`):]
	j := bytes.IndexByte(rest, ',')
	const prevKey = `,"prev":"`
	if j < 0 || len(rest) < j+len(prevKey)+1 || !bytes.HasPrefix(rest[j:], []byte(prevKey)) || rest[len(rest)-1] != '"' {
		return p
	}
	e, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	if err != nil {
		return p
	}
	p.epoch = e
	p.prev = rest[j+len(prevKey) : len(rest)-1]
	p.eventType, _ = record.StringField(line, "event_type")
	p.ok = true
	return p
}

func (v *verifier) add(it item, seq uint64, kind, detail string) {
	v.sum.Findings = append(v.sum.Findings, Finding{Segment: it.seg.Name, Line: it.lineNo, Seq: seq, Kind: kind, Detail: detail})
}

// scan walks every line with one line of lookahead.
func (v *verifier) scan(ls *lines) {
	var bufs [2][]byte
	cur, ok := ls.next(bufs[0])
	v.reportBroken(ls)
	var p parsed // of cur: each line is parsed once, as the lookahead
	if ok {
		p = parse(cur.data)
	}
	k := 1
	for ok {
		bufs[(k+1)%2] = cur.data
		next, nok := ls.next(bufs[k%2])
		v.reportBroken(ls)
		k++
		var np parsed
		if nok {
			np = parse(next.data)
		}
		v.line(cur, p, &np, !nok)
		if v.opt.Progress != nil && (cur.last || !nok || v.sum.Records%(1<<16) == 0) {
			v.opt.Progress(ls.bytesRead())
		}
		cur, ok, p = next, nok, np
	}
}

func (v *verifier) reportBroken(ls *lines) {
	if ls.broken != nil {
		v.sum.Findings = append(v.sum.Findings, Finding{Segment: ls.broken.Name, Seq: ls.broken.First, Kind: Unreadable, Detail: ls.brokenErr.Error()})
		ls.broken = nil
	}
}

// line checks one line, parsed as p; next is the following line (not ok at
// the end).
func (v *verifier) line(it item, p parsed, next *parsed, atEnd bool) {
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

	linkOK := !v.haveLast || bytes.Equal(p.prev, v.b64(v.last))
	sigOK := v.opt.K0 == nil || v.checkSig(p)
	nextLinkOK := next == nil || !next.ok || next.seq != p.seq+1 || bytes.Equal(next.prev, v.b64(h))
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

func (v *verifier) b64(h [32]byte) []byte {
	base64.StdEncoding.Encode(v.hashB64[:], h[:])
	return v.hashB64[:]
}

// maxEpochJump bounds how far a key is derived forward for one record (4M
// epochs: 120 years of 15-minute epochs), so that a record claiming epoch
// 10^12 cannot make verification run for days. Such a record fails.
const maxEpochJump = 1 << 22

// checkSig verifies a line under K(epoch), deriving keys forward from K0.
func (v *verifier) checkSig(p parsed) bool {
	if v.mac == nil || p.epoch != v.epoch {
		from, k := uint64(0), v.opt.K0
		if v.mac != nil && p.epoch > v.epoch {
			from, k = v.epoch, v.macKey
		}
		if p.epoch-from > maxEpochJump {
			return false
		}
		k = signer.Derive(k, p.epoch-from)
		v.epoch, v.macKey, v.mac = p.epoch, k, hmac.New(sha256.New, k)
	}
	v.mac.Reset()
	v.mac.Write(p.msg)
	sum := v.mac.Sum(v.macSum[:0])
	var want [32]byte
	if len(p.sig) != 64 {
		return false
	}
	if _, err := hex.Decode(want[:], p.sig); err != nil {
		return false
	}
	return hmac.Equal(sum, want[:])
}

func sealNext(line []byte) uint64 {
	d, err := record.ParseSeal(line)
	if err != nil {
		return 0
	}
	return d.NextEpoch
}

// finish reports a store shorter than its newest checkpoint: every entry of
// checkpoints.jsonl has its own record at seq size+1.
func (v *verifier) finish() {
	if v.newest == 0 || v.lastSeq >= v.newest+1 {
		return
	}
	v.sum.Findings = append(v.sum.Findings, Finding{Segment: "checkpoints.jsonl", Seq: v.lastSeq, Kind: Truncated,
		Detail: fmt.Sprintf("the store ends at seq %d but a checkpoint covers seq %d and its record %d", v.lastSeq, v.newest, v.newest+1)})
}

// probeKey tells a wrong key from edited records before the scan.
func (v *verifier) probeKey(segs []store.Segment) error {
	ls := &lines{dir: v.opt.StoreDir, segs: segs}
	defer ls.close()
	var buf []byte
	tried := 0
	for tried < keyProbe {
		it, ok := ls.next(buf)
		if !ok {
			break
		}
		buf = it.data
		p := parse(it.data)
		if !p.ok {
			continue
		}
		tried++
		if v.checkSig(p) {
			v.mac = nil // start the scan from K0
			return nil
		}
	}
	v.mac = nil
	if tried == 0 {
		return nil
	}
	return fmt.Errorf("%w: none of the first %d records verifies with it (is it the K0 printed by `tailseal keygen` for this data dir?)", ErrWrongKey, tried)
}

// loadCheckpoints reads checkpoints.jsonl, verifying each note.
func (v *verifier) loadCheckpoints() error {
	if v.opt.Checkpoints == "" {
		return nil
	}
	f, err := os.Open(v.opt.Checkpoints)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open checkpoints: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n, good, unknown := 0, 0, 0
	var bad []Finding
	for sc.Scan() {
		n++
		var cl struct {
			Size uint64 `json:"size"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal(sc.Bytes(), &cl); err != nil {
			bad = append(bad, Finding{Segment: "checkpoints.jsonl", Line: n, Kind: BadCheckpoint, Detail: "not a checkpoint line"})
			continue
		}
		c, err := v.openNote(cl.Note)
		var uv *note.UnknownVerifierError
		var unv *note.UnverifiedNoteError
		switch {
		case errors.As(err, &uv) || errors.As(err, &unv):
			unknown++
			bad = append(bad, Finding{Segment: "checkpoints.jsonl", Line: n, Seq: cl.Size, Kind: BadCheckpoint, Detail: "signed by an unknown key: " + err.Error()})
			continue
		case err != nil:
			bad = append(bad, Finding{Segment: "checkpoints.jsonl", Line: n, Seq: cl.Size, Kind: BadCheckpoint, Detail: err.Error()})
			continue
		case c.Size != cl.Size:
			bad = append(bad, Finding{Segment: "checkpoints.jsonl", Line: n, Seq: cl.Size, Kind: BadCheckpoint, Detail: fmt.Sprintf("the line says size %d, the signed note %d", cl.Size, c.Size)})
			continue
		}
		good++
		v.want[c.Size] = checkpointAt{hash: c.Hash, line: n}
		v.newest = max(v.newest, c.Size)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	if v.opt.Verifier != nil && good == 0 && unknown > 0 && unknown == len(bad) {
		return fmt.Errorf("%w (it names %s+%08x)", ErrWrongVerifier, v.opt.Verifier.Name(), v.opt.Verifier.KeyHash())
	}
	v.sum.Checkpoints = n
	v.sum.Findings = append(v.sum.Findings, bad...)
	return nil
}

// openNote verifies a note with the verifier, or only parses it without one.
func (v *verifier) openNote(signed string) (signer.Checkpoint, error) {
	if v.opt.Verifier != nil {
		return signer.OpenCheckpoint(signed, v.opt.Verifier)
	}
	text, _, ok := bytes.Cut([]byte(signed), []byte("\n\n"))
	if !ok {
		return signer.Checkpoint{}, fmt.Errorf("%w: not a signed note", signer.ErrBadCheckpoint)
	}
	return signer.ParseCheckpoint(string(text) + "\n")
}

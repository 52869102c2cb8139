// Package verify owns checking a store end to end, with nothing but its
// lines, its checkpoints and the verification keys: seq contiguity within
// and across segments, the prev hash chain, each signature under the key
// of its epoch, epoch order and seals, and every checkpoint against the
// Merkle tree of the records (package merkle) or, in older stores, the
// line it names.
//
// It knows no files: a Source feeds it the segments' lines and the
// checkpoints, and an fs.FS the stored Merkle hashes, so it imports only
// signer, signer/record, signer/merkle, the signed-note and tlog packages
// and the standard library, and anyone can check a store from anywhere.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"time"

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
	Forked         = "fork" // two signed checkpoints of one size with different heads
	IndexMismatch  = "index mismatch"
	TailMissing    = "tail missing" // the store ends where a running agent would have written more
	EpochBackwards = "epoch backwards"
	SealMissing    = "seal missing"
	Unreadable     = "segment unreadable"
	WrongOrigin    = "wrong origin" // the store is another origin's than expected (Options.Origin)
	TreeHashes     = "tree hashes"  // the stored Merkle hashes do not give what the checkpoints sign
	BadCosignature = "bad cosignature"
	NotWitnessed   = "not witnessed" // no checkpoint has the quorum of trusted witnesses' cosignatures
)

// Source is a store as the verifier reads it: its segments of lines and
// its checkpoints. Where they come from is the caller's business.
type Source interface {
	// Segments lists the segments in stored order.
	Segments() ([]Segment, error)
	// Lines calls fn with every line of seg in order: lineNo from 1, data
	// without its newline and valid only during the call, a torn last line
	// included. It returns fn's error, or else why seg could not be read
	// to its end, which is reported as a finding. Run calls it ahead of
	// the checks, from up to four goroutines at once, each for another
	// segment (one segment after the other in stored order when there is
	// one core), and never after Run returned.
	Lines(seg Segment, fn func(lineNo int, data []byte) error) error
	// Checkpoints returns the content of checkpoints.jsonl, or nil when
	// there is none. The verifier closes it.
	Checkpoints() (io.ReadCloser, error)
}

// Segment is one segment as findings name it.
type Segment struct {
	Name  string
	First uint64 // the seq its name says it starts with
}

// Options say what to verify and with which keys.
type Options struct {
	Source Source
	K0     []byte // nil: signatures are not checked
	// Verifiers are the trusted checkpoint verifier keys: a checkpoint
	// verifies when one of them signed it. None: checkpoint signatures
	// are not checked.
	Verifiers []note.Verifier

	// The end of the store is held to the clock when Now is set: a store
	// must end with a clean-stop record, unless AgentRunning (an agent
	// holds the data dir now); then, in epoch mode, its newest record
	// must be less than an Epoch (plus a minute) old, since the agent
	// seals every epoch, idle or not.
	Now          time.Time
	Epoch        time.Duration
	AgentRunning bool

	// IndexDigests are the store/index lines' digests by segment
	// (store.IndexDigest): each must be one a trusted index record
	// attests. Segments whose line no record attests (indexed before
	// the agent attested them) are listed in Summary.Unattested.
	IndexDigests map[string]string

	// Genesis is the copy of the genesis record kept beside the store
	// (genesis.json), nil when there is none: it must be the store's seq
	// 1, and it names the store's origin when retention deleted that.
	Genesis []byte
	// K0FromGenesis says K0 was opened from Genesis: when the store no
	// longer holds seq 1 and K0 verifies none of its first records, the
	// copy is not this store's genesis, a finding, and signatures go
	// unchecked (rather than ErrWrongKey).
	K0FromGenesis bool

	// Origin is the origin the store is expected to be (a collector keeps
	// each origin's store under its name), "" for any: a genesis or a
	// checkpoint naming another is a finding.
	Origin string

	// Hashes holds the store's stored Merkle hashes (store/hashes, see
	// package merkle), nil when there are none. The roots are recomputed
	// from the records either way; the stored hashes stand in for records
	// the store no longer holds, and give the consistency proofs between
	// successive checkpoints. Whatever they say is checked against a
	// signed root before it counts.
	Hashes fs.FS

	// WitnessKeys are the trusted witnesses' cosignature verifier keys
	// (C2SP tlog-cosignature); none: cosignatures are held to the records
	// as checkpoints, and not counted. With keys, some checkpoint must be
	// cosigned by WitnessQuorum of them (0: all).
	WitnessKeys   []note.Verifier
	WitnessQuorum int

	// For tests: how many hashers (0: GOMAXPROCS) and the most lines in
	// a chunk (0: checkEvery).
	workers, chunkLines int
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
	Records     int   `json:"records"`
	Segments    int   `json:"segments"`
	Checkpoints int   `json:"checkpoints"`
	Bytes       int64 `json:"bytes"` // of records, uncompressed
	Signatures  bool  `json:"signatures_checked"`
	Notes       bool  `json:"checkpoint_signatures_checked"`
	// RetainedThrough is the last seq a trusted retention record says
	// was deleted by retention (0: none).
	RetainedThrough uint64 `json:"retained_through,omitempty"`
	// Origin is the store's, from its genesis record, and Genesis that
	// record's SHA-256 (base64): a store rewritten whole with a new K0
	// has another, which an auditor who noted it sees.
	Origin  string `json:"origin,omitempty"`
	Genesis string `json:"genesis,omitempty"`
	// Checkpoints by kind: TreeHeads sign the Merkle root of the records
	// before them (recomputed here, or, where the records are gone, taken
	// from the stored hashes a later tree head vouches for), ChainHeads
	// the SHA-256 of line #size (checkpoints of stores written before
	// the tree). Consistent counts the consistency proofs checked between
	// successive tree heads; Unchecked the checkpoints that could be
	// held to neither: records before them are gone, and the stored
	// hashes do not give their root (chain heads of deleted records, or
	// no stored hashes).
	TreeHeads  int `json:"tree_heads"`
	ChainHeads int `json:"chain_heads"`
	Consistent int `json:"consistency_proofs"`
	Unchecked  int `json:"checkpoints_unchecked,omitempty"`
	// With witness keys: the cosignatures of trusted witnesses found, the
	// quorum asked, and the newest checkpoint size that quorum cosigned.
	Cosignatures  int    `json:"cosignatures,omitempty"`
	WitnessQuorum int    `json:"witness_quorum,omitempty"`
	WitnessedSize uint64 `json:"witnessed_size,omitempty"`
	// Unattested are the indexed segments no index record speaks for:
	// their index lines are to be checked against the segments.
	Unattested []string `json:"-"`
	// Unindexed are compressed segments an index record attests whose
	// line store/index no longer has: not a finding (a collector leaves
	// out the lines it would write otherwise than the agent), but queries
	// read them whole.
	Unindexed []string  `json:"unindexed,omitempty"`
	Findings  []Finding `json:"findings"`
}

// Errors for keys that cannot be right: a clear error, not false findings.
var (
	ErrWrongKey      = errors.New("the verification key does not match this store")
	ErrWrongVerifier = errors.New("the checkpoint verifier key does not match any checkpoint")
)

// Run verifies the store opt.Source reads. Cancelling ctx stops it
// within a few thousand lines with ctx.Err() and no summary: a check cut
// short says nothing about the store.
func Run(ctx context.Context, opt Options) (*Summary, error) {
	sum, err := run(ctx, opt)
	var ck errCopyKey
	if errors.As(err, &ck) {
		// The checks so far used a key that is not the store's: again
		// without it, and the copy it came from is the finding.
		opt.K0 = nil
		if sum, err = run(ctx, opt); err == nil {
			sum.Findings = append([]Finding{{Segment: genesisFile, Seq: 1, Kind: Edited,
				Detail: fmt.Sprintf("the K0 sealed in the genesis copy verifies none of the first %d records: the copy is not this store's genesis; signatures are not checked", ck.probed)}},
				sum.Findings...)
		}
	}
	return sum, err
}

// errCopyKey: K0 from the genesis copy verifies none of the first records.
type errCopyKey struct{ probed int }

func (e errCopyKey) Error() string { return "the genesis copy's K0 is not this store's" }

func run(ctx context.Context, opt Options) (*Summary, error) {
	// The checkpoints before the segments: on a live store, a checkpoint
	// read first covers only records already in the segments listed
	// after it, whatever rotates meanwhile.
	v := newVerifier(opt)
	if err := v.loadCheckpoints(opt.Source); err != nil {
		return nil, err
	}
	segs, err := opt.Source.Segments()
	if err != nil {
		return nil, err
	}
	v.sum.Segments = len(segs)
	for _, seg := range segs {
		v.present[seg.Name] = true
	}
	if err := v.scan(ctx, opt.Source, segs); err != nil {
		return nil, err
	}
	v.finish()
	return v.sum, nil
}

// checkEvery is how many lines go by between looks at the context: often
// enough to stop within milliseconds, rarely enough to cost nothing.
const checkEvery = 4096

// scan feeds every line of every segment to the checks, in order, from a
// pipeline that reads and hashes them ahead (see pipeline.go), looking
// whether ctx is done before each chunk of at most checkEvery lines.
func (v *verifier) scan(ctx context.Context, src Source, segs []Segment) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pl := startPipeline(src, segs, v.opt.K0, v.opt.workers, v.opt.chunkLines)
	defer pl.close()
	var held *chunk // the chunk v.cur's line is in
	h := newHasher(v.opt.K0)
	for {
		c, ok := pl.next(h)
		if !ok {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range c.ends {
			if err := v.feed(c, i); err != nil {
				return err
			}
			if held != c {
				v.let(pl, held)
				held = c
			}
		}
		if c.last && c.err != nil {
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: c.seg.Name, Seq: c.seg.First, Kind: Unreadable, Detail: c.err.Error()})
		}
		if c != held {
			pl.release(c)
		}
	}
	err := v.flush()
	v.let(pl, held)
	return err
}

// let gives a chunk back to the pipeline once no line the verifier keeps
// is in it: the newest trusted line is copied out of it.
func (v *verifier) let(pl *pipeline, c *chunk) {
	if c == nil {
		return
	}
	if v.end.chunk == c {
		v.end.own = append(v.end.own[:0], v.end.line...)
		v.end.line, v.end.chunk = v.end.own, nil
	}
	pl.release(c)
}

// item is a line kept while the one after it is read: the checks look one
// line ahead.
type item struct {
	seg     Segment
	lineNo  int
	data    []byte // in chunk, which the verifier holds while it keeps the line
	chunk   *chunk
	*hashed // what the hashers found
}

// feed takes line i of c and checks the one before it, whose successor is
// now known.
func (v *verifier) feed(c *chunk, i int) error {
	it := v.spare
	it.seg, it.data, it.chunk, it.hashed = c.seg, c.line(i), c, &c.hashed[i]
	it.lineNo = it.hashed.lineNo
	if err := v.probeKey(it.p); err != nil {
		return err
	}
	if v.cur != nil {
		v.line(v.cur, &it.p, false)
		v.spare = v.cur
	} else {
		v.spare = &v.items[1]
	}
	v.cur = it
	return nil
}

// flush checks the last line, with nothing after it.
func (v *verifier) flush() error {
	if err := v.keyVerdict(); err != nil {
		return err
	}
	if v.cur != nil {
		v.line(v.cur, &parsed{}, true)
	}
	return nil
}

// keyProbe is how many leading records are tried to tell a wrong key from
// edited records: the key is wrong if none of them verifies.
const keyProbe = 16

// probeKey tries the signature of each of the first keyProbe records, with
// keys of its own so the checks see the same key derivations as without
// it, and fails the run as soon as none of them can verify any more.
func (v *verifier) probeKey(p parsed) error {
	if v.probe == nil || !p.ok {
		return nil
	}
	if v.probed == 0 {
		v.firstSeq = p.seq
	}
	v.probed++
	if v.probe.verifies(&p) {
		v.probe = nil // the key is right
		return nil
	}
	if v.probed == keyProbe {
		return v.keyVerdict()
	}
	return nil
}

// keyVerdict fails a run whose key verified none of the records probed.
func (v *verifier) keyVerdict() error {
	if v.probe == nil || v.probed == 0 {
		return nil
	}
	if v.opt.K0FromGenesis && v.firstSeq > 1 {
		return errCopyKey{probed: v.probed}
	}
	return fmt.Errorf("%w: none of the first %d records verifies with it (is it the K0 printed by `tailseal keygen` for this data dir?)", ErrWrongKey, v.probed)
}

// finish reports a store shorter than its newest checkpoint: every entry of
// checkpoints.jsonl has its own record at seq size+1.
func (v *verifier) finish() {
	v.finishTree()
	v.checkWitnesses()
	if v.startGap != nil {
		v.sum.Findings = append([]Finding{*v.startGap}, v.sum.Findings...)
	}
	if f, ok := v.tail(); ok {
		v.sum.Findings = append(v.sum.Findings, f)
	}
	v.checkIndex()
	v.checkGenesis()
	if v.newest == 0 || v.lastSeq >= v.newest+1 {
		return
	}
	v.sum.Findings = append(v.sum.Findings, Finding{Segment: "checkpoints.jsonl", Seq: v.lastSeq, Kind: Truncated,
		Detail: fmt.Sprintf("the store ends at seq %d but a checkpoint covers seq %d and its record %d", v.lastSeq, v.newest, v.newest+1)})
}

// tailGrace is how late a seal may be stored after its epoch ended.
const tailGrace = time.Minute

// tail checks how the store ends against the clock (see Options.Now).
func (v *verifier) tail() (Finding, bool) {
	t := v.end
	typ, _ := record.StringField(t.line, "event_type")
	if v.opt.Now.IsZero() || t.line == nil || string(typ) == record.TypeStop {
		return Finding{}, false
	}
	f := Finding{Segment: t.segment, Line: t.lineNo, Seq: t.seq, Kind: TailMissing}
	if !v.opt.AgentRunning {
		f.Detail = fmt.Sprintf("the store does not end with a clean-stop record and no agent runs on it: records after seq %d may have been cut, "+
			"or the agent was killed and not started again (start it, stop it cleanly, and verify again)", t.seq)
		return f, true
	}
	ts, _ := record.StringField(t.line, "timestamp")
	at, err := time.Parse(time.RFC3339Nano, string(ts))
	if !v.sawEpochs || v.opt.Epoch <= 0 || err != nil || v.opt.Now.Sub(at) <= v.opt.Epoch+tailGrace {
		return Finding{}, false
	}
	f.Detail = fmt.Sprintf("an agent runs on this store, but its newest record (seq %d) is from %s, more than an epoch (%s) ago: "+
		"the agent seals every epoch, so records after it were cut, or the agent is stuck", t.seq, ts, v.opt.Epoch)
	return f, true
}

// checkIndex holds each index line to the index records the chain holds.
func (v *verifier) checkIndex() {
	for _, seg := range slices.Sorted(maps.Keys(v.opt.IndexDigests)) {
		switch {
		case v.attested[seg+"\x00"+v.opt.IndexDigests[seg]]:
		case v.attestedSeg[seg]:
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: "index", Kind: IndexMismatch,
				Detail: "the entry for " + seg + " is not the one the agent wrote and attested in its index record; queries may skip or misread the segment"})
		default:
			v.sum.Unattested = append(v.sum.Unattested, seg)
		}
	}
	for _, seg := range slices.Sorted(maps.Keys(v.attestedSeg)) {
		if _, ok := v.opt.IndexDigests[seg]; !ok && v.present[seg] {
			v.sum.Unindexed = append(v.sum.Unindexed, seg)
		}
	}
}

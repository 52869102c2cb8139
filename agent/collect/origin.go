package collect

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/lock"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// QuarantineFile, in an origin's directory, holds what arrived for it
// and is not in its store: records after a gap or a broken chain, forks,
// malformed lines. An entry marked halted keeps the origin halted across
// restarts.
const QuarantineFile = "quarantine.jsonl"

// recentHashes is how many of an origin's newest records are remembered
// by hash, to tell a redelivery from a fork without reading the store.
const recentHashes = 1024

// noRotation: a collected store rotates only where its agent's did
// (Split, from the agent's index records), never on its own.
const (
	noRotationSize = math.MaxInt64
	noRotationAge  = time.Duration(math.MaxInt64)
)

// origin is one origin's collected store and what continuity needs of it.
// Only the consuming goroutine calls its methods, except keep and
// keepIndexLine (the store's background work) and the atomic fields.
type origin struct {
	name, tok, dir string
	log            *slog.Logger
	m              *metrics
	st             *store.Store
	lock           *lock.Lock
	quar           *quarantine

	lastSeq  uint64 // appended (durable after commit)
	lastHash [sha256.Size]byte
	recent   [recentHashes]struct {
		seq  uint64
		hash [sha256.Size]byte
	}
	halted bool // a gap or broken chain: nothing more goes into the store

	// This batch: lines to append, and what to do once they are durable.
	pend            []byte
	pendFirst       uint64
	genesis         []byte   // a genesis record to copy into genesis.json
	checkpoints     [][]byte // checkpoints.jsonl lines
	newestCkpt      uint64   // size of the newest line in checkpoints.jsonl
	splits          []uint64 // segment starts the agent's index records name
	learnedAttested bool     // the active segment's index records are known

	mu       sync.Mutex
	attested map[string]string // segment name → digest its agent's index record attests
	// compression is how the agent compressed the last segment it indexed
	compression store.Compression
	retained    atomic.Uint64 // the highest deleted_through of the agent's retention records

	reader *store.Reader // reads stored records for duplicate checks; nil: none open
}

// openOrigin opens (or creates) the collected store of one origin and
// locks its directory, as an agent holds its data dir: verify on it then
// knows a writer is live.
func openOrigin(dataDir, name, tok string, retention time.Duration, log *slog.Logger, m *metrics) (*origin, error) {
	o := &origin{name: name, tok: tok, dir: filepath.Join(dataDir, OriginsDir, tok), log: log.With("origin", name), m: m, attested: map[string]string{}}
	l, err := lock.Acquire(o.dir)
	if err != nil {
		return nil, fmt.Errorf("origin %s: %w", name, err)
	}
	o.lock = l
	o.compression = lastCompression(filepath.Join(o.dir, agent.StoreDir))
	st, last, err := store.Open(store.Options{
		Dir: filepath.Join(o.dir, agent.StoreDir), SegmentMax: noRotationSize, SegmentMaxAge: noRotationAge,
		Retention: retention, Keep: o.keep, KeepIndexLine: o.keepIndexLine, CompressionFor: o.compressionFor, Logger: o.log,
	})
	if err != nil {
		l.Release()
		return nil, fmt.Errorf("origin %s: open store: %w", name, err)
	}
	o.st = st
	if last != nil {
		seq, _ := record.Seq(last.Line)
		o.lastSeq, o.lastHash = seq, sha256.Sum256(last.Line)
		o.remember(seq, o.lastHash)
	}
	cl, ok, err := agent.NewestCheckpoint(o.dir)
	if err != nil {
		o.close()
		return nil, fmt.Errorf("origin %s: %w", name, err)
	}
	if ok {
		o.newestCkpt = cl.Size
	}
	if o.quar, err = openQuarantine(filepath.Join(o.dir, QuarantineFile)); err != nil {
		o.close()
		return nil, fmt.Errorf("origin %s: %w", name, err)
	}
	o.halted = o.quar.halted
	o.m.lastSeq.WithLabelValues(name).Set(float64(o.lastSeq))
	o.m.halted.WithLabelValues(name).Set(b2f(o.halted))
	if first, err := firstSeq(o.st, filepath.Join(o.dir, agent.StoreDir)); err == nil && first > 0 {
		o.m.firstSeq.WithLabelValues(name).Set(float64(first))
	}
	if o.halted {
		o.log.Error("COLLECT: this origin is halted: its store ends at the last record that chained, and what came after a finding is in "+QuarantineFile,
			"last_seq", o.lastSeq, "quarantined", o.quar.entries)
	}
	return o, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// firstSeq is the seq the store's first segment starts at, 0 when empty.
func firstSeq(st *store.Store, dir string) (uint64, error) {
	segs, err := store.List(dir)
	if err != nil || len(segs) == 0 || st.Durable() == 0 {
		return 0, err
	}
	return segs[0].First, nil
}

// msg is what take needs of one message.
type msg struct {
	line      []byte
	streamSeq uint64
	subject   string
	msgID     string
}

// take decides what one message of this origin becomes. The rules:
//   - the store's next seq (or, in an empty store, any first seq: the
//     agent's retention may have come before the stream) whose prev is the
//     hash of the stored record before it is appended;
//   - a seq already stored with the same bytes is a redelivery: skipped;
//   - a seq already stored with other bytes is a fork: quarantined, and
//     the store goes on, since its own chain is untouched;
//   - a seq after the next one (a gap), the next seq with another prev (a
//     broken chain), or a line that is not a record halt the origin: it
//     and everything after it goes to quarantine.jsonl and never into the
//     store, which ends at the last record that chained. A halted origin
//     stays halted (across restarts: its quarantine entries say so) until
//     an operator has looked: the store must never hold a record that
//     does not chain, and no later record can be chained to it.
func (o *origin) take(m msg, now time.Time) error {
	line := m.line
	seq, ok := record.Seq(line)
	msg, sig, signed := record.SplitSigned(line)
	_, prev, chained := record.ChainTail(msg)
	if !ok || !signed || !chained || len(sig) == 0 || bytes.IndexByte(line, '\n') >= 0 {
		return o.finding(m, now, FindingMalformed, "not one stored line of the record layout", !o.halted)
	}
	if want := o.name + ":" + strconv.FormatUint(seq, 10); m.msgID != want {
		// The body decides, as it is what the chain holds; the header is
		// the publisher's word, and a wrong one says something is off.
		o.m.findings.WithLabelValues(o.name, FindingMsgID).Inc()
		o.log.Warn("COLLECT: a message's Nats-Msg-Id does not name its record", "msg_id", m.msgID, "want", want, "stream_seq", m.streamSeq)
	}
	if seq <= o.lastSeq && o.lastSeq > 0 {
		return o.stored(m, seq, now)
	}
	if o.halted {
		return o.quarantine(m, now, "halted", "after a finding: not chained to the store")
	}
	switch {
	case o.lastSeq == 0 && seq == 1 && len(prev) != 0:
		return o.finding(m, now, FindingChain, "seq 1 with a prev", true)
	case o.lastSeq == 0 && seq > 1:
		o.log.Warn("the first record collected for this origin is not seq 1: the agent's retention deleted the ones before it before they reached the stream, "+
			"or the stream no longer holds them; its collected store starts here", "seq", seq, "stream_seq", m.streamSeq)
		o.m.firstSeq.WithLabelValues(o.name).Set(float64(seq))
	case o.lastSeq == 0:
		o.m.firstSeq.WithLabelValues(o.name).Set(1)
	case seq > o.lastSeq+1:
		return o.finding(m, now, FindingGap, fmt.Sprintf("seq %d after %d: records %d to %d are missing", seq, o.lastSeq, o.lastSeq+1, seq-1), true)
	default:
		var want [44]byte
		base64.StdEncoding.Encode(want[:], o.lastHash[:])
		if !bytes.Equal(prev, want[:]) {
			return o.finding(m, now, FindingChain, fmt.Sprintf("seq %d does not chain to the stored seq %d: its prev is %q, the stored record hashes to %q; one of the two was altered",
				seq, o.lastSeq, prev, want[:]), true)
		}
	}
	if err := o.special(m, seq, now); err != nil {
		return err
	}
	if o.halted { // special found the record misrouted
		return nil
	}
	if len(o.pend) == 0 {
		o.pendFirst = seq
	}
	o.pend = append(append(o.pend, line...), '\n')
	o.lastSeq, o.lastHash = seq, sha256.Sum256(line)
	o.remember(seq, o.lastHash)
	o.m.records.WithLabelValues(o.name).Inc()
	return nil
}

// stored handles a seq the store already holds (or this batch appends).
func (o *origin) stored(m msg, seq uint64, now time.Time) error {
	h := sha256.Sum256(m.line)
	have, known, err := o.hashOf(seq)
	if err != nil {
		return err
	}
	if !known {
		// Deleted here by retention: there is nothing to hold it to, and
		// nothing to add.
		o.m.duplicates.WithLabelValues(o.name).Inc()
		return nil
	}
	if have != h {
		return o.finding(m, now, FindingFork, fmt.Sprintf("seq %d is stored with other bytes (the stored record is kept)", seq), false)
	}
	o.m.duplicates.WithLabelValues(o.name).Inc()
	// What the record asked for after it was stored may not have happened
	// (a crash before the acknowledgement): it is redone, idempotently.
	return o.special(m, seq, now)
}

// hashOf returns the hash of the stored (or pending) record seq; known is
// false when the store no longer holds it.
func (o *origin) hashOf(seq uint64) (h [sha256.Size]byte, known bool, err error) {
	if r := &o.recent[seq%recentHashes]; r.seq == seq {
		return r.hash, true, nil
	}
	// Older than what is remembered (a long redelivery): read the store,
	// once what this batch appended is in it.
	if seq > o.st.Durable() {
		if err := o.commit(); err != nil {
			return h, false, err
		}
	}
	if o.reader == nil || o.reader.Seq() != seq {
		if o.reader != nil {
			o.reader.Close()
		}
		o.reader = store.NewReader(filepath.Join(o.dir, agent.StoreDir), seq)
	}
	line, ok, err := o.reader.Next(o.st.Durable())
	switch {
	case errors.Is(err, store.ErrGone):
		o.reader.Close()
		o.reader = nil
		return h, false, nil
	case err != nil:
		return h, false, fmt.Errorf("origin %s: read seq %d: %w", o.name, seq, err)
	case !ok:
		return h, false, fmt.Errorf("origin %s: seq %d is not durable in the store", o.name, seq)
	}
	return sha256.Sum256(line), true, nil
}

func (o *origin) remember(seq uint64, h [sha256.Size]byte) {
	r := &o.recent[seq%recentHashes]
	r.seq, r.hash = seq, h
}

// finding reports a message that does not continue the chain, puts it in
// quarantine and, with halt, stops the origin's store there.
func (o *origin) finding(m msg, now time.Time, kind, detail string, halt bool) error {
	o.m.findings.WithLabelValues(o.name, kind).Inc()
	o.log.Error("COLLECT: "+kind+" in the stream of origin "+o.name+": "+detail, "kind", kind, "stream_seq", m.streamSeq,
		"msg_id", m.msgID, "store_last_seq", o.lastSeq, "halts", halt && !o.halted)
	if halt && !o.halted {
		o.halted = true
		o.m.halted.WithLabelValues(o.name).Set(1)
		o.log.Error("COLLECT: ORIGIN HALTED: its store ends at seq " + strconv.FormatUint(o.lastSeq, 10) +
			"; this record and every later one go to " + filepath.Join(o.dir, QuarantineFile) + " until an operator has looked (see README)")
	}
	return o.quarantine(m, now, kind, detail)
}

func (o *origin) quarantine(m msg, now time.Time, kind, detail string) error {
	wrote, err := o.quar.add(m, now, kind, detail, o.halted)
	if wrote {
		o.m.quarantined.WithLabelValues(o.name).Inc()
	}
	return err
}

// commit makes this batch durable: the records, then the files that
// follow them (as the agent writes them: after the record), the
// quarantine, and the segment splits the agent's index records asked for.
func (o *origin) commit() error {
	if len(o.pend) > 0 {
		if err := o.st.Append(o.pend, o.pendFirst, o.lastSeq); err != nil {
			return fmt.Errorf("origin %s: %w", o.name, err)
		}
		o.pend = o.pend[:0]
	}
	if err := o.st.Commit(); err != nil {
		return fmt.Errorf("origin %s: %w", o.name, err)
	}
	o.m.lastSeq.WithLabelValues(o.name).Set(float64(o.st.Durable()))
	if o.genesis != nil {
		if err := writeGenesis(o.dir, o.genesis); err != nil {
			return fmt.Errorf("origin %s: %w", o.name, err)
		}
		o.genesis = nil
	}
	for _, line := range o.checkpoints {
		if err := appendFile(filepath.Join(o.dir, agent.CheckpointsFile), line); err != nil {
			return fmt.Errorf("origin %s: write checkpoint: %w", o.name, err)
		}
	}
	o.checkpoints = o.checkpoints[:0]
	if err := o.quar.sync(); err != nil {
		return fmt.Errorf("origin %s: %w", o.name, err)
	}
	for _, at := range o.splits {
		if err := o.split(at); err != nil {
			return err
		}
	}
	o.splits = o.splits[:0]
	return nil
}

// close releases the store and the directory.
func (o *origin) close() error {
	var err error
	if o.reader != nil {
		o.reader.Close()
	}
	if o.st != nil {
		err = o.st.Close()
	}
	if o.quar != nil {
		err = errors.Join(err, o.quar.close())
	}
	return errors.Join(err, o.lock.Release())
}

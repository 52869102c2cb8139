package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/agent/parse"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/agent/witness"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
)

// position is where the last ingested line ended; the agent's own records
// carry it (with length 0) so that recovery works whatever record is last.
type position struct {
	file string // JSON string token
	id   string
	end  int64
}

// appendInternal stores a record the agent writes itself and commits it
// together with everything appended before (one fsync).
func (a *Agent) appendInternal(ctx context.Context, eventType string, details []byte) error {
	first := a.chain.Seq() + 1
	return a.storeInternal(ctx, a.internalLine(eventType, details), first)
}

// storeInternal appends and commits one record the agent wrote, seq first.
func (a *Agent) storeInternal(ctx context.Context, line []byte, first uint64) error {
	if err := a.retry(ctx, "append", func() error { return a.store.Append(line, first, first) }, func() {}); err != nil {
		return err
	}
	return a.commit(ctx)
}

// internalLine signs the next record, one of the agent's own, into a.buf.
func (a *Agent) internalLine(eventType string, details []byte) []byte {
	buf := a.chain.Begin(a.buf[:0])
	buf = append(buf, `"timestamp":"`...)
	buf = a.clk.Now().UTC().AppendFormat(buf, parse.TimeLayout)
	buf = append(buf, `","event_type":"`...)
	buf = append(buf, eventType...)
	buf = append(buf, `","actor":"tailseal","lead_id":"","workflow":"","details":`...)
	buf = append(buf, details...)
	if a.lastSrc.id != "" {
		buf = record.AppendSource(buf, a.lastSrc.file, a.lastSrc.id, a.lastSrc.end, 0)
	}
	buf = a.chain.Finish(buf)
	a.buf = buf
	return buf
}

// seal ends the epochs that are over: a seal record signed with the current
// key says which epoch comes next, then the key evolves. The seal is written
// even when no event came, so an emptied epoch cannot hide a truncation.
func (a *Agent) seal(ctx context.Context) error {
	ek := a.keys.epoch
	if ek == nil {
		return nil
	}
	n := ek.Due(a.clk.Now())
	if n == 0 {
		return nil
	}
	details, _ := json.Marshal(record.SealDetails{Epoch: ek.Epoch(), NextEpoch: ek.Epoch() + n})
	if err := a.appendInternal(ctx, record.TypeSeal, details); err != nil {
		return err
	}
	// Nothing is signed under the next epoch before its state is durable:
	// on a full disk ingestion waits here, as for the store.
	if err := a.retry(ctx, "epoch key state write", func() error { return ek.Advance(n) }, func() {}); err != nil {
		return fmt.Errorf("evolve epoch key: %w", err)
	}
	a.Stats.Seals.Add(1)
	a.log.Debug("epoch sealed", "next_epoch", ek.Epoch())
	return nil
}

// unwrittenCheckpoint is the checkpoints.jsonl line of last, the store's
// last record, when it is a checkpoint the file does not hold: the agent
// stopped between the record and its line (a kill, or a SIGTERM while a
// full disk held the line back). Run writes it first.
func (a *Agent) unwrittenCheckpoint(last record.Meta) []byte {
	if last.EventType != record.TypeCheckpoint {
		return nil
	}
	var d record.CheckpointDetails
	if json.Unmarshal(last.Details, &d) != nil || d.Size == 0 {
		return nil // verify reports the record
	}
	newest, ok, err := newestCheckpointLine(filepath.Join(a.cfg.DataDir, CheckpointsFile))
	if err != nil {
		a.log.Warn("cannot tell whether the last checkpoint is in "+CheckpointsFile, "error", err)
		return nil
	}
	if ok && newest.Size >= d.Size {
		return nil
	}
	line, _ := json.Marshal(record.CheckpointLine{Size: d.Size, Time: last.Timestamp, Note: d.Note})
	a.log.Info("the last checkpoint record has no line in "+CheckpointsFile+"; writing it", "size", d.Size)
	return append(line, '\n')
}

// rotated reports whether the store started a new segment since last asked.
func (a *Agent) rotated() bool {
	seg := a.store.ActiveSegment()
	changed := a.activeSeg != "" && seg != a.activeSeg
	a.activeSeg = seg
	return changed
}

// checkpoint signs the store's current size and Merkle root (a C2SP
// tlog-checkpoint) when records came since the last one; a store without
// a tree (see store.Open) signs its chain head instead, the SHA-256 of
// its last line, as every store did before. The note goes into the store
// first (so the webhook stream carries it to witnesses), then into
// checkpoints.jsonl: every entry there has its record at seq size+1.
func (a *Agent) checkpoint(ctx context.Context) error {
	if a.chain.Seq() == a.lastCheckpoint {
		return nil
	}
	size := a.chain.Seq() // made durable with the checkpoint record below
	head := a.chain.Prev()
	n, root, tree := a.store.TreeHead()
	if tree {
		if n != size {
			return fmt.Errorf("checkpoint: the Merkle tree holds %d records and the chain %d", n, size)
		}
		head = root
	}
	signed, err := signer.SignCheckpoint(signer.Checkpoint{Origin: a.origin, Size: size, Hash: head}, a.keys.note)
	if err != nil {
		return err
	}
	details, _ := json.Marshal(record.CheckpointDetails{Size: size, Note: signed})
	if err := a.appendInternal(ctx, record.TypeCheckpoint, details); err != nil {
		return err
	}
	line, _ := json.Marshal(record.CheckpointLine{Size: size, Time: a.clk.Now().UTC().Format(time.RFC3339Nano), Note: signed})
	line = append(line, '\n')
	// Append leaves nothing of a failed write, so it can be tried again.
	if err := a.retry(ctx, CheckpointsFile+" append", func() error {
		return atomicfile.Append(filepath.Join(a.cfg.DataDir, CheckpointsFile), line, 0o644)
	}, func() {}); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	a.lastCheckpoint = a.chain.Seq()
	a.Stats.Checkpoints.Add(1)
	if a.witness != nil && tree {
		a.witness.Checkpoint(witness.Checkpoint{Size: size, Root: root, Note: signed})
	}
	a.log.Debug("checkpoint", "size", strconv.FormatUint(size, 10))
	return nil
}

// recordReq asks the ingest loop, which owns the chain, for a record of
// the agent's own on behalf of the store's background work (retention,
// compression), and waits for it to be committed.
type recordReq struct {
	eventType string
	details   []byte
	done      chan error
}

var (
	errStoreClosing = errors.New("the store is closing")
	errNotRunning   = errors.New("the ingest loop is not running yet")
)

// request has the ingest loop write and commit a record, and waits for it;
// it gives up when stop (the store's) is closed. Before the loop runs, an
// index record is kept for it to write first, and request returns at
// once: the store compresses segments left by a crash as it opens, and
// must not wait for a loop that starts after it. (Should the agent stop
// before, verify rebuilds those index lines from their segments.) Any
// other record fails with errNotRunning.
func (a *Agent) request(stop <-chan struct{}, eventType string, details any) error {
	b, err := json.Marshal(details)
	if err != nil {
		return err
	}
	req := recordReq{eventType: eventType, details: b}
	a.early.Lock()
	if !a.early.running {
		defer a.early.Unlock()
		if eventType != record.TypeIndex {
			return errNotRunning
		}
		a.early.index = append(a.early.index, req)
		return nil
	}
	a.early.Unlock()
	req.done = make(chan error, 1)
	select {
	case a.requests <- req:
	case <-stop:
		return errStoreClosing
	}
	select {
	case err := <-req.done:
		return err
	case <-stop:
		return errStoreClosing
	}
}

// startServing marks the ingest loop as serving requests and returns the
// index records asked for before, which it writes first.
func (a *Agent) startServing() []recordReq {
	a.early.Lock()
	defer a.early.Unlock()
	a.early.running = true
	index := a.early.index
	a.early.index = nil
	return index
}

// beforeRetention is the store's BeforeDelete: the retention record is
// durable before any segment goes.
func (a *Agent) beforeRetention(stop <-chan struct{}, through uint64, segments []string) error {
	d := record.RetentionDetails{DeletedThrough: through, Segments: segments,
		Reason: fmt.Sprintf("older than TAILSEAL_RETENTION_DAYS=%d and delivered to every sink", a.cfg.RetentionDays)}
	if g := a.genesis.Load(); g != nil {
		// Its copy must be right before the record itself goes.
		if err := keepGenesisCopy(a.cfg.DataDir, g); err != nil {
			return err
		}
		d.Genesis = g.Hash()
	}
	err := a.request(stop, record.TypeRetention, d)
	if err == nil {
		a.log.Info("retention record written; deleting segments", "deleted_through", through, "segments", len(segments))
	}
	return err
}

// onIndexed is the store's OnIndexed: an index record attests the line
// store/index got, so that verify holds the index to it without reading
// the segment again.
func (a *Agent) onIndexed(stop <-chan struct{}, segment string, line []byte) error {
	return a.request(stop, record.TypeIndex, record.IndexDetails{Segment: segment, SHA256: store.IndexDigest(line)})
}

// cleanStop writes the last record of a clean stop, signed with the key of
// the epoch it ends in: a store that ends with it was not cut short, and
// once that epoch's key is gone nobody can write one for an older point.
func (a *Agent) cleanStop(ctx context.Context) error {
	return a.appendInternal(ctx, record.TypeStop, []byte(`{"reason":"signal"}`))
}

package agent

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
)

// seals returns the seal records' details, in order.
func seals(t *testing.T, recs []rec) []record.SealDetails {
	t.Helper()
	var out []record.SealDetails
	for _, m := range recs {
		if m.EventType != record.TypeSeal {
			continue
		}
		d, err := record.ParseSeal(m.Line)
		if err != nil {
			t.Fatalf("seal %d: %v", m.Seq, err)
		}
		out = append(out, d)
	}
	return out
}

// Epochs that ended while the agent was down are sealed at start, with one
// seal naming the next epoch; an epoch that ends while it runs is sealed
// once, when it ends.
func TestSealAfterDowntime(t *testing.T) {
	r := newRig(t, "")
	r.start() // the first start begins epoch 0, ending at t0+1h
	r.write(2, 100)
	r.allDurable()
	r.stop()

	r.clk.Advance(3*epochLength + 30*time.Minute) // down: epochs 0, 1, 2 end
	r.start()
	r.write(1, 100)
	r.allDurable()
	recs := r.records(r.a.Store().Durable())
	got := seals(t, recs)
	if len(got) != 1 || got[0].Epoch != 0 || got[0].NextEpoch != 3 {
		t.Fatalf("seals after the downtime %+v, want one from epoch 0 to 3", got)
	}
	if last := recs[len(recs)-1]; last.EventType != "lead_ingested" || last.Epoch != 3 {
		t.Fatalf("new line stored as %s in epoch %d, want an event in epoch 3", last.EventType, last.Epoch)
	}

	r.wait(r.clk.Armed(30*time.Minute), "the epoch timer") // epoch 3 ends at t0+4h
	r.clk.Advance(30 * time.Minute)
	r.wait(r.clk.Armed(epochLength), "the next epoch's timer")
	r.write(1, 100)
	r.allDurable()
	r.stop()
	recs = r.all()
	got = seals(t, recs)
	if len(got) != 2 || got[1].Epoch != 3 || got[1].NextEpoch != 4 {
		t.Fatalf("seals %+v, want a second, single one from epoch 3 to 4", got)
	}
	if last := recs[len(recs)-3]; last.EventType != "lead_ingested" || last.Epoch != 4 { // then the shutdown checkpoint and the clean stop
		t.Errorf("line after the epoch end stored as %s in epoch %d, want an event in epoch 4", last.EventType, last.Epoch)
	}
	r.checkEvents(recs)
}

// indexRecords returns how many of the store's durable index records
// name each segment, once done says they are all there.
func (r *rig) indexRecords(done func(map[string]int) bool) map[string]int {
	r.t.Helper()
	for {
		changed := r.a.Store().Changed()
		out := map[string]int{}
		for _, m := range r.records(r.a.Store().Durable()) {
			if m.EventType == record.TypeIndex {
				d, err := record.ParseIndex(m.Line)
				if err != nil {
					r.t.Fatalf("index record %d: %v", m.Seq, err)
				}
				out[d.Segment]++
			}
		}
		if done(out) {
			return out
		}
		r.wait(changed, fmt.Sprintf("index records (have %v)", out))
	}
}

// A compression redone as the store opens, before the ingest loop runs
// (a crash left the segment uncompressed), is attested all the same: its
// index record is written once the loop runs.
func TestIndexRecordOfACompressionAtStart(t *testing.T) {
	r := newRig(t, "")
	r.cfg.SegmentMaxMB = 1
	r.start()
	r.write(3000, 500) // 1.5 MB: one rotated segment
	r.allDurable()
	seg := store.SegmentName(1, store.CompressedExt)
	r.indexRecords(func(m map[string]int) bool { return m[seg] == 1 })
	r.stop()

	// Undo the compression: the original back, the compressed copy and
	// its index line gone.
	dir := filepath.Join(r.cfg.DataDir, StoreDir)
	segs, err := store.List(dir)
	if err != nil || len(segs) < 2 || segs[0].Name != seg {
		t.Fatalf("segments %v, %v; want %s first", segs, err, seg)
	}
	var orig []byte
	if err := store.ScanSegment(dir, segs[0], func(_ store.Segment, _ int, line []byte) error {
		orig = append(append(orig, line...), '\n')
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, store.SegmentName(segs[0].First, store.ActiveExt)), orig, 0o600)
	os.Remove(filepath.Join(dir, seg))
	index, _ := os.ReadFile(filepath.Join(dir, store.IndexFile))
	var kept []string
	for _, l := range strings.SplitAfter(string(index), "\n") {
		if !strings.Contains(l, `"`+seg+`"`) {
			kept = append(kept, l)
		}
	}
	os.WriteFile(filepath.Join(dir, store.IndexFile), []byte(strings.Join(kept, "")), 0o600)

	// The store compresses it again as it opens; the agent runs after.
	a, err := New(r.cfg, r.log(), WithClock(r.clk))
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, seg)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not compressed again", seg)
		}
	}
	r.startAgent()
	r.indexRecords(func(m map[string]int) bool { return m[seg] == 2 })
	r.stop()
}

// block puts a directory holding a file where path is, so that writing
// path fails (as on a full disk, without needing one); the returned func
// takes it away again.
func block(t *testing.T, path string) func() {
	t.Helper()
	os.Remove(path)
	if err := os.MkdirAll(filepath.Join(path, "blocked"), 0o700); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.RemoveAll(path); err != nil {
			t.Fatal(err)
		}
	}
}

// checkpointLineBlocked has the agent store 10 lines and a checkpoint
// record whose checkpoints.jsonl line cannot be written, and returns once
// the write waits for its first retry, with what unblocks it.
func (r *rig) checkpointLineBlocked() (unblock func()) {
	r.t.Helper()
	r.start()
	r.write(10, 200)
	r.allDurable()
	unblock = block(r.t, filepath.Join(r.cfg.DataDir, CheckpointsFile))
	r.clk.Advance(checkpointEvery)
	r.wait(r.clk.Armed(firstBackoff), "the first retry")
	return unblock
}

// stopWhileRetrying ends Run as SIGTERM does while the write of what is
// retried: Run must fail, the store is closed.
func (r *rig) stopWhileRetrying(what string) {
	r.t.Helper()
	r.cancel()
	if err := <-r.done; err == nil {
		r.t.Fatalf("Run stopped while the %s could not be written, without an error", what)
	}
	r.done <- nil // for the cleanup
	if err := r.a.Close(); err != nil {
		r.t.Fatal(err)
	}
}

// A checkpoints.jsonl that cannot be written pauses ingestion and is
// retried, as a store write is; the agent does not stop, and the line
// lands once it can.
func TestCheckpointFileWriteRetried(t *testing.T) {
	r := newRig(t, "")
	unblock := r.checkpointLineBlocked()
	if r.a.Healthy() {
		t.Error("healthy while the checkpoint cannot be written")
	}
	unblock()
	r.clk.Advance(firstBackoff)
	r.write(5, 200)
	r.allDurable()
	if !r.a.Healthy() {
		t.Error("not healthy once the checkpoint is written")
	}
	r.stop()
	recs := r.all()
	if sizes := r.checkpointSizes(recs); len(sizes) != 2 || sizes[0] != 1+10 {
		// the genesis and 10 events, then the stop's checkpoint
		t.Errorf("checkpoints.jsonl sizes %v, want the retried one (11) and the stop's", sizes)
	}
	r.checkEvents(recs)
}

// An epoch key state that cannot be written pauses ingestion after the
// seal record, and nothing is signed under the next epoch until it is.
func TestSealStateWriteRetried(t *testing.T) {
	r := newRig(t, "")
	r.start()
	r.write(2, 100)
	r.allDurable()
	unblock := block(t, filepath.Join(r.cfg.DataDir, StateDir, SealStateFile))
	r.wait(r.clk.Armed(epochLength), "the epoch timer")
	r.clk.Advance(epochLength)
	r.wait(r.clk.Armed(firstBackoff), "the first retry")
	r.write(1, 100) // waits behind the seal
	if r.a.Healthy() {
		t.Error("healthy while the epoch key state cannot be written")
	}
	unblock()
	r.clk.Advance(firstBackoff)
	r.allDurable()
	r.stop()
	recs := r.all()
	if got := seals(t, recs); len(got) != 1 || got[0].NextEpoch != 1 {
		t.Fatalf("seals %+v, want one to epoch 1", got)
	}
	if st, err := signer.ReadSealState(filepath.Join(r.cfg.DataDir, StateDir, SealStateFile)); err != nil || st.Epoch != 1 {
		t.Fatalf("seal state %+v, %v: want epoch 1", st, err)
	}
	r.checkEvents(recs)
}

// Stopped while it waits to write the key state, the agent starts again
// all the same (the disk may still be full) and evolves the key before it
// signs anything, once it can.
func TestSealStateWriteRetriedAfterRestart(t *testing.T) {
	r := newRig(t, "")
	r.start()
	r.write(2, 100)
	r.allDurable()
	// The state can be read but not written, as on a full disk: its
	// directory is immutable.
	state := filepath.Join(r.cfg.DataDir, StateDir)
	if out, err := exec.Command("chattr", "+i", state).CombinedOutput(); err != nil {
		t.Skipf("chattr +i (needs root and a file system with the flag): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", state).Run() })
	unblock := func() {
		if out, err := exec.Command("chattr", "-i", state).CombinedOutput(); err != nil {
			t.Fatalf("chattr -i: %v %s", err, out)
		}
	}
	r.wait(r.clk.Armed(epochLength), "the epoch timer")
	r.clk.Advance(epochLength)
	r.wait(r.clk.Armed(firstBackoff), "the first retry")
	r.stopWhileRetrying("key state")

	r.start() // the seal record is the last: its epoch change is unfinished
	r.write(1, 100)
	r.wait(r.clk.Armed(firstBackoff), "the first retry after the restart")
	unblock()
	r.clk.Advance(firstBackoff)
	r.allDurable()
	r.stop()
	recs := r.all()
	if got := seals(t, recs); len(got) != 1 || got[0].NextEpoch != 1 {
		t.Fatalf("seals %+v, want one to epoch 1", got)
	}
	for _, m := range recs {
		if m.EventType == "lead_ingested" && m.Seq > 3 && m.Epoch != 1 {
			t.Errorf("seq %d signed in epoch %d after the seal, want 1", m.Seq, m.Epoch)
		}
	}
	r.checkEvents(recs)
}

// Stopped while its checkpoint line waits for the disk (the record is
// stored), the agent writes the line at its next start: checkpoints.jsonl
// names every checkpoint record, and prove can use it.
func TestCheckpointLineWrittenAfterRestart(t *testing.T) {
	r := newRig(t, "")
	unblock := r.checkpointLineBlocked()
	r.stopWhileRetrying("checkpoint line")
	unblock()

	r.start()
	r.write(5, 200)
	r.allDurable()
	r.stop()
	recs := r.all()
	if sizes := r.checkpointSizes(recs); len(sizes) != 2 || sizes[0] != 1+10 {
		t.Errorf("checkpoints.jsonl sizes %v, want the one of the stop (11) and the last", sizes)
	}
	r.checkEvents(recs)
}

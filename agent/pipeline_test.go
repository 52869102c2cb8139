package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/tailseal/tailseal/agent/lock"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// Lines that come while the agent is caught up are fsynced at once: the
// fake clock never moves, so no commit timer can do it.
func TestGroupCommitWhenCaughtUp(t *testing.T) {
	r := newRig(t, "")
	r.start()
	r.write(3, 100)
	r.durable(3)
	r.write(5, 100)
	r.durable(8)
	r.stop()
	r.checkEvents(r.all())
}

// Under continuous load a commit still starts every CommitInterval,
// armed by the first batch not yet durable (its fsync then runs beside
// the next batches: OnDurable tells when it ended). Each round starts when the
// agent is behind (the timer is armed) and advances the interval; the next
// batch arms the timer again, and a commit must have come in between (a
// commit when caught up may come too, but not in every round). A round in
// which the agent caught up before the interval passed (the timer was
// stopped, nothing fired) tells nothing and is not counted.
func TestGroupCommitUnderLoad(t *testing.T) {
	const n = 60_000 // about 70 batches of 128 KiB
	r := newRig(t, "")
	r.write(n, 150)
	finished := make(chan struct{})
	var once sync.Once
	var err error
	if r.a, err = New(r.cfg, r.log(), WithClock(r.clk)); err != nil {
		t.Fatal(err)
	}
	r.a.OnDurable = func(lines uint64) {
		if lines == n {
			once.Do(func() { close(finished) })
		}
	}
	commits := &r.a.groupCommits
	r.startAgent()
	// behind waits until the timer is armed; false once all is durable.
	behind := func() bool {
		select {
		case <-r.clk.Armed(commitEvery):
			return true
		case <-finished:
			return false
		}
	}
	rounds := 0
	for behind() {
		before := commits.Load()
		if r.clk.Advance(commitEvery) == 0 {
			continue
		}
		if !behind() { // armed again by the next batch, after the interval's commit
			break
		}
		if rounds++; commits.Load() == before {
			t.Fatalf("round %d: the commit interval passed while the agent was behind, and nothing was committed", rounds)
		}
	}
	r.stop()
	t.Logf("%d rounds, %d commits", rounds, commits.Load())
	if rounds < 3 {
		t.Fatalf("only %d rounds under load: too few to tell", rounds)
	}
	r.checkEvents(r.all())
}

// A checkpoint every CheckpointEvery records, every CheckpointInterval
// when records came (none when none did), and one at shutdown.
func TestCheckpointCadence(t *testing.T) {
	r := newRig(t, "")
	r.cfg.CheckpointEvery = 10
	r.start()
	r.durable(1)     // the genesis record
	r.write(10, 100) // seq 2-11, checkpoint 12
	r.durable(12)
	r.write(10, 100) // 13-22, checkpoint 23
	r.durable(23)
	r.write(3, 100) // 24-26: fewer than CheckpointEvery
	r.durable(26)
	r.clk.Advance(checkpointEvery) // checkpoint 27
	r.durable(27)
	r.clk.Advance(checkpointEvery) // no record came: no checkpoint
	r.wait(r.clk.Settled(), "the tick to be taken")
	r.write(1, 100) // 28, after the tick was handled
	r.durable(28)
	r.stop() // checkpoint 29, then the clean stop
	recs := r.all()
	want := slices.Concat([]string{"genesis"}, repeat("event", 10), []string{"checkpoint"}, repeat("event", 10), []string{"checkpoint"},
		repeat("event", 3), []string{"checkpoint", "event", "checkpoint", "stop"})
	if got := types(recs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records\n%v, want\n%v", got, want)
	}
	if got := r.checkpointSizes(recs); fmt.Sprint(got) != "[11 22 26 28]" {
		t.Errorf("checkpoints.jsonl sizes %v, want [11 22 26 28]", got)
	}
	r.checkEvents(recs)
}

// A checkpoint comes with each new segment, and one at shutdown.
func TestCheckpointAtRotation(t *testing.T) {
	r := newRig(t, "")
	r.cfg.SegmentMaxMB = 1
	r.start()
	r.write(1100, 1000) // more than a segment
	r.allDurable()
	r.write(1, 1000) // at least this one goes into the new segment
	r.allDurable()
	r.stop()
	segs, err := store.List(filepath.Join(r.cfg.DataDir, StoreDir))
	if err != nil || len(segs) != 2 {
		t.Fatalf("segments %v (%v), want 2", segs, err)
	}
	recs := r.all()
	var at []uint64
	for _, m := range recs {
		if m.EventType == record.TypeCheckpoint {
			at = append(at, m.Seq)
		}
	}
	last := uint64(len(recs)) - 1 // the shutdown checkpoint, then the clean stop
	if len(at) != 2 || at[0] < segs[1].First || at[1] != last {
		t.Fatalf("checkpoints at seqs %v, want one in the segment from %d and one last (%d)", at, segs[1].First, last)
	}
	if got := r.checkpointSizes(recs); len(got) != 2 || got[0] != at[0]-1 || got[1] != last-1 {
		t.Errorf("checkpoints.jsonl sizes %v", got)
	}
	r.checkEvents(recs)
}

func repeat(s string, n int) []string { return slices.Repeat([]string{s}, n) }

// A stop while the agent is far behind still stores every line the
// application wrote before it, then the checkpoint and the stop record.
// The data dir stays locked after Run, for the sinks, until Close.
func TestStopStoresTheBacklog(t *testing.T) {
	const n = 60_000 // about 35 of the tailer's batches
	r := newRig(t, "")
	r.write(n, 150)
	r.start()
	r.cancel() // as SIGTERM, at once
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil // for the cleanup
	recs := r.all()
	r.checkEvents(recs)
	if got := types(recs[len(recs)-2:]); fmt.Sprint(got) != "[checkpoint stop]" {
		t.Errorf("the store ends with %v, want [checkpoint stop]", got)
	}
	if l, err := lock.Acquire(r.cfg.DataDir); !errors.Is(err, lock.ErrHeld) {
		l.Release()
		t.Fatalf("after Run, before Close: lock.Acquire = %v, want ErrHeld", err)
	}
	if err := r.a.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := lock.Acquire(r.cfg.DataDir)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	l.Release()
}

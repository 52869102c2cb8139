package sinks_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/sinks"
)

// receiver is a Resumer whose receiving end takes a batch only right
// after what it holds, like a stream with an expected last sequence. On
// the deliveries named in loseAck it takes the batch and answers with an
// error, as a connection lost before the answer would.
type receiver struct {
	t        *testing.T
	stateDir string
	have     uint64   // the receiver's last seq
	got      []uint64 // every seq it took, in order
	loseAck  map[int]bool
	calls    int
	resumes  []uint64
	stopAt   uint64
	cancel   context.CancelFunc
}

func (r *receiver) Name() string         { return "recv" }
func (r *receiver) Accept(_ []byte) bool { return true }

func (r *receiver) Resume(_ context.Context, _ sinks.Store) (uint64, error) {
	r.resumes = append(r.resumes, r.have)
	return r.have, nil
}

func (r *receiver) Deliver(ctx context.Context, b sinks.Batch) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.calls++
	// The runner's cursor is never ahead of what the receiver holds.
	raw, err := os.ReadFile(filepath.Join(r.stateDir, "sink-recv.json"))
	if err != nil {
		r.t.Fatal(err)
	}
	var c struct {
		Delivered uint64           `json:"delivered"`
		Pending   *json.RawMessage `json:"pending"`
	}
	json.Unmarshal(raw, &c)
	if c.Delivered > r.have || c.Pending != nil {
		r.t.Errorf("cursor file %s while the receiver holds %d", raw, r.have)
	}
	if b.First != r.have+1 {
		return sinks.ErrResume
	}
	for _, l := range b.Lines {
		seq, _ := record.Seq(l)
		r.got = append(r.got, seq)
	}
	r.have = b.Last
	if r.have >= r.stopAt {
		r.cancel()
	}
	if r.loseAck[r.calls] {
		return errors.New("connection lost before the answer")
	}
	return nil
}

// A Resumer goes on after what its receiver holds, not after its cursor:
// ahead of the cursor at start, after a lost answer (the retry is refused
// with ErrResume and the runner resumes), and behind the cursor when the
// receiver lost records (they are sent again).
func TestRunnerResumesFromTheReceiver(t *testing.T) {
	st, stateDir := storeWith(t, 200)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recv := &receiver{t: t, stateDir: stateDir, have: 40, loseAck: map[int]bool{2: true}, stopAt: 120, cancel: cancel}
	r, err := sinks.NewRunner(recv, stateDir, sinks.Limits{Count: 30, Bytes: 1 << 20, Age: time.Millisecond}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx, st); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	want := []uint64{}
	for s := uint64(41); s <= 130; s++ {
		want = append(want, s)
	}
	if !equal(recv.got, want) {
		t.Errorf("the receiver took %v, want 41..130 once each", recv.got)
	}
	// Started at the receiver's 40; after the lost answer for 71-100 the
	// retry was refused and the runner resumed at 100.
	if !equal(recv.resumes, []uint64{40, 100}) || r.Stats.Resumes.Load() != 1 {
		t.Errorf("resumed at %v (%d ErrResume), want [40 100] (1)", recv.resumes, r.Stats.Resumes.Load())
	}

	// The receiver lost everything after 60: the runner sends it again,
	// although its cursor says 130.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recv.have, recv.got, recv.resumes, recv.loseAck, recv.stopAt, recv.cancel = 60, nil, nil, nil, 200, cancel
	if err := r.Run(ctx, st); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if len(recv.got) != 140 || recv.got[0] != 61 || recv.got[139] != 200 {
		t.Errorf("the receiver took %d records, %v…, want 61..200", len(recv.got), recv.got[:min(3, len(recv.got))])
	}
	if r.Keep() != 201 {
		t.Errorf("cursor %d, want 200", r.Keep()-1)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

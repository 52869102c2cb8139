package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/sinks"
)

// flaky is a sink that fails its first delivery and tells each attempt.
type flaky struct {
	calls chan sinks.Batch
	n     int
}

func (f *flaky) Name() string         { return "flaky" }
func (f *flaky) Accept(_ []byte) bool { return true }
func (f *flaky) Deliver(_ context.Context, b sinks.Batch) error {
	f.calls <- b
	if f.n++; f.n == 1 {
		return errors.New("connection refused")
	}
	return nil
}

// A batch short of the limits waits Limits.Age for more records; a
// failed delivery is retried, the same batch, after the backoff. The fake
// clock steps both.
func TestRunnerBatchAgeAndBackoff(t *testing.T) {
	const age = 3 * time.Second // the first backoff is 1 s
	st, stateDir := storeWith(t, 5)
	sink := &flaky{calls: make(chan sinks.Batch, 4)}
	r, err := sinks.NewRunner(sink, stateDir, sinks.Limits{Count: 100, Bytes: 1 << 20, Age: age}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 2, 4, 12, 0, 0, 0, time.UTC))
	r.Clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, st) }()
	defer func() { cancel(); <-done }()

	next := func(what string, armed <-chan struct{}) {
		t.Helper()
		select {
		case <-armed:
		case b := <-sink.calls:
			t.Fatalf("delivered %d-%d before %s", b.First, b.Last, what)
		case <-time.After(10 * time.Second): // a guard against a hang
			t.Fatalf("no timer for %s", what)
		}
	}
	take := func(what string) sinks.Batch {
		t.Helper()
		select {
		case b := <-sink.calls:
			return b
		case <-time.After(10 * time.Second): // a guard against a hang
			t.Fatalf("no %s", what)
			return sinks.Batch{}
		}
	}
	next("the batch age", clk.Armed(age))
	clk.Advance(age)
	if b := take("delivery at the batch age"); b.First != 1 || b.Last != 5 {
		t.Fatalf("first attempt %d-%d, want 1-5", b.First, b.Last)
	}
	next("the backoff", clk.Armed(time.Second))
	clk.Advance(time.Second)
	if b := take("retry after the backoff"); b.First != 1 || b.Last != 5 || len(b.Lines) != 5 {
		t.Fatalf("retry %d-%d (%d lines), want the same batch 1-5", b.First, b.Last, len(b.Lines))
	}
}

// kept is a sink that keeps the batches it is given; with fail set it
// refuses every one.
type kept struct {
	batches chan sinks.Batch
	fail    bool
}

func (k *kept) Name() string         { return "kept" }
func (k *kept) Accept(_ []byte) bool { return true }
func (k *kept) Deliver(_ context.Context, b sinks.Batch) error {
	k.batches <- b
	if k.fail {
		return errors.New("503 Service Unavailable")
	}
	return nil
}

// After Finish, Run sends what is stored at once, in batches of the
// limits, without waiting for a batch's age (the fake clock never moves),
// and returns nil once it delivered the last seq; a sink that fails goes
// on retrying until ctx ends, with its cursor where it was.
func TestRunnerFinish(t *testing.T) {
	for _, fail := range []bool{false, true} {
		st, stateDir := storeWith(t, 250)
		sink := &kept{batches: make(chan sinks.Batch, 10), fail: fail}
		r, err := sinks.NewRunner(sink, stateDir, sinks.Limits{Count: 100, Bytes: 1 << 20, Age: time.Hour}, 1, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		clk := clock.NewFake(time.Date(2026, 2, 4, 12, 0, 0, 0, time.UTC))
		r.Clock = clk
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, st) }()
		if b := <-sink.batches; b.First != 1 || b.Last != 100 { // full: sent without Finish
			t.Fatalf("first batch %d-%d", b.First, b.Last)
		}
		r.Finish(250)
		if fail {
			// Backing off (1 s, then 2 s) and retrying, not returning.
			for _, wait := range []time.Duration{time.Second, 2 * time.Second} {
				select {
				case err := <-done:
					t.Fatalf("a failing sink's Run returned %v after Finish; want it to retry until ctx ends", err)
				case <-clk.Armed(wait):
				case <-time.After(10 * time.Second): // a guard against a hang
					t.Fatalf("no backoff of %v", wait)
				}
				clk.Advance(wait)
				if b := <-sink.batches; b.First != 1 || b.Last != 100 {
					t.Fatalf("retried %d-%d, want 1-100", b.First, b.Last)
				}
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) || r.Stats.Cursor.Load() != 0 {
				t.Fatalf("Run: %v, cursor %d; want context.Canceled, cursor 0", err, r.Stats.Cursor.Load())
			}
			continue
		}
		var got []string
		for _, want := range []string{"101-200", "201-250"} {
			select {
			case b := <-sink.batches:
				got = append(got, fmt.Sprintf("%d-%d", b.First, b.Last))
			case <-time.After(10 * time.Second): // a guard against a hang
				t.Fatalf("batches %v, then none; want %s next", got, want)
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after delivering through the seq given to Finish")
		}
		if c := r.Stats.Cursor.Load(); c != 250 || fmt.Sprint(got) != "[101-200 201-250]" {
			t.Errorf("batches %v, cursor %d; want [101-200 201-250], 250", got, c)
		}
		cancel()
	}
}

// busy is a sink whose deliveries take 100 ms on the fake clock; while
// one is under way the application writes grow records more.
type busy struct {
	clk   *clock.Fake
	st    interface{ Append(...[]byte) }
	next  *uint64
	grow  int
	calls chan sinks.Batch
}

func (s *busy) Name() string         { return "busy" }
func (s *busy) Accept(_ []byte) bool { return true }
func (s *busy) Deliver(ctx context.Context, b sinks.Batch) error {
	for range s.grow {
		*s.next++
		s.st.Append(fmt.Appendf(nil, `{"seq":%d}`, *s.next))
	}
	s.clk.Advance(100 * time.Millisecond)
	select {
	case s.calls <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// With Limits.Share, a batch during which the store grew by as much as it
// held, with the sink more than ten batches behind, is followed by a wait
// that keeps delivering to that share of the time; when the store stops
// growing, batches follow at once, and a sink that keeps up never waits.
func TestRunnerShareYieldsToIngestion(t *testing.T) {
	start := func(t *testing.T, stored, grow int) (*busy, *clock.Fake, func() sinks.Batch) {
		st, stateDir := storeWith(t, stored)
		clk := clock.NewFake(time.Date(2026, 2, 4, 12, 0, 0, 0, time.UTC))
		next := uint64(stored)
		sink := &busy{clk: clk, st: st, next: &next, grow: grow, calls: make(chan sinks.Batch, 10)}
		r, err := sinks.NewRunner(sink, stateDir, sinks.Limits{Count: 10, Bytes: 1 << 20, Age: time.Millisecond, Share: 0.25}, 1, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		r.Clock = clk
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, st) }()
		t.Cleanup(func() { cancel(); <-done })
		return sink, clk, func() sinks.Batch {
			t.Helper()
			select {
			case b := <-sink.calls:
				return b
			case <-time.After(10 * time.Second): // a guard against a hang
				t.Fatal("no delivery")
				return sinks.Batch{}
			}
		}
	}
	t.Run("behind", func(t *testing.T) {
		sink, clk, take := start(t, 200, 10)
		if b := take(); b.First != 1 {
			t.Fatalf("first batch from %d", b.First)
		}
		// 100 ms of delivery at a share of 1/4: 300 ms of waiting.
		select {
		case <-clk.Armed(300 * time.Millisecond):
		case b := <-sink.calls:
			t.Fatalf("delivered %d-%d without yielding to the growing store", b.First, b.Last)
		case <-time.After(10 * time.Second):
			t.Fatal("no wait of 300 ms armed")
		}
		sink.grow = 0 // the application stops writing
		clk.Advance(300 * time.Millisecond)
		if b := take(); b.First != 11 {
			t.Fatalf("second batch from %d, want 11", b.First)
		}
		if b := take(); b.First != 21 { // no growth during the second batch: no wait before the third
			t.Fatalf("third batch from %d, want 21", b.First)
		}
	})
	t.Run("keeping up", func(t *testing.T) {
		_, _, take := start(t, 30, 10)
		for _, want := range []uint64{1, 11, 21, 31} {
			if b := take(); b.First != want {
				t.Fatalf("batch from %d, want %d without a wait", b.First, want)
			}
		}
	})
}

package sinks_test

import (
	"context"
	"errors"
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

// Package sinks delivers what the agent stored to the outside, at least
// once. The store is the queue: each sink reads stored records through
// its own durable cursor (state/sink-<name>.json), so a crash or a
// restart neither loses nor reorders anything; retention keeps every
// segment a sink still needs. Sinks live below: webhook (records), alert
// (rules over records, notifying slack, discord, email and alertmanager).
//
// Sinks consume what the agent produces, through the Store interface
// defined here: sinks/... imports signer/record for the record contract,
// the leaf utilities agent/atomicfile and agent/clock, and no other
// agent/... package and no cmd/...
// (cmd/tailseal adapts the store and assembles the sinks; its
// imports_test.go keeps the rule true).
package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/agent/clock"
)

// Batch is a run of stored records, seqs First..Last, as stored.
type Batch struct {
	First, Last uint64
	Lines       [][]byte // without newlines; records a sink filters out are not here
}

// Sink consumes batches in order.
type Sink interface {
	// Name names the sink in state files, logs and metrics.
	Name() string
	// Accept reports whether a record goes into batches (a filter);
	// records not accepted are passed over as delivered.
	Accept(line []byte) bool
	// Deliver returns nil once the batch is delivered or dead-lettered. It
	// is not called for a batch that Accept emptied.
	// ErrStopped stops the sink; other errors are retried with backoff.
	Deliver(ctx context.Context, b Batch) error
}

// ErrStopped means the endpoint refused for good (401, 403, 404, 410):
// the sink stops, loudly, and its cursor stays where it is, so nothing is
// lost when it is fixed and the agent restarted.
var ErrStopped = errors.New("endpoint refused for good")

// Resumer is a Sink whose receiving end knows what it holds and is the
// truth about it (a JetStream stream keeps each origin's last record).
// The runner calls Resume before the first batch and again whenever
// Deliver returns ErrResume, and goes on right after the seq Resume
// returns, whatever its cursor said: ahead of the cursor (delivered but
// not yet saved when the agent was killed) or behind it (the receiver
// lost records, which are sent again). So the cursor is never ahead of
// what the receiver acknowledged, and no batch is resent from it: a
// Resumer's cursor keeps no pending batch. Errors from Resume are retried
// with the runner's backoff; one wrapping ErrStopped stops the sink.
type Resumer interface {
	Sink
	Resume(ctx context.Context, src Store) (last uint64, err error)
}

// ErrResume, from a Resumer's Deliver, means the receiver holds something
// other than what the sink expected (another publisher, or an earlier
// delivery whose answer was lost): nothing of the batch was taken, and
// the runner asks Resume where the receiver stands.
var ErrResume = errors.New("the receiver holds other records than expected")

// Source tells a sink how far it may read.
type Source interface {
	Durable() uint64          // the last durable seq
	Changed() <-chan struct{} // closed at the next commit
}

// Store is the canonical store as sinks read it.
type Store interface {
	Source
	// Open returns a reader whose first record is seq from. It reads
	// nothing yet, so it cannot fail: errors come from Next.
	Open(from uint64) RecordReader
	// Oldest is the first seq of the oldest segment still stored, 0 when
	// the store holds none.
	Oldest() (uint64, error)
}

// RecordReader reads stored records in seq order, while the agent
// appends, rotates and compresses. Not safe for concurrent use.
type RecordReader interface {
	// Next returns the next record (without its newline, valid until the
	// next call) if its seq is at most durable; ok is false when there is
	// none yet. An error wrapping ErrGone means the record was deleted.
	Next(durable uint64) (line []byte, ok bool, err error)
	// Seq is the seq of the record Next returns.
	Seq() uint64
	Close() error
}

// ErrGone means the record a sink wanted is no longer in the store.
var ErrGone = errors.New("record no longer in the store")

// Limits bound a batch.
type Limits struct {
	Count int
	Bytes int
	Age   time.Duration // how long a batch waits for more records
	// Share, between 0 and 1, gives ingestion the right of way: while the
	// sink is more than ten full batches behind and the store grows at
	// least as fast as it delivers (the application writes faster than
	// the sink can follow), the runner waits after each batch so that
	// delivering takes at most this share of the time, leaving the rest of
	// the CPU and the disk to storing. A sink that keeps up never waits;
	// one behind catches up at full speed once the burst is over (the
	// store is the queue). 0 (or 1) never waits.
	Share float64
}

// Stats of one sink, read by the metrics collector.
type Stats struct {
	Delivered   atomic.Uint64 // records
	Batches     atomic.Uint64
	DeadLetters atomic.Uint64
	Cursor      atomic.Uint64 // last delivered seq
	Stopped     atomic.Bool
	Resumes     atomic.Uint64 // a Resumer's ErrResume answers
}

// cursorFile is a sink's durable state. Pending is the batch being
// delivered: after a crash it is sent again exactly, so receivers see the
// same batch (and the same webhook-id).
type cursorFile struct {
	Delivered uint64 `json:"delivered"`
	Pending   *struct {
		First uint64 `json:"first"`
		Last  uint64 `json:"last"`
	} `json:"pending,omitempty"`
}

// Runner feeds one sink from the store.
type Runner struct {
	sink   Sink
	path   string
	limits Limits
	log    *slog.Logger
	Stats  Stats
	// Clock, if set before Run, times batches, delivery backoff and the
	// lag warning; nil is clock.Real.
	Clock clock.Clock

	finish     chan struct{} // closed by Finish
	finishOnce sync.Once
	until      uint64 // set by Finish before finish is closed
}

// FromEnd, as NewRunner's start, makes a new sink begin after the last
// record stored when it first runs.
const FromEnd = 0

// NewRunner loads the sink's cursor from stateDir. A sink seen for the
// first time starts at start (the first seq it should deliver), or at
// FromEnd. It is made before the store opens, so that retention, which
// starts with it, already keeps what the sink needs.
func NewRunner(sink Sink, stateDir string, limits Limits, start uint64, log *slog.Logger) (*Runner, error) {
	r := &Runner{sink: sink, limits: limits, finish: make(chan struct{}),
		path: filepath.Join(stateDir, "sink-"+sink.Name()+".json"), log: log.With("sink", sink.Name())}
	c, err := r.load()
	switch {
	case errors.Is(err, os.ErrNotExist) && start == FromEnd:
		r.Stats.Cursor.Store(math.MaxUint64 - 1) // needs nothing yet
		return r, nil
	case errors.Is(err, os.ErrNotExist):
		c = cursorFile{Delivered: start - 1}
		err = r.save(c)
	}
	if err != nil {
		return nil, err
	}
	r.Stats.Cursor.Store(c.Delivered)
	return r, nil
}

func (r *Runner) load() (cursorFile, error) {
	var c cursorFile
	b, err := os.ReadFile(r.path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", r.path, err)
	}
	return c, nil
}

func (r *Runner) save(c cursorFile) error {
	b, _ := json.Marshal(c)
	return atomicfile.WriteFile(r.path, append(b, '\n'), 0o600)
}

// Name is the sink's name.
func (r *Runner) Name() string { return r.sink.Name() }

// Keep is the lowest seq this sink still needs.
func (r *Runner) Keep() uint64 { return r.Stats.Cursor.Load() + 1 }

// Finish tells Run that the store ends at seq until (the agent stopped):
// Run sends what it has gathered at once, without waiting Limits.Age for
// more, and returns nil once it has delivered through until. It still
// retries a failing delivery until ctx ends: the caller bounds the wait
// with ctx. Only the first call counts.
func (r *Runner) Finish(until uint64) {
	r.finishOnce.Do(func() {
		r.until = until
		close(r.finish)
	})
}

// finished reports whether Finish was called and delivered reaches its
// seq.
func (r *Runner) finished(delivered uint64) bool {
	select {
	case <-r.finish:
		return delivered >= r.until
	default:
		return false
	}
}

// errCaughtUp ends gather when the store holds nothing more to deliver
// after Finish.
var errCaughtUp = errors.New("caught up with the end of the store")

// Run delivers from src until ctx ends, the sink stops, or it caught up
// with Finish.
func (r *Runner) Run(ctx context.Context, src Store) error {
	c, err := r.load()
	if errors.Is(err, os.ErrNotExist) { // a new sink that starts at the end
		c = cursorFile{Delivered: src.Durable()}
		err = r.save(c)
		r.Stats.Cursor.Store(c.Delivered)
	}
	if err != nil {
		return err
	}
	res, resumable := r.sink.(Resumer)
	if resumable {
		if c, err = r.resume(ctx, src, res, c); err != nil {
			return err
		}
	}
	rd := src.Open(c.Delivered + 1)
	defer func() { rd.Close() }() // rd may be replaced below
	var pending uint64            // last seq of a batch to resend exactly
	if c.Pending != nil && !resumable {
		pending = c.Pending.Last
	}
	clk := clock.Or(r.Clock)
	lagWarned := time.Time{}
	conflicts := 0 // ErrResume answers since the last delivered batch
	saved := clk.Now()
	if resumable { // what the receiver acknowledged last goes into the file when Run ends
		defer func() { r.save(cursorFile{Delivered: r.Stats.Cursor.Load()}) }()
	}
	for {
		if r.finished(c.Delivered) {
			return nil
		}
		b, err := r.gather(ctx, src, rd, pending)
		if errors.Is(err, errCaughtUp) {
			return nil
		}
		if errors.Is(err, ErrGone) {
			// Deleted by hand (retention keeps what a sink needs): say so
			// loudly and go on from what is left, rather than stop.
			oldest, lerr := src.Oldest()
			if lerr != nil || oldest == 0 {
				return err
			}
			r.log.Error("SINK SKIPS RECORDS: they were deleted from the store before it delivered them",
				"from_seq", rd.Seq(), "to_seq", oldest-1)
			rd.Close()
			rd = src.Open(oldest)
			c, pending = cursorFile{Delivered: oldest - 1}, 0
			continue
		}
		if err != nil {
			return err
		}
		pending = 0
		if len(b.Lines) > 0 && !resumable { // a batch the filter emptied is not sent
			c.Pending = &struct {
				First uint64 `json:"first"`
				Last  uint64 `json:"last"`
			}{b.First, b.Last}
			if err := r.save(c); err != nil {
				return err
			}
		}
		began, durable := clk.Now(), src.Durable()
		if len(b.Lines) > 0 {
			err := r.deliver(ctx, b)
			if resumable && errors.Is(err, ErrResume) {
				r.Stats.Resumes.Add(1)
				if conflicts++; conflicts > 1 { // the receiver keeps moving: do not spin
					if err := clock.Wait(ctx, clk, min(time.Second<<(conflicts-2), time.Minute)); err != nil {
						return err
					}
				}
				if c, err = r.resume(ctx, src, res, c); err != nil {
					return err
				}
				rd.Close()
				rd = src.Open(c.Delivered + 1)
				continue
			}
			if err != nil {
				return err
			}
			conflicts = 0
		}
		c = cursorFile{Delivered: b.Last}
		// A Resumer's receiver says where it stands, so its cursor file
		// only has to keep retention from deleting what the receiver may
		// lack after a restart: being behind is harmless, and saving it
		// less often spares two fsyncs per batch on the store's disk.
		if !resumable || clock.Since(clk, saved) >= resumerSaveEvery {
			if err := r.save(c); err != nil {
				return err
			}
			saved = clk.Now()
		}
		r.Stats.Cursor.Store(b.Last)
		r.Stats.Delivered.Add(uint64(len(b.Lines)))
		r.Stats.Batches.Add(1)
		if lag := src.Durable() - b.Last; lag > lagWarnRecords && clock.Since(clk, lagWarned) > 10*time.Minute {
			lagWarned = clk.Now()
			r.log.Warn("sink is falling behind; retention keeps what it has not delivered", "behind_records", lag)
		}
		if err := r.yield(ctx, clk, began, src.Durable()-durable, src.Durable()-b.Last, len(b.Lines)); err != nil {
			return err
		}
	}
}

// resumerSaveEvery is how often a Resumer's cursor file is written while
// it delivers.
const resumerSaveEvery = time.Second

// lagWarnRecords is how far behind the store a sink may be before it is
// reported in the log (the metric always shows it).
const lagWarnRecords = 1_000_000

// yield waits, per Limits.Share, after a batch of n records that took
// since began while the store grew by grew records, and left the sink
// behind records behind.
func (r *Runner) yield(ctx context.Context, clk clock.Clock, began time.Time, grew, behind uint64, n int) error {
	share := r.limits.Share
	if share <= 0 || share >= 1 || n == 0 || grew < uint64(n) || behind <= 10*uint64(r.limits.Count) {
		return nil
	}
	took := clock.Since(clk, began)
	return clock.Wait(ctx, clk, time.Duration(float64(took)*(1-share)/share))
}

// resume asks a Resumer where its receiver stands, retrying until it
// answers, stops or ctx ends, and makes that the cursor, durably, before
// anything else is delivered.
func (r *Runner) resume(ctx context.Context, src Store, res Resumer, c cursorFile) (cursorFile, error) {
	var last uint64
	err := r.retry(ctx, "resume", 0, func() (err error) {
		last, err = res.Resume(ctx, src)
		return err
	})
	if err != nil {
		return c, err
	}
	if last != c.Delivered || c.Pending != nil {
		r.log.Info("sink resumes after what its receiver holds", "cursor", c.Delivered, "receiver_last_seq", last)
		c = cursorFile{Delivered: last}
		if err := r.save(c); err != nil {
			return c, err
		}
	}
	r.Stats.Cursor.Store(last)
	return c, nil
}

// deliver retries a batch until it is delivered, the sink stops, the
// receiver moved (ErrResume), or ctx ends.
func (r *Runner) deliver(ctx context.Context, b Batch) error {
	return r.retry(ctx, "delivery", b.First, func() error { return r.sink.Deliver(ctx, b) })
}

// retry calls fn until it succeeds, returns ErrStopped or ErrResume, or
// ctx ends, with backoff between attempts. from is the first seq that is
// not delivered, for the log.
func (r *Runner) retry(ctx context.Context, what string, from uint64, fn func() error) error {
	wait := time.Second
	for {
		err := fn()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrResume):
			return err
		case errors.Is(err, ErrStopped):
			r.Stats.Stopped.Store(true)
			r.log.Error("SINK STOPPED: the endpoint refuses for good; nothing after this is delivered until it is fixed and the agent restarted (records are kept)",
				"error", err, "undelivered_from", max(from, r.Stats.Cursor.Load()+1))
			return err
		}
		r.log.Warn(what+" failed; will retry", "error", err, "retry_in", wait)
		if err := clock.Wait(ctx, clock.Or(r.Clock), wait); err != nil {
			return err
		}
		wait = min(2*wait, time.Minute)
	}
}

// gather reads the next batch: up to the limits, or what came within
// Limits.Age of the first record, or, after Finish, what there is. With
// exact > 0 it reads exactly up to that seq (a batch cut before a crash).
func (r *Runner) gather(ctx context.Context, src Source, rd RecordReader, exact uint64) (Batch, error) {
	b := Batch{First: rd.Seq()}
	size := 0
	var deadline <-chan time.Time
	finish := r.finish
	for {
		changed := src.Changed()
		for exact == 0 && len(b.Lines) < r.limits.Count && size < r.limits.Bytes || exact != 0 && rd.Seq() <= exact {
			line, ok, err := rd.Next(src.Durable())
			if err != nil {
				return b, err
			}
			if !ok {
				break
			}
			b.Last = rd.Seq() - 1
			if r.sink.Accept(line) {
				b.Lines = append(b.Lines, append([]byte(nil), line...))
				size += len(line)
			}
			if deadline == nil {
				t := clock.Or(r.Clock).NewTimer(r.limits.Age)
				defer t.Stop()
				deadline = t.C()
			}
		}
		full := exact != 0 && rd.Seq() > exact || exact == 0 && (len(b.Lines) >= r.limits.Count || size >= r.limits.Bytes)
		if full {
			return b, nil
		}
		select {
		case <-ctx.Done():
			return b, ctx.Err()
		case <-changed:
			finish = r.finish
		case <-deadline:
			if b.Last >= b.First {
				return b, nil
			}
		case <-finish:
			switch {
			case exact == 0 && b.Last >= b.First:
				return b, nil
			case exact == 0 && rd.Seq() > r.until:
				return b, errCaughtUp
			}
			finish = nil // the store has not got there yet: wait for it, not in a spin
		}
	}
}

// DeadLetter is DeadLetterAt the system clock's now.
func DeadLetter(stateDir, sink, reason string, b Batch) error {
	return DeadLetterAt(time.Now(), stateDir, sink, reason, b)
}

// DeadLetterAt appends a batch that cannot be delivered, with the reason
// and the time at, to state/deadletter-<sink>.jsonl, so an operator can
// look and replay.
func DeadLetterAt(at time.Time, stateDir, sink, reason string, b Batch) error {
	recs := make([]string, len(b.Lines))
	for i, l := range b.Lines {
		recs[i] = string(l)
	}
	line, _ := json.Marshal(struct {
		Time    time.Time `json:"time"`
		Sink    string    `json:"sink"`
		Reason  string    `json:"reason"`
		First   uint64    `json:"first_seq"`
		Last    uint64    `json:"last_seq"`
		Records []string  `json:"records"`
	}{at.UTC(), sink, reason, b.First, b.Last, recs})
	return atomicfile.Append(filepath.Join(stateDir, "deadletter-"+sink+".jsonl"), append(line, '\n'), 0o600)
}

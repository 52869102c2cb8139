package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
	"golang.org/x/mod/sumdb/tlog"
)

// The rig's timers have distinct durations, so that clock.Fake.Armed tells
// them apart.
const (
	commitEvery     = 50 * time.Millisecond
	checkpointEvery = 10 * time.Minute
	epochLength     = time.Hour
	firstBackoff    = 100 * time.Millisecond // retry's first wait
)

var t0 = time.Date(2026, 2, 4, 12, 0, 0, 0, time.UTC)

// rig runs the whole pipeline in-process on real files, with a fake clock:
// nothing in it moves in time unless the test advances the clock. Not
// testing/synctest: the tailer's fsnotify goroutine sits in an inotify
// read (a syscall), which never counts as durably blocked, so a bubble's
// time would not advance and synctest.Wait would not return.
type rig struct {
	t      *testing.T
	cfg    *config.Config
	clk    *clock.Fake
	a      *Agent
	lines  int // source lines written
	cancel context.CancelFunc
	done   chan error
}

func newRig(t *testing.T, dataDir string) *rig {
	dir := t.TempDir()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	cfg := &config.Config{Source: filepath.Join(dir, "audit.log"), DataDir: dataDir, SegmentMaxMB: 50,
		SegmentMaxAge: 24 * time.Hour, CommitInterval: commitEvery, MaxLineBytes: 1 << 20, PollInterval: time.Second,
		Epoch: epochLength, CheckpointEvery: 1 << 30, CheckpointInterval: checkpointEvery, Origin: "test", PIIMode: "off"}
	if err := os.WriteFile(cfg.Source, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, cfg: cfg, clk: clock.NewFake(t0)}
}

// start makes a new agent (recovering the store) and runs it until stop.
func (r *rig) start() {
	r.t.Helper()
	a, err := New(r.cfg, r.log(), WithClock(r.clk))
	if err != nil {
		r.t.Fatal(err)
	}
	r.a = a
	r.startAgent()
}

func (r *rig) log() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startAgent runs r.a until stop.
func (r *rig) startAgent() {
	ctx, cancel := context.WithCancel(context.Background())
	done, a := make(chan error, 1), r.a
	r.cancel, r.done = cancel, done
	go func() { done <- a.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done; a.Close() })
	r.wait(r.a.Ready(), "the agent to be ready")
}

// stop ends Run as SIGTERM does.
func (r *rig) stop() {
	r.t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Fatalf("Run: %v", err)
	}
	r.done <- nil // for the cleanup
	if err := r.a.Close(); err != nil {
		r.t.Fatalf("Close: %v", err)
	}
}

// write appends n lines of about size bytes each to the source.
func (r *rig) write(n, size int) {
	r.t.Helper()
	var b strings.Builder
	for range n {
		r.lines++
		l := fmt.Sprintf(`{"timestamp":"2026-02-04T12:00:00Z","event_type":"lead_ingested","actor":"system","lead_id":"LEAD-%d","workflow":"w","details":{"pad":"`, r.lines)
		b.WriteString(l + strings.Repeat("x", max(size-len(l)-4, 0)) + "\"}}\n")
	}
	f, err := os.OpenFile(r.cfg.Source, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		r.t.Fatal(err)
	}
}

// durable waits until seq is durable.
func (r *rig) durable(seq uint64) {
	r.t.Helper()
	for {
		changed := r.a.Store().Changed()
		if r.a.Store().Durable() >= seq {
			return
		}
		r.wait(changed, fmt.Sprintf("seq %d to be durable (at %d)", seq, r.a.Store().Durable()))
	}
}

// allDurable waits until every line written is in a durable record.
func (r *rig) allDurable() {
	r.t.Helper()
	for {
		changed := r.a.Store().Changed()
		n := 0
		for _, m := range r.records(r.a.Store().Durable()) {
			if m.EventType == "lead_ingested" {
				n++
			}
		}
		if n == r.lines {
			return
		}
		r.wait(changed, fmt.Sprintf("%d lines to be durable (%d are)", r.lines, n))
	}
}

// wait waits for ch; the timeout only turns a hang into a failure.
func (r *rig) wait(ch <-chan struct{}, what string) {
	r.t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("timed out waiting for %s", what)
	}
}

// rec is a stored record, parsed.
type rec struct {
	record.Meta
	Line []byte
}

// records reads the store's records up to seq durable.
func (r *rig) records(durable uint64) []rec {
	r.t.Helper()
	rd := store.NewReader(filepath.Join(r.cfg.DataDir, StoreDir), 1)
	defer rd.Close()
	var out []rec
	for {
		line, ok, err := rd.Next(durable)
		if err != nil {
			r.t.Fatal(err)
		}
		if !ok {
			return out
		}
		m, err := record.ParseMeta(line)
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, rec{m, append([]byte(nil), line...)})
	}
}

// all reads every record in the store, once the agent stopped.
func (r *rig) all() []rec { return r.records(math.MaxUint64) }

// types lists the records' event types, "event" for the source's lines.
func types(recs []rec) []string {
	out := make([]string, len(recs))
	for i, m := range recs {
		out[i] = m.EventType
		if m.EventType == "lead_ingested" {
			out[i] = "event"
		}
	}
	return out
}

// checkpointSizes reads checkpoints.jsonl, and checks that each entry's
// record is the store's record size+1.
func (r *rig) checkpointSizes(recs []rec) []uint64 {
	r.t.Helper()
	f, err := os.Open(filepath.Join(r.cfg.DataDir, CheckpointsFile))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var sizes []uint64
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var c record.CheckpointLine
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			r.t.Fatal(err)
		}
		sizes = append(sizes, c.Size)
		r.isTreeHead(recs, c.Note)
		var d record.CheckpointDetails
		if c.Size >= uint64(len(recs)) || recs[c.Size].EventType != record.TypeCheckpoint ||
			json.Unmarshal(recs[c.Size].Details, &d) != nil || d.Size != c.Size || d.Note != c.Note {
			r.t.Errorf("checkpoint of size %d is not the store's record %d", c.Size, c.Size+1)
		}
	}
	return sizes
}

// isTreeHead checks that a checkpoint note signs the RFC 6962 root of
// the records before it, computed here with tlog from the stored lines.
func (r *rig) isTreeHead(recs []rec, signed string) {
	r.t.Helper()
	c, err := signer.ParseCheckpoint(signed[:strings.Index(signed, "\n\n")+1])
	if err != nil || c.Size > uint64(len(recs)) {
		r.t.Fatalf("checkpoint %q: %v", signed, err)
	}
	var stored []tlog.Hash
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := range c.Size {
		hs, _ := tlog.StoredHashes(int64(i), recs[i].Line, hr)
		stored = append(stored, hs...)
	}
	if root, _ := tlog.TreeHash(int64(c.Size), hr); root != c.Hash {
		r.t.Errorf("checkpoint of size %d: %s is not the Merkle root of records 1..%d", c.Size, tlog.Hash(c.Hash), c.Size)
	}
}

// checkEvents checks that the store holds each source line once, in order.
func (r *rig) checkEvents(recs []rec) {
	r.t.Helper()
	var end int64
	n := 0
	for _, m := range recs {
		if m.EventType != "lead_ingested" {
			continue
		}
		if n++; m.Source == nil || m.Source.Offset != end {
			r.t.Fatalf("record %d starts at %+v, want offset %d: a line lost or repeated", m.Seq, m.Source, end)
		}
		end = m.Source.End()
	}
	if n != r.lines {
		r.t.Fatalf("%d lines stored, %d written", n, r.lines)
	}
}

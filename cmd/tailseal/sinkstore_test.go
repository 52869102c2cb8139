package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/sinks"
)

// The sinks' view of the real store reads across rotated and compressed
// segments, and says sinks.ErrGone for records deleted by hand.
func TestSinkStore(t *testing.T) {
	dir := t.TempDir()
	st, _, err := store.Open(store.Options{Dir: dir, SegmentMax: 4 << 10, SegmentMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := uint64(1); i <= n; i++ {
		line := fmt.Sprintf(`{"seq":%d,"timestamp":"2026-02-04T20:30:45Z","event_type":"error","actor":"","lead_id":"","workflow":"","details":{},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`+"\n", i)
		if err := st.Append([]byte(line), i, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil { // commits; compression stops
		t.Fatal(err)
	}
	s := sinkStore{Store: st, dir: dir}
	if got := readAll(t, s, 1); got != n {
		t.Fatalf("read %d records, want %d", got, n)
	}
	segs, _ := store.List(dir)
	if len(segs) < 3 {
		t.Fatalf("segments %v: the test wants rotations", segs)
	}
	if err := os.Remove(filepath.Join(dir, segs[0].Name)); err != nil {
		t.Fatal(err)
	}
	rd := s.Open(1)
	defer rd.Close()
	if _, _, err := rd.Next(s.Durable()); !errors.Is(err, sinks.ErrGone) {
		t.Errorf("Next after the segment was deleted: %v, want sinks.ErrGone", err)
	}
	if oldest, err := s.Oldest(); err != nil || oldest != segs[1].First {
		t.Errorf("Oldest = %d, %v; want %d", oldest, err, segs[1].First)
	}
}

// readAll reads from seq from to the durable end, checking the seqs, and
// returns how many records it read.
func readAll(t *testing.T, s sinks.Store, from uint64) int {
	t.Helper()
	rd := s.Open(from)
	defer rd.Close()
	count := 0
	for {
		seq := rd.Seq()
		line, ok, err := rd.Next(s.Durable())
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return count
		}
		if h, ok := record.ParseHead(line); !ok || h.Seq != seq {
			t.Fatalf("record %d: %q", seq, line)
		}
		count++
	}
}

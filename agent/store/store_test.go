package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer/record"
)

// rec makes a record-shaped line; the store only needs seq, timestamp,
// event_type and the signature being last.
func rec(seq uint64) string {
	return fmt.Sprintf(`{"seq":%d,"timestamp":"2026-01-01T00:00:%02dZ","event_type":"t%d","details":{},"epoch":0,"prev":"","signature":"00"}`, seq, seq%60, seq%3)
}

func appendN(t *testing.T, s *Store, from, to uint64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		if err := s.Append([]byte(rec(seq)+"\n"), seq, seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, opt Options) (*Store, *Last) {
	t.Helper()
	if opt.SegmentMax == 0 {
		opt.SegmentMax = 1 << 20
	}
	if opt.SegmentMaxAge == 0 {
		opt.SegmentMaxAge = time.Hour
	}
	s, last, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	return s, last
}

func seqs(t *testing.T, dir string) []uint64 {
	t.Helper()
	var out []uint64
	err := Scan(dir, func(_ Segment, _ int, line []byte) error {
		seq, ok := record.Seq(line)
		if !ok {
			return fmt.Errorf("bad line %q", line)
		}
		out = append(out, seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTornTailIsCut(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir})
	appendN(t, s, 1, 5)
	s.Close()
	active := filepath.Join(dir, SegmentName(1, ActiveExt))
	f, _ := os.OpenFile(active, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":6,"timestamp":"2026-01-01T00:0`) // a crash mid-write
	f.Close()

	s, last := open(t, Options{Dir: dir})
	defer s.Close()
	if last == nil || string(last.Line) != rec(5) {
		t.Fatalf("last line %q, want seq 5", last)
	}
	appendN(t, s, 6, 7)
	if got := seqs(t, dir); len(got) != 7 || got[6] != 7 {
		t.Fatalf("seqs after repair: %v", got)
	}
}

func TestRotationCompressionAndIndex(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 1000})
	appendN(t, s, 1, 40)
	s.Close() // waits for background compression to stop

	s, last := open(t, Options{Dir: dir, SegmentMax: 1000})
	waitCompressed(t, dir)
	s.Close()
	if m, _ := record.ParseMeta(last.Line); m.Seq != 40 {
		t.Fatalf("last seq %d, want 40", m.Seq)
	}
	got := seqs(t, dir)
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("seqs %v", got)
		}
	}
	segs, _ := List(dir)
	index, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, seg := range segs[:len(segs)-1] {
		e, ok := index[seg.Name]
		if !seg.Compressed || !ok || e.FirstSeq != seg.First || e.Count != int(e.LastSeq-e.FirstSeq+1) {
			t.Errorf("segment %s: compressed %v index %+v", seg.Name, seg.Compressed, e)
		}
	}
}

// originalBack makes a store of 30 records whose rotated segments are
// compressed, then puts the first one's original back next to its
// compressed copy, as a crash in the middle of its compression leaves it.
func originalBack(t *testing.T) (string, []Segment) {
	t.Helper()
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 1000})
	appendN(t, s, 1, 30)
	s.Close()
	s, _ = open(t, Options{Dir: dir, SegmentMax: 1000})
	waitCompressed(t, dir)
	s.Close()
	segs, _ := List(dir)
	var orig []byte
	ScanSegment(dir, segs[0], func(_ Segment, _ int, line []byte) error {
		orig = append(append(orig, line...), '\n')
		return nil
	})
	os.WriteFile(filepath.Join(dir, SegmentName(segs[0].First, ActiveExt)), orig, 0o600)
	return dir, segs
}

// A crash after the compressed copy was renamed into place but before the
// original was removed leaves both: the original goes, nothing is doubled.
func TestCrashDuringCompression(t *testing.T) {
	dir, segs := originalBack(t)
	os.WriteFile(filepath.Join(dir, SegmentName(segs[1].First, CompressedExt)+".tmp"), []byte("torn"), 0o600)

	s, _ := open(t, Options{Dir: dir, SegmentMax: 1000})
	s.Close()
	if got := seqs(t, dir); len(got) != 30 {
		t.Fatalf("got %d records after cleanup, want 30", len(got))
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmps) > 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}

func TestRetentionKeepsWhatReadersNeed(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	clock := func() time.Time { return now }
	keep := uint64(1)
	opt := Options{Dir: dir, SegmentMax: 1000, Retention: time.Hour, Now: clock, Keep: func() uint64 { return keep }}
	s, _ := open(t, opt)
	appendN(t, s, 1, 40)
	s.Close()
	s, _ = open(t, opt)
	waitCompressed(t, dir)
	s.Close()
	before, _ := List(dir)
	if filters, _ := filepath.Glob(filepath.Join(dir, FilterDir, "*.bloom")); len(filters) != len(before)-1 {
		t.Fatalf("%d filter files for %d compressed segments", len(filters), len(before)-1)
	}

	now = now.Add(2 * time.Hour) // every rotated segment is now old
	s, _ = open(t, opt)          // retention runs at start
	s.Close()
	if after, _ := List(dir); len(after) != len(before) {
		t.Fatalf("retention deleted segments a reader still needs: %d -> %d", len(before), len(after))
	}
	keep = 41 // the reader has everything
	s, _ = open(t, opt)
	s.Close()
	after, _ := List(dir)
	if len(after) != 1 || after[0].Compressed {
		t.Fatalf("after retention: %v, want only the active segment", after)
	}
	if filters, _ := filepath.Glob(filepath.Join(dir, FilterDir, "*")); len(filters) > 0 {
		t.Errorf("retention left the filters of deleted segments: %v", filters)
	}
}

// waitCompressed waits until only the active segment is uncompressed.
func waitCompressed(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		segs, _ := List(dir)
		plain := 0
		for _, s := range segs {
			if !s.Compressed {
				plain++
			}
		}
		if plain <= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segments not compressed: %v", segs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A reader sees the active segment up to its last complete line: the
// agent may be in the middle of writing the next one.
func TestScanSkipsAPartialLastLine(t *testing.T) {
	dir := t.TempDir()
	name := SegmentName(1, ActiveExt)
	if err := os.WriteFile(filepath.Join(dir, name), []byte("{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3,\"tim"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := Scan(dir, func(_ Segment, _ int, line []byte) error {
		got = append(got, string(line))
		return nil
	})
	if err != nil || len(got) != 2 || got[1] != `{"seq":2}` {
		t.Fatalf("got %q, %v", got, err)
	}
}

// The store's segment and byte counts (its metrics) follow rotation,
// compression and retention without listing the directory.
func TestCountsFollowTheDisk(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	opt := Options{Dir: dir, SegmentMax: 1000, Retention: time.Hour, Now: func() time.Time { return now }}
	check := func(s *Store, when string) {
		t.Helper()
		segs, _ := List(dir)
		var size int64
		for _, seg := range segs {
			fi, err := os.Stat(filepath.Join(dir, seg.Name))
			if err != nil {
				t.Fatal(err)
			}
			size += fi.Size()
		}
		if s.Segments() != int64(len(segs)) || s.Bytes() != size {
			t.Errorf("%s: counts %d segments, %d bytes; on disk %d, %d", when, s.Segments(), s.Bytes(), len(segs), size)
		}
	}
	s, _ := open(t, opt)
	appendN(t, s, 1, 40)
	s.Close()
	check(s, "after rotations")
	s, _ = open(t, opt)
	waitCompressed(t, dir)
	s.Close()
	check(s, "after compression")
	now = now.Add(2 * time.Hour)
	s, _ = open(t, opt) // retention runs at start
	s.Close()
	if segs, _ := List(dir); len(segs) != 1 {
		t.Fatalf("retention left %v", segs)
	}
	check(s, "after retention")
}

// A crash after the compressed copy was renamed into place but before its
// index line was written: the next open compresses the segment again and
// indexes it, and no record is doubled.
func TestCrashBeforeIndexLine(t *testing.T) {
	dir, segs := originalBack(t)
	first := segs[0]
	raw, _ := os.ReadFile(filepath.Join(dir, IndexFile))
	var kept []byte
	for _, l := range bytes.SplitAfter(raw, []byte("\n")) {
		if !bytes.Contains(l, []byte(first.Name)) {
			kept = append(kept, l...)
		}
	}
	os.WriteFile(filepath.Join(dir, IndexFile), kept, 0o600)

	s, _ := open(t, Options{Dir: dir, SegmentMax: 1000})
	// The original goes once the index line is written.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, SegmentName(first.First, ActiveExt))); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the segment was not compressed again")
		}
	}
	s.Close()
	if ix, _ := ReadIndex(dir); ix[first.Name].Count != int(segs[1].First-first.First) {
		t.Errorf("index entry of %s after the compression was redone: %+v", first.Name, ix[first.Name])
	}
	if got := seqs(t, dir); len(got) != 30 {
		t.Fatalf("got %d records, want 30", len(got))
	}
}

// Between a .gz's rename and its .jsonl's removal both exist: readers see
// the segment once. The next open removes the .jsonl when the index line
// was written, else the .gz, so that the segment is compressed and
// indexed again; when a disk lost or changed either file, it keeps the
// one that holds more.
func TestListShowsACompressingSegmentOnce(t *testing.T) {
	var orig []byte
	for i := range 2000 {
		orig = append(orig, rec(uint64(i+1))+"\n"...)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(orig)
	zw.Close()
	for _, tc := range []struct {
		name       string
		indexed    bool
		jsonl, gz  []byte
		gone, kept string
	}{
		{"indexed", true, orig, gz.Bytes(), ".jsonl", ".jsonl.gz"},
		{"not indexed", false, orig, gz.Bytes(), ".jsonl.gz", ".jsonl"},
		{"compressed copy cut short", true, orig, gz.Bytes()[:gz.Len()/2], ".jsonl.gz", ".jsonl"},
		{"compressed copy empty", true, orig, nil, ".jsonl.gz", ".jsonl"},
		{"original cut short", false, orig[:len(orig)/3], gz.Bytes(), ".jsonl", ".jsonl.gz"},
		{"original changed", false, bytes.Replace(orig, []byte(`"seq":7,`), []byte(`"seq":8,`), 1), gz.Bytes(), ".jsonl", ".jsonl.gz"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "0000000000000001.jsonl"), tc.jsonl, 0o600)
		os.WriteFile(filepath.Join(dir, "0000000000000001.jsonl.gz"), tc.gz, 0o600)
		os.WriteFile(filepath.Join(dir, "0000000000002001.jsonl"), nil, 0o600)
		if tc.indexed {
			appendIndex(dir, []byte(`{"segment":"0000000000000001.jsonl.gz"}`))
		}
		segs, err := List(dir)
		if err != nil || len(segs) != 2 || segs[0].Name != "0000000000000001.jsonl.gz" || segs[1].Name != "0000000000002001.jsonl" {
			t.Fatalf("List: %+v %v", segs, err)
		}
		s := &Store{opt: Options{Dir: dir}, log: slog.New(slog.DiscardHandler)}
		if err := s.cleanup(segs); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "0000000000000001"+tc.gone)); !os.IsNotExist(err) {
			t.Errorf("%s: %s is still there: %v", tc.name, tc.gone, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "0000000000000001"+tc.kept)); err != nil {
			t.Errorf("%s: %s is gone: %v", tc.name, tc.kept, err)
		}
	}
}

// CommitAsync makes what was appended before it durable when its fsync
// ends, while appends go on; rotating, a Commit or a second CommitAsync
// wait for it, and nothing appended meanwhile is lost or counted durable
// before its own commit.
func TestCommitAsync(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 4 << 10})
	var seq uint64
	appendTo := func(to uint64) {
		for seq < to {
			seq++
			if err := s.Append([]byte(rec(seq)+"\n"), seq, seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	for round := range 50 {
		appendTo(seq + 7)
		target := seq
		ended := make(chan uint64, 1)
		if err := s.CommitAsync(func() { ended <- s.Durable() }); err != nil {
			t.Fatal(err)
		}
		appendTo(seq + 5) // beside the fsync; rotates every few rounds
		if got := s.Durable(); got > target {
			t.Fatalf("round %d: durable %d before the commit of %d..%d", round, got, target+1, seq)
		}
		if err := s.CommitAsync(nil); err != nil { // while the first runs: nothing, or the next one
			t.Fatal(err)
		}
		if done := s.SyncDone(); round%2 == 0 && done != nil { // nil: a rotation committed all
			<-done
			if err := s.CommitAsync(nil); err != nil { // takes the first's result, starts the next
				t.Fatal(err)
			}
		}
		if got := <-ended; got < target {
			t.Fatalf("round %d: the fsync of seq ..%d ended with durable %d", round, target, got)
		}
		for done := s.SyncDone(); done != nil; done = s.SyncDone() { // the next round starts its own
			<-done
			if err := s.CommitAsync(nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if s.Durable() != seq {
		t.Fatalf("durable %d after Commit, want %d", s.Durable(), seq)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := seqs(t, dir)
	if len(got) != int(seq) || got[len(got)-1] != seq {
		t.Fatalf("%d records, last %v; want %d", len(got), got[len(got)-1:], seq)
	}
	for i, q := range got {
		if q != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, q)
		}
	}
	if segs, _ := List(dir); len(segs) < 5 {
		t.Fatalf("%d segments: the test should rotate under commits", len(segs))
	}
}

// What an fsync makes durable is what was appended before it started, not
// what was appended while it ran.
func TestCommitAsyncDurableIsWhatWasSynced(t *testing.T) {
	synced, release := make(chan struct{}), make(chan struct{})
	s, _ := open(t, Options{Dir: t.TempDir(), OnSync: func(time.Duration) {
		synced <- struct{}{}
		<-release
	}})
	defer func() {
		go func() {
			for range synced { // Close's commit
			}
		}()
		close(release)
		s.Close()
	}()
	for seq := uint64(1); seq <= 5; seq++ {
		if err := s.Append([]byte(rec(seq)+"\n"), seq, seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CommitAsync(nil); err != nil {
		t.Fatal(err)
	}
	<-synced // the fsync of 1..5 ran; it has not ended
	for seq := uint64(6); seq <= 9; seq++ {
		if err := s.Append([]byte(rec(seq)+"\n"), seq, seq); err != nil {
			t.Fatal(err)
		}
	}
	release <- struct{}{}
	<-s.SyncDone()
	if got := s.Durable(); got != 5 {
		t.Fatalf("durable %d after the fsync of 1..5 (6..9 were appended while it ran)", got)
	}
}

// A rotation whose new segment cannot be opened (out of inodes; here a
// directory in its place) fails without closing the active segment: the
// retry rotates again, and once it can, nothing is lost or doubled.
func TestRotationRetriedAfterOpenFails(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 1000})
	appendN(t, s, 1, 9) // over 1000 bytes: the next append rotates
	next := filepath.Join(dir, SegmentName(10, ActiveExt))
	if err := os.Mkdir(next, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		err := s.Append([]byte(rec(10)+"\n"), 10, 10)
		if err == nil || !strings.Contains(err.Error(), "open active segment") {
			t.Fatalf("append with the new segment blocked: %v", err)
		}
	}
	if err := os.Remove(next); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 10, 30)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := seqs(t, dir)
	if len(got) != 30 || got[0] != 1 || got[29] != 30 {
		t.Fatalf("seqs %v, want 1..30", got)
	}
	if segs, _ := List(dir); len(segs) < 2 || segs[1].First != 10 {
		t.Fatalf("segments %v: want the second to start at 10", segs)
	}
}

// logWatch is a logger whose messages can be waited for.
type logWatch struct {
	mu   sync.Mutex
	msgs []string
	more chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{more: make(chan struct{}, 1)} }

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *logWatch) WithGroup(string) slog.Handler            { return w }
func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	w.msgs = append(w.msgs, r.Message)
	w.mu.Unlock()
	select {
	case w.more <- struct{}{}:
	default:
	}
	return nil
}

// wait waits for a message holding part.
func (w *logWatch) wait(t *testing.T, part string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		w.mu.Lock()
		for _, m := range w.msgs {
			if strings.Contains(m, part) {
				w.mu.Unlock()
				return
			}
		}
		w.mu.Unlock()
		select {
		case <-w.more:
		case <-timeout:
			t.Fatalf("no log message with %q", part)
		}
	}
}

// A compression that fails on a full disk (a real one: a tiny tmpfs)
// leaves no temporary file taking space, and is tried again once there is
// room, without a restart.
func TestCompressionRetriedAfterFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	dir := filepath.Join(mnt, "store")
	os.Mkdir(dir, 0o700)
	logs := newLogWatch()
	s, _ := open(t, Options{Dir: dir, SegmentMax: 8 << 10, Logger: slog.New(logs)})
	s.compressRetry = 10 * time.Millisecond
	defer s.Close()
	seq := uint64(1)
	for ; s.size < 8<<10; seq++ {
		if err := s.Append([]byte(rec(seq)+"\n"), seq, seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	// Fill the disk: the next append rotates, and both it and the
	// compression of the segment it ends fail.
	junk := filepath.Join(mnt, "junk")
	exec.Command("dd", "if=/dev/zero", "of="+junk, "bs=4k").Run()
	if err := s.Append([]byte(rec(seq)+"\n"), seq, seq); err == nil {
		t.Fatal("append on a full disk succeeded")
	}
	logs.wait(t, "compress segment failed; will retry")
	if tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmps) > 0 {
		t.Errorf("a failed compression left %v", tmps)
	}
	os.Remove(junk)
	appendN(t, s, seq, seq+10)
	waitCompressed(t, dir)
	if got := seqs(t, dir); len(got) != int(seq+10) {
		t.Fatalf("%d records, want %d", len(got), seq+10)
	}
}

// A kill between a segment's index line and its index record leaves the
// newest compressed segment with no record after it: the next Open tells
// OnIndexed its line again, and only then.
func TestNewestCompressedAttestedAgain(t *testing.T) {
	type call struct{ segment, line string }
	var mu sync.Mutex
	var calls []call
	opt := Options{Dir: t.TempDir(), SegmentMax: 1000, OnIndexed: func(_ <-chan struct{}, segment string, line []byte) error {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{segment, string(line)})
		return nil // and no record: as if killed before writing it
	}}
	s, _ := open(t, opt)
	appendN(t, s, 1, 12) // one rotation, at 10
	waitCompressed(t, opt.Dir)
	s.Close()
	seg := SegmentName(1, CompressedExt)
	mu.Lock()
	if len(calls) != 1 || calls[0].segment != seg {
		t.Fatalf("calls %v, want one for %s", calls, seg)
	}
	first := calls[0]
	calls = nil
	mu.Unlock()

	s, _ = open(t, opt)
	mu.Lock()
	if len(calls) != 1 || calls[0] != first {
		t.Fatalf("reopened: calls %v, want %s's line again", calls, seg)
	}
	calls = nil
	mu.Unlock()
	// Its record, as the agent writes it: the next Open finds it.
	index := fmt.Sprintf(`{"seq":13,"timestamp":"2026-01-01T00:00:13Z","event_type":"index","actor":"tailseal","lead_id":"","workflow":"","details":{"segment":%q,"sha256":%q},"epoch":0,"prev":"","signature":"00"}`,
		seg, IndexDigest([]byte(first.line)))
	if err := s.Append([]byte(index+"\n"), 13, 13); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, _ = open(t, opt)
	s.Close()
	if len(calls) != 0 {
		t.Errorf("with its record there: calls %v", calls)
	}
}

package verify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/merkle"
	"golang.org/x/mod/sumdb/note"
)

var update = flag.Bool("update", false, "rewrite testdata/segments.golden from this code's findings")

// epochKey signs as the agent does: under K(epoch), derived from a K0.
type epochKey struct {
	k0    []byte
	epoch uint64
}

func (k *epochKey) Epoch() uint64 { return k.epoch }

func (k *epochKey) MAC(dst, msg []byte) []byte {
	m := hmac.New(sha256.New, signer.Derive(k.k0, k.epoch))
	m.Write(msg)
	return m.Sum(dst)
}

// records signs one record per letter of spec, chained as the agent
// chains them, and returns the lines without their newlines:
//
//	e  an event
//	s  a seal of the current epoch; the records after it are in the next
//	j  an event in the next epoch, without a seal before it
//	b  an event in the epoch before
//	x  an event signed under another K0 (chained as usual)
//	t  a clean-stop record
//	h  an event claiming an epoch too far ahead to derive its key, signed
//	   under K0
func records(spec string) [][]byte {
	key := &epochKey{k0: k0}
	other := &epochKey{k0: bytes.Repeat([]byte{9}, 32)}
	var sw switchKey
	sw.Key = key
	c := signer.NewChain(&sw, 0, [sha256.Size]byte{})
	var lines [][]byte
	for i, r := range spec {
		typ, details := "e", fmt.Sprintf(`{"n":%d}`, i+1)
		sw.Key = key
		switch r {
		case 's':
			typ, details = "seal", fmt.Sprintf(`{"epoch":%d,"next_epoch":%d}`, key.epoch, key.epoch+1)
		case 'j':
			key.epoch++
		case 'b':
			key.epoch--
		case 'x':
			other.epoch = key.epoch
			sw.Key = other
		case 't':
			typ = "stop"
		case 'h':
			sw.Key = &forged{epoch: maxEpochJump + 7}
		}
		at := time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC).Format(time.RFC3339)
		buf := c.Begin(nil)
		buf = append(buf, `"timestamp":"`+at+`","event_type":"`+typ+`","actor":"","lead_id":"","workflow":"","details":`+details...)
		buf = c.Finish(buf)
		lines = append(lines, bytes.TrimSuffix(buf, []byte("\n")))
		if r == 's' {
			key.epoch++
		}
	}
	return lines
}

// forged signs under K0 whatever epoch it claims.
type forged struct{ epoch uint64 }

func (k *forged) Epoch() uint64 { return k.epoch }

func (k *forged) MAC(dst, msg []byte) []byte { return (&epochKey{k0: k0}).MAC(dst, msg) }

// switchKey is a Key whose key a record at a time may change.
type switchKey struct{ signer.Key }

// edit changes a line's details after it was signed and chained.
func edit(line []byte) []byte {
	return bytes.Replace(bytes.Clone(line), []byte(`"details":{`), []byte(`"details":{"x":1,`), 1)
}

// segs cuts lines into segments starting at the 1-based seqs given (each
// named by it, as the agent names them); a segment [from, -1) is dropped
// (deleted), and lines may be rearranged before by the caller.
func segs(lines [][]byte, starts ...int) *memStore {
	m := &memStore{data: map[string][]byte{}, broken: map[string]error{}}
	for i, s := range starts {
		end := len(lines)
		if i+1 < len(starts) {
			end = abs(starts[i+1]) - 1
		}
		if s < 0 {
			continue // a deleted segment
		}
		var data []byte
		for _, l := range lines[s-1 : end] {
			if l != nil {
				data = append(append(data, l...), '\n')
			}
		}
		m.add(uint64(s), data)
	}
	return m
}

func abs(n int) int { return max(n, -n) }

// segmentCase is a store cut into segments with something wrong in it,
// often where two segments meet.
type segmentCase struct {
	name  string
	store func() *memStore
	notes []note.Verifier // checkpoint verifier keys
}

// heads signs checkpoints of the Merkle roots of lines (as written, before
// any tampering) at the given sizes.
func heads(t *testing.T, lines [][]byte, sizes ...int) ([]byte, note.Verifier) {
	t.Helper()
	skey, vkey, _ := signer.GenerateNoteKey("test")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	var e merkle.Edge
	var b bytes.Buffer
	for i, l := range lines {
		e.Append(merkle.LeafHash(l), nil)
		for _, size := range sizes {
			if size == i+1 {
				signed, err := signer.SignCheckpoint(signer.Checkpoint{Origin: "o", Size: uint64(size), Hash: e.Root()}, s)
				if err != nil {
					t.Fatal(err)
				}
				line, _ := json.Marshal(map[string]any{"size": size, "note": signed})
				b.Write(append(line, '\n'))
			}
		}
	}
	return b.Bytes(), v
}

func segmentCases(t *testing.T) []segmentCase {
	plain := func(n int) [][]byte { return records(strings.Repeat("e", n)) }
	cases := []segmentCase{
		{"intact, four segments", func() *memStore { return segs(plain(40), 1, 11, 21, 31) }, nil},
		{"a single segment with findings", func() *memStore {
			l := plain(30)
			l[4] = edit(l[4])
			l[11], l[12] = l[12], l[11]
			l[20] = nil
			m := segs(l, 1)
			d := m.data[m.segs[0].Name]
			m.data[m.segs[0].Name] = d[:len(d)-20] // a torn last line
			return m
		}, nil},
		{"findings in several segments", func() *memStore {
			l := records(strings.Repeat("e", 14) + "x" + strings.Repeat("e", 25))
			l[4] = edit(l[4])
			l[24] = nil
			l[32], l[33] = l[33], l[32]
			return segs(l, 1, 11, 21, 31)
		}, nil},
		{"the last line of a segment edited", func() *memStore {
			l := plain(30)
			l[9] = edit(l[9])
			return segs(l, 1, 11, 21)
		}, nil},
		{"the first line of a segment edited", func() *memStore {
			l := plain(30)
			l[10] = edit(l[10])
			return segs(l, 1, 11, 21)
		}, nil},
		{"the last line of the store edited", func() *memStore {
			l := plain(30)
			l[29] = edit(l[29])
			return segs(l, 1, 11, 21)
		}, nil},
		{"the last line of a segment deleted", func() *memStore {
			l := plain(30)
			l[9] = nil
			return segs(l, 1, 11, 21)
		}, nil},
		{"the first line of a segment deleted", func() *memStore {
			l := plain(30)
			l[10] = nil
			return segs(l, 1, 11, 21)
		}, nil},
		{"a segment deleted", func() *memStore { return segs(plain(40), 1, 11, -21, 31) }, nil},
		{"the first segment deleted", func() *memStore { return segs(plain(30), -1, 11, 21) }, nil},
		{"the last segment deleted", func() *memStore { return segs(plain(30), 1, 11, -21) }, nil},
		{"two lines swapped across segments", func() *memStore {
			l := plain(30)
			l[9], l[10] = l[10], l[9]
			return segs(l, 1, 11, 21)
		}, nil},
		{"an epoch change at a segment boundary", func() *memStore {
			return segs(records("eeeeeeeees"+"eeeeeeeees"+"eeeeeeeeee"), 1, 11, 21)
		}, nil},
		{"a seal as a segment's first line", func() *memStore {
			return segs(records("eeeeeeeeee"+"seeeeeeeee"+"eeeeeeeeee"), 1, 11, 21)
		}, nil},
		{"an epoch change at a boundary without its seal", func() *memStore {
			return segs(records("eeeeeeeeee"+"jeeeeeeeee"+"eeeeeeeeee"), 1, 11, 21)
		}, nil},
		{"an epoch going back at a boundary", func() *memStore {
			return segs(records("eeeeseeeee"+"beeeeeeeee"+"eeeeeeeeee"), 1, 11, 21)
		}, nil},
		{"the seal at a boundary deleted", func() *memStore {
			l := records("eeeeeeeees" + "eeeeeeeeee" + "eeeeeeeeee")
			l[9] = nil
			return segs(l, 1, 11, 21)
		}, nil},
		{"an epoch too far ahead at a boundary and in a segment", func() *memStore {
			return segs(records("eeeheeeeee"+"heeeeheeee"+"eeeeeeeeee"), 1, 11, 21)
		}, nil},
		{"a segment signed under another key", func() *memStore {
			return segs(records("eeeeeeeeee"+"xxxxxxxxxx"+"eeeeeeeeee"), 1, 11, 21)
		}, nil},
		{"the last segment signed under another key, after a clean stop", func() *memStore {
			return segs(records("eeeeeeeeee"+"eeeeeeeeet"+"xxxxxxxxxx"), 1, 11, 21)
		}, nil},
		{"a segment torn and one unreadable in the middle", func() *memStore {
			m := segs(plain(40), 1, 11, 21, 31)
			d := m.data[m.segs[1].Name]
			m.data[m.segs[1].Name] = d[:len(d)-30]
			m.broken[m.segs[2].Name] = fmt.Errorf("unexpected EOF")
			return m
		}, nil},
		{"an empty segment", func() *memStore {
			m := segs(plain(30), 1, 11, 21)
			m.data[m.segs[1].Name] = nil
			return m
		}, nil},
	}
	l := records(strings.Repeat("e", 9) + "s" + strings.Repeat("e", 20) + "t")
	cps, v := heads(t, l, 5, 10, 11, 20, 30)
	withHeads := func(name string, tamper func([][]byte) [][]byte) segmentCase {
		return segmentCase{name, func() *memStore {
			m := segs(tamper(slices.Clone(l)), 1, 11, 21)
			m.checkpoints = cps
			return m
		}, []note.Verifier{v}}
	}
	return append(cases,
		withHeads("checkpoints at segment boundaries", func(l [][]byte) [][]byte { return l }),
		withHeads("checkpoints at segment boundaries over an edit", func(l [][]byte) [][]byte {
			l[14] = edit(l[14])
			return l
		}),
		withHeads("a checkpoint's record at a boundary edited", func(l [][]byte) [][]byte {
			l[10] = edit(l[10])
			return l
		}),
	)
}

// goldenFile holds the findings and summary of each case as the verifier
// of the parent commit (one goroutine, line by line) reported them.
const goldenFile = "testdata/segments.golden"

// report is what a run says, in one comparable text.
func report(sum *Summary, err error) string {
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var b strings.Builder
	for _, f := range sum.Findings {
		b.WriteString(f.String() + "\n")
	}
	s := *sum
	s.Findings = nil
	j, _ := json.Marshal(s)
	b.WriteString(string(j) + "\n")
	return b.String()
}

// Findings in several segments come out as the line-by-line verifier
// reported them, in its order, however many hashers there are and however
// the segments are cut into chunks: chunks of one line, of a few, and of a
// whole segment, with one hasher or more than chunks in flight.
func TestSegments(t *testing.T) {
	want, err := os.ReadFile(filepath.FromSlash(goldenFile))
	if err != nil && !*update {
		t.Fatal(err)
	}
	for _, cfg := range []struct{ workers, chunkLines int }{{1, 0}, {2, 1}, {4, 1}, {3, 2}, {2, 3}, {8, 7}} {
		var got strings.Builder
		for _, c := range segmentCases(t) {
			for _, withKey := range []bool{true, false} {
				opt := Options{Source: c.store(), Verifiers: c.notes, Now: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
					workers: cfg.workers, chunkLines: cfg.chunkLines}
				if withKey {
					opt.K0 = k0
				}
				fmt.Fprintf(&got, "== %s (key %v)\n", c.name, withKey)
				got.WriteString(report(Run(context.Background(), opt)))
			}
		}
		if *update {
			if err := os.WriteFile(goldenFile, []byte(got.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		if got.String() != string(want) {
			t.Errorf("%d hashers, chunks of %d lines: findings differ from %s:\n%s", cfg.workers, cfg.chunkLines, goldenFile, diffLines(string(want), got.String()))
		}
	}
}

// diffLines shows the first lines where two texts differ.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// countingStore counts the lines its Lines handed out.
type countingStore struct {
	*memStore
	read atomic.Int64
}

func (s *countingStore) Lines(seg Segment, fn func(int, []byte) error) error {
	return s.memStore.Lines(seg, func(n int, line []byte) error {
		s.read.Add(1)
		return fn(n, line)
	})
}

// The reader stays a few chunks ahead of the verifier, however far the
// hashers could run: memory is bounded by chunks, not by segments.
func TestPipelineBounded(t *testing.T) {
	const workers, lines = 2, 3
	src := &countingStore{memStore: segs(records(strings.Repeat("e", 300)), 1, 101, 201)}
	segs, _ := src.Segments()
	pl := startPipeline(src, segs, k0, workers, lines)
	defer pl.close()
	n := int64(0)
	for _, r := range pl.readers {
		n += int64(cap(r.free))
	}
	if n > 4*workers {
		t.Errorf("%d chunks for %d hashers: more than a few each", n, workers)
	}
	readers := int64(len(pl.readers))
	released := int64(0)
	h := newHasher(k0)
	for c, ok := pl.next(h); ok; c, ok = pl.next(h) {
		// The readers hold at most every chunk, and each has the line
		// that did not fit into its last.
		if read := src.read.Load(); read > (released+n)*lines+readers {
			t.Fatalf("%d lines read with %d chunks of %d given back: more than %d chunks ahead", read, released, lines, n)
		}
		for i := range c.ends {
			if c.hashed[i].sig != sigGood {
				t.Fatalf("%s line %d: %v", c.seg.Name, c.hashed[i].lineNo, c.hashed[i].sig)
			}
		}
		pl.release(c)
		released++
	}
	if src.read.Load() != 300 {
		t.Errorf("%d lines read", src.read.Load())
	}
}

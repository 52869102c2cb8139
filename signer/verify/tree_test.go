package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/merkle"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// treeStore is n chained lines, their Merkle tree as tlog computes it,
// and the level files the agent would keep of it.
type treeStore struct {
	lines  [][]byte
	ref    []tlog.Hash // every stored hash, tlog's order
	hashes fstest.MapFS
	signer note.Signer
	vkey   note.Verifier
}

func newTreeStore(t *testing.T, n int) *treeStore {
	t.Helper()
	ts := &treeStore{hashes: fstest.MapFS{}}
	ts.lines = bytes.Split(bytes.TrimSuffix(chain(n), []byte("\n")), []byte("\n"))
	var e merkle.Edge
	for i, l := range ts.lines {
		hs, err := tlog.StoredHashes(int64(i), l, ts)
		if err != nil {
			t.Fatal(err)
		}
		ts.ref = append(ts.ref, hs...)
		e.Append(merkle.LeafHash(l), func(level int, h tlog.Hash) {
			f := ts.hashes[merkle.LevelFile(level)]
			if f == nil {
				f = &fstest.MapFile{}
				ts.hashes[merkle.LevelFile(level)] = f
			}
			f.Data = append(f.Data, h[:]...)
		})
	}
	skey, vkey, _ := signer.GenerateNoteKey("test")
	ts.signer, _ = note.NewSigner(skey)
	ts.vkey, _ = note.NewVerifier(vkey)
	return ts
}

func (ts *treeStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = ts.ref[x]
	}
	return out, nil
}

func (ts *treeStore) root(size int) [32]byte {
	h, _ := tlog.TreeHash(int64(size), ts)
	return h
}

// checkpoints signs a checkpoints.jsonl of the given sizes and heads.
func (ts *treeStore) checkpoints(t *testing.T, heads map[int][32]byte, order ...int) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, size := range order {
		signed, err := signer.SignCheckpoint(signer.Checkpoint{Origin: "o", Size: uint64(size), Hash: heads[size]}, ts.signer)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := json.Marshal(map[string]any{"size": size, "note": signed})
		b.Write(append(line, '\n'))
	}
	return b.Bytes()
}

func (ts *treeStore) source(from int) *memStore {
	m := &memStore{data: map[string][]byte{}}
	m.add(uint64(from), append(bytes.Join(ts.lines[from-1:], []byte("\n")), '\n'))
	return m
}

// Tree heads and the chain heads of older stores both verify, and the
// summary says which is which.
func TestCheckpointKinds(t *testing.T) {
	ts := newTreeStore(t, 700)
	heads := map[int][32]byte{100: ts.root(100), 300: sha256.Sum256(ts.lines[299]), 500: ts.root(500), 699: ts.root(699)}
	m := ts.source(1)
	m.checkpoints = ts.checkpoints(t, heads, 100, 300, 500, 699)
	for _, hashes := range []fstest.MapFS{nil, ts.hashes} {
		opt := Options{Source: m, K0: k0, Verifiers: []note.Verifier{ts.vkey}}
		if hashes != nil {
			opt.Hashes = hashes
		}
		sum, err := Run(context.Background(), opt)
		if err != nil || len(sum.Findings) != 0 || sum.TreeHeads != 3 || sum.ChainHeads != 1 {
			t.Fatalf("%v %+v", err, sum)
		}
		if want := map[bool]int{false: 0, true: 2}[hashes != nil]; sum.Consistent != want {
			t.Errorf("%d consistency proofs, want %d", sum.Consistent, want)
		}
	}
}

// A record edited under a tree head: the edit is reported, and the first
// checkpoint over it; the ones after it differ for the same reason.
func TestEditUnderTreeHeads(t *testing.T) {
	ts := newTreeStore(t, 600)
	heads := map[int][32]byte{}
	var order []int
	for size := 100; size < 600; size += 100 {
		heads[size], order = ts.root(size), append(order, size)
	}
	m := ts.source(1)
	m.checkpoints = ts.checkpoints(t, heads, order...)
	data := m.data[m.segs[0].Name]
	i := bytes.Index(data, []byte(`{"seq":250,`))
	data[i+bytes.Index(data[i:], []byte(`"i":1`))+4] = '2'
	sum, err := Run(context.Background(), Options{Source: m, K0: k0, Verifiers: []note.Verifier{ts.vkey}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(kinds(sum)); got != "[0000000000000001.jsonl: edited 0000000000000001.jsonl: bad checkpoint]" || sum.TreeHeads != 2 {
		t.Fatalf("findings %s, %d tree heads: %v", got, sum.TreeHeads, sum.Findings)
	}
	if sum.Findings[1].Seq != 300 {
		t.Errorf("bad checkpoint at %d, want 300", sum.Findings[1].Seq)
	}
}

// The key's holder signs a checkpoint of another history of the same
// records: the records are intact, the checkpoint is reported, and so is
// its inconsistency with the next one.
func TestCheckpointOfAnotherHistory(t *testing.T) {
	ts := newTreeStore(t, 600)
	other := newTreeStore(t, 300) // other lines: another K0 would do, any log of size 300
	other.lines[10] = append([]byte(nil), other.lines[11]...)
	other.ref = nil
	for i, l := range other.lines {
		hs, _ := tlog.StoredHashes(int64(i), l, other)
		other.ref = append(other.ref, hs...)
	}
	heads := map[int][32]byte{200: ts.root(200), 300: other.root(300), 599: ts.root(599)}
	m := ts.source(1)
	m.checkpoints = ts.checkpoints(t, heads, 200, 300, 599)
	sum, err := Run(context.Background(), Options{Source: m, K0: k0, Verifiers: []note.Verifier{ts.vkey}, Hashes: ts.hashes})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(kinds(sum)); got != "[0000000000000001.jsonl: bad checkpoint]" || sum.TreeHeads != 2 || sum.Consistent != 1 {
		t.Fatalf("findings %s, %+v", got, sum)
	}
}

// When retention deleted the first records, the tree continues from the
// stored hashes: checkpoints after it verify against the records, those
// before it against the hashes the newest vouches for, with consistency
// proofs between them.
func TestPrunedStoreUsesStoredHashes(t *testing.T) {
	ts := newTreeStore(t, 1000)
	heads := map[int][32]byte{100: ts.root(100), 400: ts.root(400), 450: sha256.Sum256(ts.lines[449]), 800: ts.root(800), 999: ts.root(999)}
	m := ts.source(513) // records 1..512 gone
	m.checkpoints = ts.checkpoints(t, heads, 100, 400, 450, 800, 999)
	sum, err := Run(context.Background(), Options{Source: m, K0: k0, Verifiers: []note.Verifier{ts.vkey}, Hashes: ts.hashes})
	if err != nil {
		t.Fatal(err)
	}
	// The start gap is a finding here: no retention record explains it.
	if got := fmt.Sprint(kinds(sum)); got != "[0000000000000513.jsonl: deleted]" {
		t.Fatalf("findings %s: %v", got, sum.Findings)
	}
	if sum.TreeHeads != 4 || sum.Unchecked != 1 || sum.Consistent != 3 {
		t.Fatalf("%+v", sum)
	}
	// Without the stored hashes, nothing before the tree is known.
	sum, _ = Run(context.Background(), Options{Source: m, K0: k0, Verifiers: []note.Verifier{ts.vkey}})
	if sum.TreeHeads != 0 || sum.Unchecked != 2 || len(sum.Findings) != 1 {
		t.Fatalf("without hashes: %+v", sum)
	}
	// Stored hashes that are not the records' are caught by a root.
	bad := fstest.MapFS{"0": &fstest.MapFile{Data: bytes.Clone(ts.hashes["0"].Data)}, "1": ts.hashes["1"]}
	bad["0"].Data[32*300] ^= 1
	sum, _ = Run(context.Background(), Options{Source: m, K0: k0, Verifiers: []note.Verifier{ts.vkey}, Hashes: bad})
	if got := fmt.Sprint(kinds(sum)); got == "[0000000000000513.jsonl: deleted]" {
		t.Fatalf("damaged stored hashes went unnoticed: %+v", sum)
	}
}

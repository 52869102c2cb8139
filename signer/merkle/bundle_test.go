package merkle

import (
	"errors"
	"testing"

	"github.com/tailseal/tailseal/signer"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestBundles(t *testing.T) {
	const n = 1000
	e, _, fsys := build(t, n, nil)
	skey, vkey, _ := signer.GenerateNoteKey("log")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	vs := []note.Verifier{v}
	sign := func(size uint64, root tlog.Hash) string {
		signed, err := signer.SignCheckpoint(signer.Checkpoint{Origin: "o", Size: size, Hash: root}, s)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	p := NewProver(fsys)
	defer p.Close()
	root := e.Root()
	proof, err := p.Inclusion(n, 41, root, LeafHash(leaf(41)))
	if err != nil {
		t.Fatal(err)
	}
	b := Inclusion{Origin: "o", Size: n, Index: 41, Record: string(leaf(41)), Proof: proof, Checkpoint: sign(n, root)}
	if _, err := b.Check(vs); err != nil {
		t.Fatal(err)
	}
	back, err := ParseProofText([]byte(b.ProofText()))
	if err != nil || back.Record != b.Record || back.Size != n || back.Origin != "o" {
		t.Fatalf("tlog-proof round trip: %+v %v", back, err)
	}
	if _, err := back.Check(vs); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func(*Inclusion){
		"another record":     func(b *Inclusion) { b.Record = string(leaf(42)) },
		"another index":      func(b *Inclusion) { b.Index = 42 },
		"another origin":     func(b *Inclusion) { b.Origin = "x" },
		"another size":       func(b *Inclusion) { b.Size = n - 1 },
		"a hash changed":     func(b *Inclusion) { b.Proof = append([]tlog.Hash{{1}}, b.Proof[1:]...) },
		"an unsigned note":   func(b *Inclusion) { b.Checkpoint = "o\n1000\n" + root.String() + "\n\n— log AAAA\n" },
		"a note of the root": func(b *Inclusion) { b.Checkpoint = sign(n, tlog.Hash{7}) },
	} {
		c := b
		bad(&c)
		if _, err := c.Check(vs); !errors.Is(err, ErrProof) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseProofText([]byte("c2sp.org/tlog-proof@v1\nindex 1\n\n")); !errors.Is(err, ErrBundle) {
		t.Errorf("a tlog-proof without the record: %v", err)
	}

	var old Edge
	for i := range 300 {
		old.Append(LeafHash(leaf(i)), nil)
	}
	tp, err := p.Consistency(n, 300, root, old.Root())
	if err != nil {
		t.Fatal(err)
	}
	cb := Consistency{OldSize: 300, NewSize: n, Proof: tp, OldCheckpoint: sign(300, old.Root()), NewCheckpoint: sign(n, root)}
	if _, _, err := cb.Check(vs); err != nil {
		t.Fatal(err)
	}
	cb.OldCheckpoint = sign(300, tlog.Hash{9}) // another log of size 300: a fork
	if _, _, err := cb.Check(vs); !errors.Is(err, ErrProof) {
		t.Errorf("a fork: %v", err)
	}
	if _, err := p.Consistency(n, 300, root, tlog.Hash{9}); !errors.Is(err, ErrNotInTree) {
		t.Errorf("a proof for a root the hashes do not give: %v", err)
	}
}

package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/tailseal/tailseal/signer"
)

// genesisStore builds a store that starts with a genesis record naming
// origin, then n events, signed with the real chain code.
func genesisStore(origin string, n int) []byte {
	c := signer.NewChain(signer.NewStaticKey(k0), 0, [sha256.Size]byte{})
	buf := c.Begin(nil)
	buf = append(buf, `"timestamp":"2026-01-01T00:00:00Z","event_type":"genesis","actor":"tailseal","lead_id":"","workflow":"","details":{"origin":"`+origin+`","epoch_seconds":0}`...)
	buf = c.Finish(buf)
	for range n {
		buf = c.Begin(buf)
		buf = append(buf, `"timestamp":"2026-01-01T00:00:00Z","event_type":"e","actor":"","lead_id":"","workflow":"","details":{"i":1}`...)
		buf = c.Finish(buf)
	}
	return buf
}

func kinds(sum *Summary) []string {
	var out []string
	for _, f := range sum.Findings {
		out = append(out, f.Segment+": "+f.Kind)
	}
	return out
}

func TestGenesis(t *testing.T) {
	data := genesisStore("web-0", 5)
	first, _, _ := bytes.Cut(data, []byte("\n"))
	other, _, _ := bytes.Cut(genesisStore("web-1", 0), []byte("\n"))
	// The rest of the store, as retention leaves it.
	rest := data[len(first)+1:]
	noteFor := func(origin string) []byte {
		return []byte(fmt.Sprintf(`{"size":1,"note":"%s\n1\nAAAA\n\n— x sig\n"}`+"\n", origin))
	}
	// A note that parses (no verifier checks its signature), of size 5.
	parsingNote := func(origin string) []byte {
		return []byte(fmt.Sprintf(`{"size":5,"note":"%s\n5\n%s\n\n— x sig\n"}`+"\n", origin, strings.Repeat("A", 43)+"="))
	}
	for _, tc := range []struct {
		name        string
		src         *memStore
		copyOf      []byte
		origin      string // Options.Origin
		want        string // findings, in order
		wantOrigin  string
		wantGenesis bool
	}{
		{name: "intact", src: oneSegment(data), copyOf: first, want: "[]", wantOrigin: "web-0", wantGenesis: true},
		{name: "no copy", src: oneSegment(data), want: "[]", wantOrigin: "web-0", wantGenesis: true},
		{name: "copy edited", src: oneSegment(data), copyOf: other, want: "[genesis.json: edited]", wantOrigin: "web-0", wantGenesis: true},
		{name: "seq 1 deleted by retention, the copy names the store", src: func() *memStore {
			m := &memStore{data: map[string][]byte{}}
			m.add(2, rest)
			return m
		}(), copyOf: first, want: "[0000000000000002.jsonl: deleted]", wantOrigin: "web-0", wantGenesis: true},
		{name: "a forged copy does not verify under K0", src: func() *memStore {
			m := &memStore{data: map[string][]byte{}}
			m.add(2, rest)
			return m
		}(), copyOf: bytes.Replace(first, []byte("web-0"), []byte("web-9"), 1), want: "[0000000000000002.jsonl: deleted genesis.json: bad signature]"},
		{name: "checkpoint of another origin", src: func() *memStore {
			m := oneSegment(data)
			m.checkpoints = noteFor("web-1")
			return m
		}(), want: "[checkpoints.jsonl: bad checkpoint]", wantOrigin: "web-0", wantGenesis: true},
		{name: "kept as its own origin", src: oneSegment(data), origin: "web-0", want: "[]", wantOrigin: "web-0", wantGenesis: true},
		{name: "kept as another origin", src: oneSegment(data), origin: "web-1",
			want: "[0000000000000001.jsonl: wrong origin]", wantOrigin: "web-0", wantGenesis: true},
		{name: "kept as another origin, its seq 1 deleted by retention", src: func() *memStore {
			m := &memStore{data: map[string][]byte{}}
			m.add(2, rest)
			return m
		}(), copyOf: first, origin: "web-1", want: "[0000000000000002.jsonl: deleted genesis.json: wrong origin]", wantOrigin: "web-0", wantGenesis: true},
		{name: "no genesis, a checkpoint of another origin than expected", src: func() *memStore {
			m := &memStore{data: map[string][]byte{}}
			m.add(2, rest)
			m.checkpoints = parsingNote("web-1")
			return m
		}(), origin: "web-0", want: "[0000000000000002.jsonl: deleted checkpoints.jsonl: wrong origin]"}, // its root is not checked: records before it are gone
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, err := Run(context.Background(), Options{Source: tc.src, K0: k0, Genesis: tc.copyOf, Origin: tc.origin})
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(kinds(sum)); got != tc.want {
				t.Errorf("findings %s, want %s: %v", got, tc.want, sum.Findings)
			}
			if sum.Origin != tc.wantOrigin || (sum.Genesis != "") != tc.wantGenesis {
				t.Errorf("origin %q genesis %q", sum.Origin, sum.Genesis)
			}
		})
	}
}

// A genesis record anywhere but seq 1 is an insertion.
func TestGenesisAfterSeq1(t *testing.T) {
	c := signer.NewChain(signer.NewStaticKey(k0), 0, [sha256.Size]byte{})
	var buf []byte
	for i, typ := range []string{"e", "genesis"} {
		buf = c.Begin(buf)
		buf = append(buf, fmt.Sprintf(`"timestamp":"2026-01-01T00:00:0%dZ","event_type":"%s","actor":"","lead_id":"","workflow":"","details":{"origin":"x"}`, i, typ)...)
		buf = c.Finish(buf)
	}
	sum, err := Run(context.Background(), Options{Source: oneSegment(buf), K0: k0})
	if err != nil || len(sum.Findings) != 1 || sum.Findings[0].Kind != Inserted || sum.Findings[0].Seq != 2 {
		t.Fatalf("%v %+v", err, sum)
	}
}

// Once retention deleted seq 1, the retention record names the genesis:
// a missing or another copy is a finding, and so is a copy whose K0
// verifies nothing, rather than a key error.
func TestGenesisCopyAfterRetention(t *testing.T) {
	c := signer.NewChain(signer.NewStaticKey(k0), 0, [sha256.Size]byte{})
	var all []byte
	add := func(typ, details string) {
		all = c.Begin(all)
		all = append(all, `"timestamp":"2026-01-01T00:00:00Z","event_type":"`+typ+`","actor":"tailseal","lead_id":"","workflow":"","details":`+details...)
		all = c.Finish(all)
	}
	add("genesis", `{"origin":"web-0","epoch_seconds":0}`)
	first, _, _ := bytes.Cut(all, []byte("\n"))
	h := sha256.Sum256(first)
	add("e", `{}`)
	add("retention", fmt.Sprintf(`{"deleted_through":2,"segments":["0000000000000001.jsonl"],"reason":"r","genesis":"%s"}`, base64.StdEncoding.EncodeToString(h[:])))
	add("e", `{}`)
	lines := bytes.SplitAfter(all, []byte("\n"))
	kept := bytes.Join(lines[2:], nil)
	store := func() *memStore {
		m := &memStore{data: map[string][]byte{}}
		m.add(3, kept)
		return m
	}
	other, _, _ := bytes.Cut(genesisStore("web-1", 0), []byte("\n"))
	for _, tc := range []struct {
		name   string
		copyOf []byte
		want   string
	}{
		{"the right copy", first, "[]"},
		{"no copy", nil, "[genesis.json: deleted]"},
		{"another store's copy", other, "[genesis.json: edited]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, err := Run(context.Background(), Options{Source: store(), K0: k0, Genesis: tc.copyOf})
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(kinds(sum)); got != tc.want {
				t.Errorf("findings %s, want %s: %v", got, tc.want, sum.Findings)
			}
		})
	}
	wrong := bytes.Repeat([]byte{9}, 32)
	sum, err := Run(context.Background(), Options{Source: store(), K0: wrong, Genesis: other, K0FromGenesis: true})
	if err != nil || sum.Signatures {
		t.Fatalf("K0 from a foreign copy: %v, signatures checked %v", err, sum != nil && sum.Signatures)
	}
	if got := fmt.Sprint(kinds(sum)); got != "[genesis.json: edited genesis.json: edited]" {
		t.Errorf("findings %s: %v", got, sum.Findings)
	}
}

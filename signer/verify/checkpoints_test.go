package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tailseal/tailseal/signer"
	"golang.org/x/mod/sumdb/note"
)

// A trusted list of verifier keys: a checkpoint verifies under any key of
// it; one signed by a key left out of the list is a finding; a list that
// verifies none is a wrong-verifier error naming its keys.
func TestVerifierList(t *testing.T) {
	data := genesisStore("web-0", 6)
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	keys := map[string][2]string{} // name → signer, verifier key
	for _, name := range []string{"a", "b", "c", "d"} {
		skey, vkey, err := signer.GenerateNoteKey(name)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = [2]string{skey, vkey}
	}
	var cps bytes.Buffer
	for _, c := range []struct {
		size uint64
		key  string
	}{{3, "a"}, {6, "b"}} {
		s, err := note.NewSigner(keys[c.key][0])
		if err != nil {
			t.Fatal(err)
		}
		signed, err := signer.SignCheckpoint(signer.Checkpoint{Origin: "web-0", Size: c.size, Hash: sha256.Sum256(lines[c.size-1])}, s)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"size": c.size, "note": signed})
		cps.Write(append(b, '\n'))
	}
	list := func(names ...string) []note.Verifier {
		var text []string
		for _, n := range names {
			text = append(text, keys[n][1])
		}
		vs, err := signer.ParseVerifiers(strings.Join(text, "\n# a comment\n , "))
		if err != nil || len(vs) == 0 {
			t.Fatalf("ParseVerifiers: %v %v", vs, err)
		}
		return vs
	}
	for _, tc := range []struct {
		name    string
		keys    []note.Verifier
		want    string // findings
		wantErr string
	}{
		{name: "both keys", keys: list("a", "b", "c"), want: "[]"},
		{name: "b left out", keys: list("a", "c"), want: "[checkpoints.jsonl: bad checkpoint]"},
		{name: "neither", keys: list("c"), wantErr: "does not match any checkpoint (it names c+"},
		{name: "a key listed twice is one", keys: list("c", "c"), wantErr: "(it names c+"},
		{name: "neither of two", keys: list("c", "d"), wantErr: "(the trusted keys are c+"},
		{name: "no key: signatures not checked", want: "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := oneSegment(data)
			m.checkpoints = cps.Bytes()
			sum, err := Run(context.Background(), Options{Source: m, K0: k0, Verifiers: tc.keys})
			if tc.wantErr != "" {
				if !errors.Is(err, ErrWrongVerifier) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(kinds(sum)); got != tc.want || sum.Checkpoints != 2 || sum.Notes != (len(tc.keys) > 0) {
				t.Errorf("findings %s (want %s), %d checkpoints, notes checked %v: %v", got, tc.want, sum.Checkpoints, sum.Notes, sum.Findings)
			}
		})
	}
	if _, err := signer.ParseVerifiers(keys["a"][1] + ",tailseal+1234+notbase64"); err == nil || !strings.HasPrefix(err.Error(), "entry 2:") {
		t.Errorf("a bad second entry: %v", err)
	}
}

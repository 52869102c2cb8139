package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/merkle"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// checkpointKey makes the store's checkpoint key pair in data/keys, as
// keygen would, and returns its signer.
func checkpointKey(data string) (note.Signer, error) {
	skey, vkey, err := signer.GenerateNoteKey("tailseal")
	if err != nil {
		return nil, err
	}
	keys := filepath.Join(data, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(keys, "checkpoint.pub"), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	return note.NewSigner(skey)
}

// proofs times proofs against the store's newest checkpoint: in process
// from the stored hashes (a fresh Prover each time, as one `tailseal
// prove` makes, and one Prover for many, as an export makes), then the
// commands.
func proofs(bin, data string, events int) error {
	cps, err := agent.ReadCheckpoints(data)
	if err != nil || len(cps) == 0 {
		fmt.Println("\nno checkpoint in the store (built before checkpoints were added to it): no proof figures")
		return err
	}
	c, err := signer.ParseSigned(cps[len(cps)-1].Note)
	if err != nil {
		return err
	}
	hashes := os.DirFS(filepath.Join(data, agent.StoreDir, store.HashDir))
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 1000
	var cold []time.Duration
	for range n {
		i := rng.Uint64N(c.Size)
		t0 := time.Now()
		p := merkle.NewProver(hashes)
		leaf, err := p.Leaf(i)
		if err == nil {
			_, err = p.Inclusion(c.Size, i, c.Hash, leaf)
		}
		p.Close()
		if err != nil {
			return fmt.Errorf("inclusion proof of leaf %d: %w", i, err)
		}
		cold = append(cold, time.Since(t0))
	}
	slices.Sort(cold)
	fmt.Printf("\nproofs against the checkpoint of size %d, from store/hashes (%d levels):\n", c.Size, levels(data))
	fmt.Printf("  inclusion, a new prover each (as tailseal prove): median %s, p99 %s, max %s over %d random leaves (each checked against the root)\n",
		ms(cold[n/2]), ms(cold[n*99/100]), ms(cold[n-1]), n)
	p := merkle.NewProver(hashes)
	t0 := time.Now()
	for range n {
		i := rng.Uint64N(c.Size)
		leaf, err := p.Leaf(i)
		if err == nil {
			_, err = p.Inclusion(c.Size, i, c.Hash, leaf)
		}
		if err != nil {
			return err
		}
	}
	fmt.Printf("  inclusion, one prover for %d (as export --proofs): %s each\n", n, ms(time.Since(t0)/n))
	old := c.Size / 3
	t0 = time.Now()
	oldRoot, err := tlog.TreeHash(int64(old), p)
	if err == nil {
		_, err = p.Consistency(c.Size, old, c.Hash, oldRoot)
	}
	if err != nil {
		return err
	}
	fmt.Printf("  consistency from size %d: %s (the old root from the stored hashes, the proof, its check)\n\n", old, ms(time.Since(t0)))
	p.Close()
	seq := fmt.Sprint(c.Size / 2)
	proofFile := filepath.Join(filepath.Dir(data), "readbench.proof")
	defer os.Remove(proofFile)
	for _, args := range [][]string{{"prove", "--seq", seq, "--json"}, {"prove", "--seq", seq}} {
		if err := measure(bin, data, args, func(out *counter, _ time.Duration) string {
			os.WriteFile(proofFile, out.head, 0o644)
			return fmt.Sprintf("%d bytes", out.n)
		}); err != nil {
			return err
		}
	}
	return measure(bin, data, []string{"verify-proof", proofFile}, func(out *counter, _ time.Duration) string {
		return strings.TrimSpace(string(out.head))
	})
}

func levels(data string) int {
	entries, _ := os.ReadDir(filepath.Join(data, agent.StoreDir, store.HashDir))
	return len(entries)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

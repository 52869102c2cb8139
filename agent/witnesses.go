package agent

import (
	"net/http"
	"os"
	"path/filepath"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/agent/witness"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// setupWitnesses makes the witness client of TAILSEAL_WITNESS_URLS and
// hands it the newest checkpoint, when it is a tree head: what a last
// run left uncosigned is asked for at once.
func (a *Agent) setupWitnesses() error {
	if len(a.cfg.WitnessURLs) == 0 {
		return nil
	}
	if _, _, ok := a.store.TreeHead(); !ok {
		a.log.Warn("TAILSEAL_WITNESS_URLS is set, but this store keeps no Merkle tree (its first records were deleted before it had one): witnesses cannot cosign chain heads")
		return nil
	}
	keys, _ := a.cfg.Witnesses()
	ws := make([]witness.Witness, len(keys))
	for i, k := range keys {
		ws[i] = witness.Witness{URL: a.cfg.WitnessURLs[i], Key: k}
	}
	hashes := os.DirFS(filepath.Join(a.cfg.DataDir, StoreDir, store.HashDir))
	wc, err := witness.New(witness.Options{DataDir: a.cfg.DataDir, Hashes: hashes, Witnesses: ws,
		HTTP: &http.Client{Timeout: a.cfg.HTTPTimeout}, Clock: a.clk, Logger: a.log})
	if err != nil {
		return err
	}
	a.witness = wc
	cl, ok, err := newestCheckpointLine(filepath.Join(a.cfg.DataDir, CheckpointsFile))
	if err != nil || !ok {
		return err
	}
	c, err := signer.ParseSigned(cl.Note)
	if err != nil {
		return nil
	}
	p := merkle.NewProver(hashes)
	defer p.Close()
	if root, err := tlog.TreeHash(int64(c.Size), p); err == nil && root == tlog.Hash(c.Hash) {
		wc.Checkpoint(witness.Checkpoint{Size: c.Size, Root: root, Note: cl.Note})
	}
	return nil
}

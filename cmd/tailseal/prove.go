package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/agent/witness"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/merkle"
	"github.com/tailseal/tailseal/signer/record"
	"golang.org/x/mod/sumdb/tlog"
)

func runProve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("prove", flag.ContinueOnError)
	seq := fs.Uint64("seq", 0, "prove that the record of this `SEQ` is in the log")
	size := fs.Uint64("size", 0, "against the checkpoint of this `SIZE` (default: the newest)")
	from := fs.Uint64("from", 0, "prove that the log of this checkpoint `SIZE` is a prefix of the log of --to")
	to := fs.Uint64("to", 0, "the later checkpoint `SIZE` of --from (default: the newest)")
	asJSON := fs.Bool("json", false, "one JSON object (the bundle `tailseal verify-proof` reads)")
	var origins originFlag
	fs.Var(&origins, "origin", "on a collector's data dir, the `ORIGIN` whose log to prove (needed when it holds several)")
	var flags config.Flags
	dataDirFlag(fs, &flags)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tailseal prove --seq N [--size S] [--json] [--origin O] [--data-dir DIR]
       tailseal prove --from M [--to N] [--json] [--origin O] [--data-dir DIR]

--seq prints an inclusion proof: record N is leaf N-1 of the Merkle tree
that a signed checkpoint of the store in $TAILSEAL_DATA_DIR names (the
newest, or the one of size S). By default as a C2SP tlog-proof (the record
in its extra line), which tailseal verify-proof reads; --json as one object:
origin, size, index, record (the stored line), proof (base64 hashes),
checkpoint (the signed note).

--from prints a consistency proof: the log the checkpoint of size M signs
is a prefix of the log the checkpoint of size N signs (--json: old_size,
new_size, proof, old_checkpoint, new_checkpoint).

Anyone can check either with the checkpoint verifier key alone: tailseal
verify-proof, or golang.org/x/mod/sumdb/tlog's CheckRecord and CheckTree.
Exit 0 with a proof, 1 when none can be made (the record is after the newest
checkpoint or deleted by retention, a checkpoint is not a tree head), 2 on
usage errors.
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	inclusion, consistency := *seq > 0, *from > 0
	if fs.NArg() > 0 || inclusion == consistency || inclusion && *to > 0 || consistency && *size > 0 {
		fmt.Fprintln(os.Stderr, "tailseal prove: give --seq N [--size S], or --from M [--to N] (see tailseal prove --help)")
		return errUsage
	}
	cfg, err := loadConfig(flags)
	if err != nil {
		return err
	}
	dataDir, err := oneOrigin("prove", cfg.DataDir, origins)
	if err != nil {
		return err
	}
	tp, err := openTree("prove", dataDir)
	if err != nil {
		return err
	}
	defer tp.close()
	if inclusion {
		b, err := tp.inclusionFor(*seq, *size)
		if err != nil {
			return tp.fail(err)
		}
		if *asJSON {
			return json.NewEncoder(os.Stdout).Encode(b)
		}
		_, err = os.Stdout.WriteString(b.ProofText())
		return err
	}
	b, err := tp.consistency(*from, *to)
	if err != nil {
		return tp.fail(err)
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(b)
	}
	printConsistency(b)
	return nil
}

// treeStore is one store's tree and checkpoints, for proofs.
type treeStore struct {
	cmd      string
	dataDir  string
	storeDir string
	cps      []record.CheckpointLine
	prover   *merkle.Prover
}

// exitAs is an error whose message says it all, and the exit code it
// maps to (errUsage, errFinding).
type exitAs struct{ err, code error }

func (e exitAs) Error() string   { return e.err.Error() }
func (e exitAs) Unwrap() []error { return []error{e.err, e.code} }

// noProof: no proof can be made (exit 1); usageError: the request cannot
// be answered as given (exit 2).
func noProof(format string, a ...any) error {
	return exitAs{fmt.Errorf(format, a...), errFinding}
}

func usageError(format string, a ...any) error {
	return exitAs{fmt.Errorf(format, a...), errUsage}
}

// oneOrigin is the data dir of the one store a proof is about: dataDir's
// own, or on a collector's data dir the origin --origin names (or its
// only one).
func oneOrigin(cmd, dataDir string, want []string) (string, error) {
	s, err := selectSources(cmd, dataDir, want)
	if err != nil {
		return "", err
	}
	if len(s.list) != 1 {
		names := make([]string, len(s.list))
		for i, src := range s.list {
			names[i] = src.origin
		}
		fmt.Fprintf(os.Stderr, "tailseal %s: %s holds %d origins (%s): name one with --origin\n", cmd, dataDir, len(s.list), strings.Join(names, ", "))
		return "", errUsage
	}
	return s.list[0].dataDir, nil
}

// openTree opens the tree of the one store in dataDir.
func openTree(cmd, dataDir string) (*treeStore, error) {
	storeDir := filepath.Join(dataDir, agent.StoreDir)
	if _, err := os.Stat(storeDir); err != nil {
		fmt.Fprintf(os.Stderr, "tailseal %s: no store in %s (set TAILSEAL_DATA_DIR)\n", cmd, dataDir)
		return nil, errUsage
	}
	cps, err := agent.ReadCheckpoints(dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tailseal %s: %v\n", cmd, err)
		return nil, errUsage
	}
	if len(cps) == 0 {
		fmt.Fprintf(os.Stderr, "tailseal %s: the store in %s has no checkpoint yet: proofs are against signed checkpoints\n", cmd, dataDir)
		return nil, errFinding
	}
	hashes := filepath.Join(storeDir, store.HashDir)
	if _, err := os.Stat(hashes); err != nil {
		fmt.Fprintf(os.Stderr, "tailseal %s: the store keeps no Merkle tree (no %s): a store whose first records were deleted before the tree came has none, and its checkpoints are chain heads\n", cmd, hashes)
		return nil, errFinding
	}
	return &treeStore{cmd: cmd, dataDir: dataDir, storeDir: storeDir, cps: cps, prover: merkle.NewProver(os.DirFS(hashes))}, nil
}

func (tp *treeStore) close() { tp.prover.Close() }

// fail says why no proof was made and maps it to the exit code.
func (tp *treeStore) fail(err error) error {
	fmt.Fprintf(os.Stderr, "tailseal %s: %v\n", tp.cmd, err)
	if errors.Is(err, errUsage) {
		return errUsage
	}
	return errFinding
}

// checkpoint is the checkpoint of the given size (0: the newest), opened
// and held to the stored hashes: it must sign their root.
func (tp *treeStore) checkpoint(size uint64) (record.CheckpointLine, signer.Checkpoint, error) {
	var cl record.CheckpointLine
	found := false
	for _, c := range tp.cps {
		if size == 0 && c.Size >= cl.Size || c.Size == size {
			cl, found = c, true
		}
	}
	if !found {
		return cl, signer.Checkpoint{}, usageError("no checkpoint of size %d in checkpoints.jsonl (the newest is of size %d)", size, tp.cps[len(tp.cps)-1].Size)
	}
	c, err := signer.ParseSigned(cl.Note)
	if err != nil {
		return cl, c, fmt.Errorf("checkpoint of size %d: %w", cl.Size, err)
	}
	cl.Note = withCosignatures(tp.dataDir, cl)
	root, err := tlog.TreeHash(int64(c.Size), tp.prover)
	if err != nil {
		return cl, c, noProof("the stored Merkle hashes do not reach checkpoint %d: %v", c.Size, err)
	}
	if root != tlog.Hash(c.Hash) {
		return cl, c, noProof("checkpoint %d does not sign the root of the stored Merkle hashes: it is a chain head (a store written before the tree), or the store changed (run tailseal verify)", c.Size)
	}
	return cl, c, nil
}

// record reads the stored line of seq.
func (tp *treeStore) record(seq uint64) ([]byte, error) {
	r := store.NewReader(tp.storeDir, seq)
	defer r.Close()
	line, ok, err := r.Next(seq)
	switch {
	case errors.Is(err, store.ErrGone):
		return nil, noProof("record %d was deleted by retention", seq)
	case err != nil:
		return nil, err
	case !ok:
		return nil, noProof("the store has no record %d", seq)
	}
	return append([]byte(nil), line...), nil
}

// inclusionFor proves record seq against the checkpoint of size (0: the
// newest).
func (tp *treeStore) inclusionFor(seq, size uint64) (*merkle.Inclusion, error) {
	cl, c, err := tp.checkpoint(size)
	if err != nil {
		return nil, err
	}
	if seq > c.Size {
		return nil, noProof("record %d is after checkpoint %d, in no signed tree yet: the next checkpoint covers it (TAILSEAL_CHECKPOINT_EVERY records, or TAILSEAL_CHECKPOINT_INTERVAL)", seq, c.Size)
	}
	line, err := tp.record(seq)
	if err != nil {
		return nil, err
	}
	return tp.inclusion(cl, c, seq, line)
}

// inclusion proves the stored line of seq against an opened checkpoint.
func (tp *treeStore) inclusion(cl record.CheckpointLine, c signer.Checkpoint, seq uint64, line []byte) (*merkle.Inclusion, error) {
	leaf := merkle.LeafHash(line)
	if stored, err := tp.prover.Leaf(seq - 1); err == nil && stored != leaf {
		return nil, noProof("record %d is not the line the tree holds (its leaf hash is not the stored one): it was changed after it was stored (run tailseal verify)", seq)
	}
	proof, err := tp.prover.Inclusion(c.Size, seq-1, c.Hash, leaf)
	if err != nil {
		return nil, noProof("record %d: %v", seq, err)
	}
	return &merkle.Inclusion{Origin: c.Origin, Size: c.Size, Index: seq - 1, Record: string(line), Proof: proof, Checkpoint: cl.Note}, nil
}

// consistency proves the checkpoint of size from a prefix of the one of
// size to (0: the newest).
func (tp *treeStore) consistency(from, to uint64) (*merkle.Consistency, error) {
	oldLine, old, err := tp.checkpoint(from)
	if err != nil {
		return nil, err
	}
	newLine, cur, err := tp.checkpoint(to)
	if err != nil {
		return nil, err
	}
	if old.Size > cur.Size {
		return nil, usageError("--from %d is after --to %d", old.Size, cur.Size)
	}
	proof, err := tp.prover.Consistency(cur.Size, old.Size, cur.Hash, old.Hash)
	if err != nil {
		return nil, noProof("%v", err)
	}
	return &merkle.Consistency{OldSize: old.Size, NewSize: cur.Size, Proof: proof, OldCheckpoint: oldLine.Note, NewCheckpoint: newLine.Note}, nil
}

func printConsistency(b *merkle.Consistency) {
	c, _ := signer.ParseSigned(b.NewCheckpoint)
	fmt.Printf("%s: the log of %d records is a prefix of the log of %d records\nproof (%d hashes):\n", c.Origin, b.OldSize, b.NewSize, len(b.Proof))
	for _, h := range b.Proof {
		fmt.Println("  " + h.String())
	}
	for _, n := range []struct {
		what string
		size uint64
		note string
	}{{"old", b.OldSize, b.OldCheckpoint}, {"new", b.NewSize, b.NewCheckpoint}} {
		fmt.Printf("%s checkpoint (size %d):\n  %s\n", n.what, n.size, strings.ReplaceAll(strings.TrimSuffix(n.note, "\n"), "\n", "\n  "))
	}
	fmt.Println("(--json writes the bundle tailseal verify-proof checks)")
}

// withCosignatures adds to a checkpoint's note the witnesses' cosignature
// lines kept for it in cosignatures.jsonl: a bundle then shows, to whoever
// trusts those witnesses, that the checkpoint was witnessed (verify-proof
// checks the log's signature and ignores the others).
func withCosignatures(dataDir string, cl record.CheckpointLine) string {
	data, err := os.ReadFile(filepath.Join(dataDir, witness.CosignaturesFile))
	if err != nil {
		return cl.Note
	}
	body, sigs, _ := strings.Cut(cl.Note, "\n\n")
	out := cl.Note
	for _, l := range strings.Split(string(data), "\n") {
		var c record.CheckpointLine
		if json.Unmarshal([]byte(l), &c) != nil || c.Size != cl.Size {
			continue
		}
		cb, csigs, _ := strings.Cut(c.Note, "\n\n")
		if cb != body {
			continue
		}
		for _, sig := range strings.SplitAfter(csigs, "\n") {
			if sig != "" && !strings.Contains(sigs, sig) && !strings.HasSuffix(out, sig) && !strings.Contains(out, "\n"+sig) {
				out += sig
			}
		}
	}
	return out
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/merkle"
	"golang.org/x/mod/sumdb/note"
)

func runVerifyProof(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify-proof", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tailseal verify-proof FILE

Checks, with the checkpoint verifier key alone (TAILSEAL_VERIFIER: one key,
or several separated by commas or newlines), what tailseal prove and
tailseal export --proofs write: an inclusion proof (a C2SP tlog-proof, or
prove --json's bundle), a consistency proof (prove --from --json), or an
export with proofs, each of whose records must be in the tree its
checkpoint signs. No HMAC key and no store are needed. FILE - reads
standard input. Exit 0 when it holds, 1 when it does not (each record that
fails is named), 2 when FILE is not a proof or no key is given.
`)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "tailseal verify-proof: give one FILE (- for standard input)")
		return errUsage
	}
	cfg, err := loadConfig(config.Flags{})
	if err != nil {
		return err
	}
	if cfg.Verifier == "" {
		fmt.Fprintln(os.Stderr, "tailseal verify-proof: set TAILSEAL_VERIFIER to the checkpoint verifier key you trust (keys/checkpoint.pub of the agent, kept off its host)")
		return errUsage
	}
	vs, err := signer.ParseVerifiers(cfg.Verifier)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailseal verify-proof: TAILSEAL_VERIFIER:", err)
		return errUsage
	}
	var data []byte
	if name := fs.Arg(0); name == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailseal verify-proof:", err)
		return errUsage
	}
	err = checkProofFile(ctx, data, vs)
	switch {
	case errors.Is(err, merkle.ErrBundle):
		fmt.Fprintln(os.Stderr, "tailseal verify-proof:", err)
		return errUsage
	case errors.Is(err, merkle.ErrProof):
		fmt.Fprintln(os.Stderr, "tailseal verify-proof: NOT verified:", err)
		return errFinding
	}
	return err
}

// checkProofFile checks whichever of the bundles data is, and says what
// it proved.
func checkProofFile(ctx context.Context, data []byte, vs []note.Verifier) error {
	if bytes.HasPrefix(data, []byte(merkle.ProofHeader+"\n")) {
		b, err := merkle.ParseProofText(data)
		if err != nil {
			return err
		}
		return checkInclusion(b, vs)
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	var kind struct {
		Index   *uint64 `json:"index"`
		OldSize *uint64 `json:"old_size"`
		Check   string  `json:"checkpoint"`
	}
	if json.Unmarshal(first, &kind) != nil {
		return fmt.Errorf("%w: neither a C2SP tlog-proof nor a JSON bundle", merkle.ErrBundle)
	}
	switch {
	case kind.OldSize != nil:
		var b merkle.Consistency
		if err := strictJSON(first, &b); err != nil {
			return err
		}
		old, cur, err := b.Check(vs)
		if err != nil {
			return err
		}
		fmt.Printf("verified: %s's log of %d records is a prefix of its log of %d records (both checkpoints signed by a trusted key)\n", cur.Origin, old.Size, cur.Size)
		return nil
	case kind.Index != nil:
		var b merkle.Inclusion
		if err := strictJSON(first, &b); err != nil {
			return err
		}
		return checkInclusion(&b, vs)
	case kind.Check != "":
		return checkExport(ctx, data, vs)
	}
	return fmt.Errorf("%w: a JSON object that is no proof bundle", merkle.ErrBundle)
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", merkle.ErrBundle, err)
	}
	return nil
}

func checkInclusion(b *merkle.Inclusion, vs []note.Verifier) error {
	c, err := b.Check(vs)
	if err != nil {
		return err
	}
	fmt.Printf("verified: record seq %d is leaf %d of %s's log of %d records (checkpoint signed by a trusted key)\n", b.Index+1, b.Index, c.Origin, c.Size)
	return nil
}

// checkExport checks an export with proofs: its header's checkpoint, then
// every record against it.
func checkExport(ctx context.Context, data []byte, vs []note.Verifier) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	sc.Scan()
	var h merkle.ExportHeader
	if err := strictJSON(sc.Bytes(), &h); err != nil {
		return err
	}
	c, err := merkle.OpenCheckpoint(h.Checkpoint, vs)
	if err != nil {
		return fmt.Errorf("the export's checkpoint: %w", err)
	}
	n, bad := 0, 0
	for line := 2; sc.Scan(); line++ {
		if line%4096 == 0 && ctx.Err() != nil {
			return interrupted(ctx, "verify-proof")
		}
		var r merkle.ExportRecord
		if err := strictJSON(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		n++
		if err := merkle.CheckRecord(c, h.Origin, h.Size, r.Index, r.Record, r.Proof); err != nil {
			bad++
			fmt.Printf("line %d: %v\n", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %v", merkle.ErrBundle, err)
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d of the %d records are not in %s's log of %d records", merkle.ErrProof, bad, n, c.Origin, c.Size)
	}
	fmt.Printf("verified: all %d records are in %s's log of %d records (checkpoint signed by a trusted key)\n", n, c.Origin, c.Size)
	return nil
}

package merkle

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Inclusion is an inclusion proof bundle: Record, a stored line, is leaf
// Index (its seq - 1) of the tree of Size records whose root the signed
// Checkpoint names. The JSON field names are fixed (`tailseal prove
// --json`); Proof hashes are standard base64.
type Inclusion struct {
	Origin     string      `json:"origin"`
	Size       uint64      `json:"size"`
	Index      uint64      `json:"index"`
	Record     string      `json:"record"`
	Proof      []tlog.Hash `json:"proof"`
	Checkpoint string      `json:"checkpoint"`
}

// Consistency is a consistency proof bundle: the tree of OldSize records
// that OldCheckpoint signs is a prefix of the tree of NewSize records
// that NewCheckpoint signs.
type Consistency struct {
	OldSize       uint64      `json:"old_size"`
	NewSize       uint64      `json:"new_size"`
	Proof         []tlog.Hash `json:"proof"`
	OldCheckpoint string      `json:"old_checkpoint"`
	NewCheckpoint string      `json:"new_checkpoint"`
}

// ExportHeader is the first line of an export with proofs: the checkpoint
// every record after it is proven against.
type ExportHeader struct {
	Origin     string `json:"origin"`
	Size       uint64 `json:"size"`
	Checkpoint string `json:"checkpoint"`
}

// ExportRecord is a line of an export with proofs after the header.
type ExportRecord struct {
	Index  uint64      `json:"index"`
	Record string      `json:"record"`
	Proof  []tlog.Hash `json:"proof"`
}

// Errors of checking a bundle: ErrBundle means it is not one (a usage
// error), ErrProof that it is one and does not hold.
var (
	ErrBundle = errors.New("not a proof bundle")
	ErrProof  = errors.New("the proof does not hold")
)

// OpenCheckpoint verifies a checkpoint note with the trusted keys (other
// signatures on it, a witness's, are ignored) and returns its body.
func OpenCheckpoint(signed string, vs []note.Verifier) (signer.Checkpoint, error) {
	if len(vs) == 0 {
		return signer.Checkpoint{}, fmt.Errorf("%w: no checkpoint verifier key to check the checkpoint with", ErrProof)
	}
	c, err := signer.OpenCheckpoint(signed, vs...)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrProof, err)
	}
	return c, nil
}

// Check verifies the bundle with the trusted checkpoint verifier keys
// and nothing else: the checkpoint's signature, that it is the one the
// bundle names (origin and size), that the record is the line of seq
// Index+1, and the proof from its leaf hash to the root.
func (b *Inclusion) Check(vs []note.Verifier) (signer.Checkpoint, error) {
	c, err := OpenCheckpoint(b.Checkpoint, vs)
	if err != nil {
		return c, err
	}
	if err := CheckRecord(c, b.Origin, b.Size, b.Index, b.Record, b.Proof); err != nil {
		return c, err
	}
	return c, nil
}

// CheckRecord verifies the inclusion of record, leaf index, in the tree
// of the opened checkpoint c, which must be of origin and size.
func CheckRecord(c signer.Checkpoint, origin string, size, index uint64, line string, proof []tlog.Hash) error {
	switch {
	case c.Origin != origin:
		return fmt.Errorf("%w: the bundle says origin %q, its checkpoint %q", ErrProof, origin, c.Origin)
	case c.Size != size:
		return fmt.Errorf("%w: the bundle says size %d, its checkpoint %d", ErrProof, size, c.Size)
	case index >= size:
		return fmt.Errorf("%w: index %d is not in a tree of %d records", ErrProof, index, size)
	}
	if seq, ok := record.Seq([]byte(line)); !ok || seq != index+1 {
		return fmt.Errorf("%w: the record is not the one of seq %d (index %d)", ErrProof, index+1, index)
	}
	if err := tlog.CheckRecord(proof, int64(size), c.Hash, int64(index), LeafHash([]byte(line))); err != nil {
		return fmt.Errorf("%w: record seq %d is not in the tree of %d records checkpoint %d signs: %v", ErrProof, index+1, size, size, err)
	}
	return nil
}

// Check verifies the bundle with the trusted checkpoint verifier keys:
// both checkpoints' signatures and origin, their sizes, and the proof.
func (b *Consistency) Check(vs []note.Verifier) (old, cur signer.Checkpoint, err error) {
	if old, err = OpenCheckpoint(b.OldCheckpoint, vs); err != nil {
		return old, cur, fmt.Errorf("old checkpoint: %w", err)
	}
	if cur, err = OpenCheckpoint(b.NewCheckpoint, vs); err != nil {
		return old, cur, fmt.Errorf("new checkpoint: %w", err)
	}
	switch {
	case old.Origin != cur.Origin:
		return old, cur, fmt.Errorf("%w: the checkpoints are of two logs, %q and %q", ErrProof, old.Origin, cur.Origin)
	case old.Size != b.OldSize || cur.Size != b.NewSize:
		return old, cur, fmt.Errorf("%w: the bundle says sizes %d and %d, its checkpoints %d and %d", ErrProof, b.OldSize, b.NewSize, old.Size, cur.Size)
	case old.Size > cur.Size:
		return old, cur, fmt.Errorf("%w: old size %d is larger than new size %d", ErrProof, old.Size, cur.Size)
	case old.Size == 0:
		return old, cur, nil
	}
	if err := tlog.CheckTree(b.Proof, int64(cur.Size), cur.Hash, int64(old.Size), old.Hash); err != nil {
		return old, cur, fmt.Errorf("%w: the log of size %d does not extend the log of size %d: %v", ErrProof, cur.Size, old.Size, err)
	}
	return old, cur, nil
}

// ProofHeader is the first line of a C2SP tlog-proof.
const ProofHeader = "c2sp.org/tlog-proof@v1"

// ProofText is the bundle as a C2SP tlog-proof (c2sp.org/tlog-proof):
// the record as its extra data, the index, the proof hashes, a blank line
// and the checkpoint.
func (b *Inclusion) ProofText() string {
	var s strings.Builder
	s.WriteString(ProofHeader + "\n")
	s.WriteString("extra " + base64.StdEncoding.EncodeToString([]byte(b.Record)) + "\n")
	s.WriteString("index " + strconv.FormatUint(b.Index, 10) + "\n")
	for _, h := range b.Proof {
		s.WriteString(h.String() + "\n")
	}
	s.WriteString("\n" + b.Checkpoint)
	return s.String()
}

// ParseProofText reads a C2SP tlog-proof whose extra data is the record.
// Origin and Size are taken from the checkpoint's text, unverified: Check
// verifies it.
func ParseProofText(text []byte) (*Inclusion, error) {
	head, cp, ok := bytes.Cut(text, []byte("\n\n"))
	lines := strings.Split(string(head), "\n")
	if !ok || len(lines) < 3 || lines[0] != ProofHeader {
		return nil, fmt.Errorf("%w: not a %s", ErrBundle, ProofHeader)
	}
	extra, ok := strings.CutPrefix(lines[1], "extra ")
	rec, err := base64.StdEncoding.DecodeString(extra)
	if !ok || err != nil {
		return nil, fmt.Errorf("%w: no record in its extra line", ErrBundle)
	}
	idx, ok := strings.CutPrefix(lines[2], "index ")
	index, err := strconv.ParseUint(idx, 10, 64)
	if !ok || err != nil {
		return nil, fmt.Errorf("%w: bad index line %q", ErrBundle, lines[2])
	}
	b := &Inclusion{Index: index, Record: string(rec), Checkpoint: string(cp), Proof: []tlog.Hash{}}
	for _, l := range lines[3:] {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return nil, fmt.Errorf("%w: bad proof line %q", ErrBundle, l)
		}
		b.Proof = append(b.Proof, h)
	}
	c, err := signer.ParseSigned(b.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	b.Origin, b.Size = c.Origin, c.Size
	return b, nil
}

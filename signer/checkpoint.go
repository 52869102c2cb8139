package signer

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is the body of a signed checkpoint note,
// `<origin>\n<size>\n<base64 hash>\n` (C2SP tlog-checkpoint). Hash is the
// RFC 6962 Merkle root of records 1..Size (a tree head, package merkle);
// a store that keeps no tree, and every store before the tree, signs its
// chain head instead: the SHA-256 of line #Size. Only the records tell
// the two apart (verify tries the root first).
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   [32]byte
}

// Text is the note body.
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Hash[:]) + "\n"
}

// ErrBadCheckpoint reports a note that does not verify or parse.
var ErrBadCheckpoint = errors.New("bad checkpoint")

// SignCheckpoint returns the signed note for c.
func SignCheckpoint(c Checkpoint, s note.Signer) (string, error) {
	b, err := note.Sign(&note.Note{Text: c.Text()}, s)
	if err != nil {
		return "", fmt.Errorf("sign checkpoint: %w", err)
	}
	return string(b), nil
}

// OpenCheckpoint verifies a signed note with any of the verifiers and
// parses its body.
func OpenCheckpoint(signed string, vs ...note.Verifier) (Checkpoint, error) {
	n, err := note.Open([]byte(signed), note.VerifierList(vs...))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
	}
	return ParseCheckpoint(n.Text)
}

// ParseSigned parses the body of a signed checkpoint note without
// checking any signature.
func ParseSigned(signed string) (Checkpoint, error) {
	text, _, ok := strings.Cut(signed, "\n\n")
	if !ok {
		return Checkpoint{}, fmt.Errorf("%w: not a signed note", ErrBadCheckpoint)
	}
	return ParseCheckpoint(text + "\n")
}

// ParseCheckpoint parses a checkpoint body without checking any signature.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[3] != "" {
		return Checkpoint{}, fmt.Errorf("%w: body is not origin, size, hash", ErrBadCheckpoint)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: size %q", ErrBadCheckpoint, lines[1])
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != 32 {
		return Checkpoint{}, fmt.Errorf("%w: hash %q", ErrBadCheckpoint, lines[2])
	}
	c := Checkpoint{Origin: lines[0], Size: size}
	copy(c.Hash[:], h)
	return c, nil
}

// ParseVerifiers reads a trusted list of checkpoint verifier keys
// (name+hash+base64): separated by commas or newlines, blank entries and
// lines starting with # left out, a key listed twice kept once. The error
// names the entry (from 1) that is not a key; a verifier key is public, so
// it may say what is wrong with it.
func ParseVerifiers(list string) ([]note.Verifier, error) {
	var out []note.Verifier
	seen := map[string]bool{}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, key := range strings.Split(line, ",") {
			if key = strings.TrimSpace(key); key == "" {
				continue
			}
			n++
			v, err := note.NewVerifier(key)
			if err != nil {
				return nil, fmt.Errorf("entry %d: %w", n, err)
			}
			if !seen[key] {
				seen[key] = true
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// KeyID names a verifier key in messages: name+hash, as in a signed
// note's signature line.
func KeyID(v note.Verifier) string { return fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()) }

// GenerateNoteKey makes an Ed25519 signer and verifier key for name.
func GenerateNoteKey(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

package signer

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"golang.org/x/mod/sumdb/note"
)

// K0 sealed to an auditor: the agent encrypts K0 to an age recipient, puts
// the result in the genesis record and forgets K0, so that only the holder
// of the matching identity, off the host, can check the store's
// signatures. What is sealed is K0 in hex, so that `age -d` prints what
// TAILSEAL_VERIFY_KEY takes.

// ErrNotSealed reports a store whose K0 is not sealed in its genesis.
var ErrNotSealed = errors.New("this store's K0 is not sealed to an age recipient")

// ErrWrongIdentity reports an identity that does not open a sealed K0.
var ErrWrongIdentity = errors.New("the age identity does not open this store's sealed K0")

// ParseRecipient reads an age recipient: X25519 (age1…) or the hybrid
// post-quantum kind (age1pq1…).
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "age1pq1") {
		return age.ParseHybridRecipient(s)
	}
	return age.ParseX25519Recipient(s)
}

// SealK0 encrypts K0 to the recipient and returns the armored text.
func SealK0(k0 []byte, recipient string) (string, error) {
	r, err := ParseRecipient(recipient)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	a := armor.NewWriter(&out)
	w, err := age.Encrypt(a, r)
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(w, hex.EncodeToString(k0)); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	if err := a.Close(); err != nil {
		return "", err
	}
	return out.String(), nil
}

// OpenK0 decrypts a sealed K0 with the identities.
func OpenK0(sealed string, ids []age.Identity) ([]byte, error) {
	if sealed == "" {
		return nil, ErrNotSealed
	}
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(sealed)), ids...)
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return nil, ErrWrongIdentity
	}
	if err != nil {
		return nil, fmt.Errorf("sealed K0: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<10))
	if err != nil {
		return nil, fmt.Errorf("sealed K0: %w", err)
	}
	return ParseHexKey(string(b))
}

// ReadIdentities reads an age identity file (AGE-SECRET-KEY-1… lines;
// empty lines and # comments are skipped), as `age-keygen` and
// `tailseal keygen --age` write it.
func ReadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ids, nil
}

// VerifierKey returns the signed-note verifier key of an Ed25519 signer
// key (PRIVATE+KEY+name+hash+base64), for the genesis record.
func VerifierKey(skey string) (string, error) {
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("not a signed-note signer key")
	}
	name := parts[2]
	if _, err := strconv.ParseUint(parts[3], 16, 32); err != nil {
		return "", errors.New("not a signed-note signer key")
	}
	b, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(b) != 1+ed25519.SeedSize || b[0] != 1 { // 1: note's Ed25519 algorithm byte
		return "", errors.New("not an Ed25519 signed-note signer key")
	}
	pub := ed25519.NewKeyFromSeed(b[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

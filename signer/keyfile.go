package signer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tailseal/tailseal/agent/atomicfile"
)

// KeySize is the length of an HMAC key in bytes.
const KeySize = 32

// ErrBadKey reports a key that is not 64 hex digits.
var ErrBadKey = errors.New("bad key")

// ParseHexKey decodes a 32-byte key written as 64 hex digits.
func ParseHexKey(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: not hex (want %d hex digits)", ErrBadKey, 2*KeySize)
	}
	if len(b) != KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d (%d hex digits)", ErrBadKey, len(b), KeySize, 2*KeySize)
	}
	return b, nil
}

// NewRandomKey returns a fresh random 32-byte key.
func NewRandomKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

// WriteKeyFile writes one line of key material atomically.
func WriteKeyFile(path, content string, perm os.FileMode) error {
	if err := atomicfile.WriteFile(path, []byte(content+"\n"), perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

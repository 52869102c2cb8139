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

// LoadOrCreateKey returns the key in path, creating it with a fresh random
// key (mode 0600) when it does not exist. created reports the latter.
func LoadOrCreateKey(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := ParseHexKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("read key %s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read key: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generate key: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, false, fmt.Errorf("write key: %w", err)
	}
	return key, true, nil
}

package signer

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ParseWitnessKeys reads witnesses' cosignature verifier keys (C2SP
// tlog-cosignature, cosignature/v1: name+hash+base64 of 0x04 and an
// Ed25519 key), separated by commas or newlines, in order. The error
// names the entry (from 1) that is not one.
func ParseWitnessKeys(list string) ([]note.Verifier, error) {
	var out []note.Verifier
	n := 0
	for _, line := range strings.Split(list, "\n") {
		for _, key := range strings.Split(line, ",") {
			if key = strings.TrimSpace(key); key == "" {
				continue
			}
			n++
			v, err := cosignatureKey(key)
			if err != nil {
				return nil, fmt.Errorf("entry %d: not a cosignature/v1 verifier key: %w", n, err)
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// cosignatureKey parses one cosignature/v1 key: its algorithm byte must
// be 0x04 and its hash the one of its name and key (the library takes
// an Ed25519 note key for one too, and does not hold a key to its hash:
// a mistyped key would verify nothing, silently).
func cosignatureKey(key string) (note.Verifier, error) {
	parts := strings.SplitN(key, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("want name+hash+base64")
	}
	b, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(b) != 33 || b[0] != 4 {
		return nil, errors.New("its key is not 0x04 and an Ed25519 public key")
	}
	v, err := tdnote.NewVerifierForCosignatureV1(key)
	if err != nil {
		return nil, err
	}
	if fmt.Sprintf("%08x", v.KeyHash()) != parts[1] {
		return nil, fmt.Errorf("its hash %s is not that of its name and key (%08x)", parts[1], v.KeyHash())
	}
	return v, nil
}

package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"os"
	"time"

	"github.com/tailseal/tailseal/agent/atomicfile"
)

// evolveLabel is the fixed message of the one-way key step.
const evolveLabel = "tailseal epoch key v1"

// Evolve returns K(e+1) = HMAC-SHA256(K(e), label). Knowing K(e+1) gives no
// way back to K(e), so a key taken from the host later cannot sign earlier
// epochs.
func Evolve(k []byte) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(evolveLabel))
	return m.Sum(nil)
}

// Derive returns K(epoch) from K0.
func Derive(k0 []byte, epoch uint64) []byte {
	k := k0
	for range epoch {
		k = Evolve(k)
	}
	return k
}

// SealState is the agent's persisted sealing state: the current epoch, its
// key and when it ends. Earlier keys are never stored.
type SealState struct {
	Epoch  uint64    `json:"epoch"`
	Key    string    `json:"key"` // hex K(epoch)
	EndsAt time.Time `json:"ends_at"`
	// Sealed says K0 of this chain exists only sealed in the store's
	// genesis record: a state without a store is then of no use.
	Sealed bool `json:"sealed,omitempty"`
}

// EpochKey is a forward-secure Key: it signs with K(epoch) and evolves at
// each epoch end, persisting the new state before the old key is dropped.
type EpochKey struct {
	path     string
	interval time.Duration
	state    SealState
	key      []byte
	mac      hash.Hash
}

// NewSealState returns the state of epoch 0 for a fresh K0.
func NewSealState(k0 []byte, now time.Time, interval time.Duration) SealState {
	return SealState{Epoch: 0, Key: hex.EncodeToString(k0), EndsAt: now.Add(interval)}
}

// WriteSealState persists st atomically with mode 0600.
func WriteSealState(path string, st SealState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write seal state: %w", err)
	}
	return nil
}

// ReadSealState reads the sealing state in path.
func ReadSealState(path string) (SealState, error) {
	var st SealState
	b, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("read seal state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("seal state %s: %w", path, err)
	}
	return st, nil
}

// LoadEpochKey reads the sealing state in path.
func LoadEpochKey(path string, interval time.Duration) (*EpochKey, error) {
	st, err := ReadSealState(path)
	if err != nil {
		return nil, err
	}
	k, err := NewEpochKey(path, interval, st)
	if err != nil {
		return nil, fmt.Errorf("seal state %s: %w", path, err)
	}
	return k, nil
}

// Epoch implements Key.
func (k *EpochKey) Epoch() uint64 { return k.state.Epoch }

// MAC implements Key.
func (k *EpochKey) MAC(dst, msg []byte) []byte {
	k.mac.Reset()
	k.mac.Write(msg)
	return k.mac.Sum(dst)
}

// Due reports how many epochs have ended by now (0: the epoch goes on).
func (k *EpochKey) Due(now time.Time) uint64 {
	if now.Before(k.state.EndsAt) {
		return 0
	}
	return 1 + uint64(now.Sub(k.state.EndsAt)/k.interval)
}

// Sealed reports a chain whose K0 is sealed in its genesis record.
func (k *EpochKey) Sealed() bool { return k.state.Sealed }

// EndsAt is when the current epoch ends.
func (k *EpochKey) EndsAt() time.Time { return k.state.EndsAt }

// Advance moves n epochs forward: the new state is made durable first, then
// the old key is overwritten in memory.
func (k *EpochKey) Advance(n uint64) error {
	next := k.key
	for range n {
		next = Evolve(next)
	}
	st := SealState{Epoch: k.state.Epoch + n, Key: hex.EncodeToString(next),
		EndsAt: k.state.EndsAt.Add(time.Duration(n) * k.interval), Sealed: k.state.Sealed}
	if err := WriteSealState(k.path, st); err != nil {
		return err
	}
	clear(k.key)
	k.state, k.key, k.mac = st, next, hmac.New(sha256.New, next)
	return nil
}

// NewEpochKey returns a key for st without writing it: the next Advance
// writes the state to path. A key sealed away (K0 in the genesis record)
// is held so, in memory only, until it has signed the genesis.
func NewEpochKey(path string, interval time.Duration, st SealState) (*EpochKey, error) {
	key, err := ParseHexKey(st.Key)
	if err != nil {
		return nil, err
	}
	return &EpochKey{path: path, interval: interval, state: st, key: key, mac: hmac.New(sha256.New, key)}, nil
}

package record

import (
	"encoding/json"
	"fmt"
)

// TypeGenesis is the first record of a store: details GenesisDetails.
const TypeGenesis = "genesis"

// GenesisDetails is the details object of the genesis record, seq 1 of
// every store created since origins exist. It names the store for good and
// carries what a verifier off the host needs: the checkpoint verifier key
// and, when the agent was given the auditor's age recipient, K0 sealed to
// it. The record is signed with K0 itself.
type GenesisDetails struct {
	Origin  string `json:"origin"`
	Created string `json:"created"` // RFC 3339, UTC
	Version string `json:"version"` // of the agent that created the store
	// CheckpointVerifier is the signed-note verifier key of the
	// store's checkpoints (name+hash+base64).
	CheckpointVerifier string `json:"checkpoint_verifier"`
	// EpochSeconds is how long one forward-secure key lives (0: a static
	// key, no epochs).
	EpochSeconds int64 `json:"epoch_seconds"`
	// SealedK0 is the hex K0, age-encrypted (armored) to SealedTo, the
	// auditor's recipient; empty when no recipient was configured.
	SealedK0 string `json:"sealed_k0,omitempty"`
	SealedTo string `json:"sealed_to,omitempty"`
	// NextEpoch is 1 when K0 is sealed: the genesis ends epoch 0, whose
	// key was never written to disk, as a seal record would.
	NextEpoch uint64 `json:"next_epoch,omitempty"`
}

// ParseGenesis returns the details of a genesis record line.
func ParseGenesis(line []byte) (GenesisDetails, error) {
	var d GenesisDetails
	m, err := ParseMeta(line)
	if err != nil {
		return d, err
	}
	if m.EventType != TypeGenesis {
		return d, fmt.Errorf("%w: a %q record, not a genesis record", ErrMalformed, m.EventType)
	}
	if err := json.Unmarshal(m.Details, &d); err != nil || d.Origin == "" {
		return d, fmt.Errorf("%w: genesis details %s", ErrMalformed, m.Details)
	}
	return d, nil
}

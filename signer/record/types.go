package record

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Event types with a meaning to tailseal. The agent writes the first group
// about itself; readers give the second group, written by applications,
// their own treatment (errors, timings).
const (
	TypeMalformed  = "malformed"  // a source line that is not a JSON object
	TypeSeal       = "seal"       // an epoch ended; details: SealDetails
	TypeCheckpoint = "checkpoint" // a signed checkpoint; details: CheckpointDetails
	TypeRetention  = "retention"  // retention is deleting old segments; details: RetentionDetails
	TypeStop       = "stop"       // the agent stopped cleanly after this; details: {"reason":…}
	TypeIndex      = "index"      // a segment was compressed and indexed; details: IndexDetails

	TypeError       = "error"
	TypePerformance = "performance"
)

// Internal reports an event type the agent writes about itself, which is
// not an application event (a malformed line is one: it came from the
// application).
func Internal(eventType []byte) bool {
	switch string(eventType) {
	case TypeGenesis, TypeSeal, TypeCheckpoint, TypeRetention, TypeStop, TypeIndex:
		return true
	}
	return false
}

// SealDetails is the details object of a seal record: the epoch that
// ended, signed with its key, names the next one.
type SealDetails struct {
	Epoch     uint64 `json:"epoch"`
	NextEpoch uint64 `json:"next_epoch"`
}

// CheckpointDetails is the details object of a checkpoint record: the
// signed note for the first Size records.
type CheckpointDetails struct {
	Size uint64 `json:"size"`
	Note string `json:"note"`
}

// RetentionDetails is the details object of a retention record, written
// (and made durable) before the segments it names are deleted: every
// record up to DeletedThrough is gone by retention, not by tampering.
type RetentionDetails struct {
	DeletedThrough uint64   `json:"deleted_through"`
	Segments       []string `json:"segments"`
	Reason         string   `json:"reason"`
	// Genesis is the SHA-256 (standard base64) of the store's genesis
	// record, whose copy (genesis.json) speaks for it once it is deleted.
	Genesis string `json:"genesis,omitempty"`
}

// ParseRetention returns the details of a retention record line.
func ParseRetention(line []byte) (RetentionDetails, error) {
	var d RetentionDetails
	m, err := ParseMeta(line)
	if err != nil {
		return d, err
	}
	if m.EventType != TypeRetention {
		return d, fmt.Errorf("%w: a %q record, not a retention record", ErrMalformed, m.EventType)
	}
	if err := json.Unmarshal(m.Details, &d); err != nil || d.DeletedThrough == 0 {
		return d, fmt.Errorf("%w: retention details %s", ErrMalformed, m.Details)
	}
	return d, nil
}

// IndexDetails is the details object of an index record: the SHA-256
// (standard base64) of the line store/index got for a compressed segment,
// so that an edited index does not pass verify.
type IndexDetails struct {
	Segment string `json:"segment"`
	SHA256  string `json:"sha256"`
}

// ParseIndex returns the details of an index record line.
func ParseIndex(line []byte) (IndexDetails, error) {
	var d IndexDetails
	m, err := ParseMeta(line)
	if err != nil {
		return d, err
	}
	if m.EventType != TypeIndex {
		return d, fmt.Errorf("%w: a %q record, not an index record", ErrMalformed, m.EventType)
	}
	if err := json.Unmarshal(m.Details, &d); err != nil || d.Segment == "" {
		return d, fmt.Errorf("%w: index details %s", ErrMalformed, m.Details)
	}
	return d, nil
}

// CheckpointLine is one line of checkpoints.jsonl.
type CheckpointLine struct {
	Size uint64 `json:"size"`
	Time string `json:"time"`
	Note string `json:"note"`
}

// ParseSeal returns the details of a seal record line.
func ParseSeal(line []byte) (SealDetails, error) {
	var d SealDetails
	m, err := ParseMeta(line)
	if err != nil {
		return d, err
	}
	if m.EventType != TypeSeal {
		return d, fmt.Errorf("%w: a %q record, not a seal", ErrMalformed, m.EventType)
	}
	if err := json.Unmarshal(m.Details, &d); err != nil || d.NextEpoch <= d.Epoch {
		return d, fmt.Errorf("%w: seal details %s", ErrMalformed, m.Details)
	}
	return d, nil
}

// PseudonymHex is how many hex digits a hash-mode pseudonym carries.
const PseudonymHex = 12

// NextPseudonym finds the first pseudonym the anonymizer writes in hash
// mode, <tag:12 hex digits>, in b, and returns it and what follows it. A
// tag is lower-case letters, digits and '_'.
func NextPseudonym(b []byte) (tok, rest []byte, ok bool) {
	for {
		i := bytes.IndexByte(b, '<')
		if i < 0 {
			return nil, nil, false
		}
		b = b[i:]
		j := 1
		for j < len(b) && isTagByte(b[j]) {
			j++
		}
		if j > 1 && len(b) >= j+PseudonymHex+2 && b[j] == ':' && b[j+PseudonymHex+1] == '>' && isHex(b[j+1:j+PseudonymHex+1]) {
			return b[:j+PseudonymHex+2], b[j+PseudonymHex+2:], true
		}
		b = b[1:]
	}
}

// Placeholders calls fn for every placeholder the anonymizer may have
// written in b, in order: a pseudonym <tag:hex> (hashed, with its tag) and
// a bare <word> of lower-case letters and '_' (what redact mode writes;
// whether a word is one of its tags is the caller's to decide, so that
// "<b>" in a note need not count). stats and the index count them so.
func Placeholders(b []byte, fn func(tag []byte, hashed bool)) {
	for {
		i := bytes.IndexByte(b, '<')
		if i < 0 {
			return
		}
		b = b[i:]
		if n := pseudonymAt(b); n > 0 {
			fn(b[1:n-PseudonymHex-2], true)
			b = b[n:]
			continue
		}
		j := 1
		for j < len(b) && (b[j] >= 'a' && b[j] <= 'z' || b[j] == '_') {
			j++
		}
		if j > 1 && j < len(b) && b[j] == '>' {
			fn(b[1:j], false)
		}
		b = b[1:]
	}
}

// pseudonymAt is the length of the pseudonym b starts with, 0 if none.
func pseudonymAt(b []byte) int {
	j := 1
	for j < len(b) && isTagByte(b[j]) {
		j++
	}
	if j > 1 && len(b) >= j+PseudonymHex+2 && b[j] == ':' && b[j+PseudonymHex+1] == '>' && isHex(b[j+1:j+PseudonymHex+1]) {
		return j + PseudonymHex + 2
	}
	return 0
}

// PseudonymTag returns the tag of a token NextPseudonym found.
func PseudonymTag(tok []byte) []byte { return tok[1 : len(tok)-PseudonymHex-2] }

func isTagByte(c byte) bool { return c >= 'a' && c <= 'z' || c == '_' || c >= '0' && c <= '9' }

func isHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"

	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
)

// parsed holds the fields of one stored line.
type parsed struct {
	ok        bool
	seq       uint64
	epoch     uint64
	prev      []byte // base64 text
	msg, sig  []byte
	eventType []byte
}

func parse(line []byte) parsed {
	var p parsed
	var ok bool
	if p.seq, ok = record.Seq(line); !ok {
		return p
	}
	if p.msg, p.sig, ok = record.SplitSigned(line); !ok {
		return p
	}
	if p.epoch, p.prev, ok = record.ChainTail(p.msg); !ok {
		return p
	}
	p.eventType, _ = record.StringField(line, "event_type")
	p.ok = true
	return p
}

func sealNext(line []byte) uint64 {
	d, err := record.ParseSeal(line)
	if err != nil {
		return 0
	}
	return d.NextEpoch
}

// maxEpochJump bounds how far a key is derived forward for one record (4M
// epochs: 120 years of 15-minute epochs), so that a record claiming epoch
// 10^12 cannot make verification run for days. Such a record fails.
const maxEpochJump = 1 << 22

// epochKeys verifies signatures under K(epoch), deriving keys forward from
// K0 and keeping the last one.
type epochKeys struct {
	k0     []byte
	epoch  uint64
	key    []byte
	mac    hash.Hash // nil: no key derived yet
	macSum [32]byte
}

// verifies checks a line's signature under the key of its epoch.
func (k *epochKeys) verifies(p *parsed) bool { return k.at(p.epoch) && k.macOK(p) }

// verdict is verifies, taking a hasher's verdict where it has one: the
// keys are derived as verifies derives them either way, so that a later
// line's derivation starts from the same key.
func (k *epochKeys) verdict(p *parsed, s sigVerdict) bool {
	if !k.at(p.epoch) {
		return false
	}
	if s == sigUnchecked {
		return k.macOK(p)
	}
	return s == sigGood
}

// at makes K(epoch) the key, deriving it from the last one or, for an
// earlier epoch, from K0; false when that is more than maxEpochJump
// steps.
func (k *epochKeys) at(epoch uint64) bool {
	if k.mac != nil && epoch == k.epoch {
		return true
	}
	from, key := uint64(0), k.k0
	if k.mac != nil && epoch > k.epoch {
		from, key = k.epoch, k.key
	}
	if epoch-from > maxEpochJump {
		return false
	}
	key = signer.Derive(key, epoch-from)
	k.epoch, k.key, k.mac = epoch, key, hmac.New(sha256.New, key)
	return true
}

// macOK checks a line's signature under the current key.
func (k *epochKeys) macOK(p *parsed) bool {
	k.mac.Reset()
	k.mac.Write(p.msg)
	sum := k.mac.Sum(k.macSum[:0])
	var want [32]byte
	if len(p.sig) != 64 {
		return false
	}
	if _, err := hex.Decode(want[:], p.sig); err != nil {
		return false
	}
	return hmac.Equal(sum, want[:])
}

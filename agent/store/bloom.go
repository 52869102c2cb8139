package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
)

// Bloom is a Bloom filter over byte strings, built while a segment is
// indexed and stored in the index. A miss is certain; a hit is wrong
// with probability about FalsePositiveRate.
type Bloom struct {
	k    uint32
	bits []uint64
}

// FalsePositiveRate is what the filters are sized for.
const FalsePositiveRate = 0.01

// Hash is the 64-bit FNV-1a of b: stable across processes and versions, as
// the index is on disk.
func Hash(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// newBloom returns an empty filter with room for n values at
// FalsePositiveRate. Its size is a power of two so that fold can halve it.
func newBloom(n int) *Bloom {
	want := uint64(math.Ceil(float64(max(n, 1)) * -math.Log(FalsePositiveRate) / (math.Ln2 * math.Ln2)))
	words := uint64(1)
	for words*64 < want {
		words *= 2
	}
	return &Bloom{k: bloomK, bits: make([]uint64, words)}
}

// bloomK hash functions are optimal for FalsePositiveRate 0.01.
const bloomK = 7

// position is the i-th bit of h, by double hashing (Kirsch and Mitzenmacher):
// h1 + i*h2 modulo the size, a power of two.
func (b *Bloom) position(h uint64, i uint32) uint64 {
	return (h&0xffffffff + uint64(i)*(h>>32|1)) & (uint64(len(b.bits))*64 - 1)
}

// Add puts v in the set.
func (b *Bloom) Add(v []byte) { b.addHash(Hash(v)) }

// addHash puts the value of hash h in the set.
func (b *Bloom) addHash(h uint64) {
	for i := range b.k {
		p := b.position(h, i)
		b.bits[p/64] |= 1 << (p % 64)
	}
}

// MayContain reports whether v may be in the set; false is certain.
func (b *Bloom) MayContain(v []byte) bool {
	return b.mayContainHash(Hash(v))
}

// mayContainHash is MayContain for the value of hash h.
func (b *Bloom) mayContainHash(h uint64) bool {
	if b == nil || len(b.bits) == 0 {
		return true // no filter: cannot rule anything out
	}
	for i := range b.k {
		p := b.position(h, i)
		if b.bits[p/64]&(1<<(p%64)) == 0 {
			return false
		}
	}
	return true
}

// fold halves the filter while it stays within FalsePositiveRate: a bit
// position modulo m/2 is the position modulo m, folded, so the OR of the
// two halves is the filter the smaller size would have built. Filters are
// sized for the most values a segment could hold and folded to what it did.
func (b *Bloom) fold() {
	for len(b.bits) > 1 {
		half := len(b.bits) / 2
		set := 0
		for i := range half {
			set += bits.OnesCount64(b.bits[i] | b.bits[i+half])
		}
		if math.Pow(float64(set)/float64(half*64), float64(b.k)) > FalsePositiveRate {
			return
		}
		for i := range half {
			b.bits[i] |= b.bits[i+half]
		}
		b.bits = b.bits[:half:half]
	}
}

type bloomJSON struct {
	K    uint32 `json:"k"`
	Bits []byte `json:"bits"` // little-endian words, base64 in JSON
}

func (b *Bloom) MarshalJSON() ([]byte, error) {
	raw := make([]byte, 0, 8*len(b.bits))
	for _, w := range b.bits {
		raw = binary.LittleEndian.AppendUint64(raw, w)
	}
	return json.Marshal(bloomJSON{K: b.k, Bits: raw})
}

func (b *Bloom) UnmarshalJSON(data []byte) error {
	var j bloomJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if n := len(j.Bits) / 8; j.K == 0 || j.K > 32 || len(j.Bits)%8 != 0 || n&(n-1) != 0 {
		return fmt.Errorf("bloom filter: k=%d with %d bytes", j.K, len(j.Bits))
	}
	b.k = j.K
	b.bits = make([]uint64, len(j.Bits)/8)
	for i := range b.bits {
		b.bits[i] = binary.LittleEndian.Uint64(j.Bits[8*i:])
	}
	return nil
}

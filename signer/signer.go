// Package signer owns the tamper-evident chain: it numbers stored lines,
// links each to the previous one by SHA-256 and signs it with HMAC-SHA256
// under the key of the current epoch.
//
// signer/... defines and checks what the agent produces, so it depends on
// no producer and no consumer: it imports signer/... and agent/atomicfile,
// no other agent/... package, no sinks/... and no cmd/...; signer/record,
// the record contract, imports only the standard library
// (cmd/tailseal/imports_test.go keeps the rules true).
package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"

	"github.com/tailseal/tailseal/signer/record"
)

// Key signs messages for one epoch. It is the seam where forward-secure,
// evolving keys plug in; a Key is used from one goroutine at a time.
type Key interface {
	// Epoch is the number recorded in the "epoch" field of lines signed now.
	Epoch() uint64
	// MAC appends HMAC-SHA256(key of Epoch(), msg) to dst.
	MAC(dst, msg []byte) []byte
}

// StaticKey is one HMAC key that never changes (epoch 0). Anyone who holds
// it can re-sign the whole history; see the README.
type StaticKey struct{ mac hash.Hash }

// NewStaticKey returns a Key for a fixed secret.
func NewStaticKey(secret []byte) *StaticKey {
	return &StaticKey{mac: hmac.New(sha256.New, secret)}
}

// Epoch implements Key.
func (k *StaticKey) Epoch() uint64 { return 0 }

// MAC implements Key.
func (k *StaticKey) MAC(dst, msg []byte) []byte {
	k.mac.Reset()
	k.mac.Write(msg)
	return k.mac.Sum(dst)
}

// Chain appends signed lines. It is not safe for concurrent use.
type Chain struct {
	key     Key
	seq     uint64 // seq of the last line appended
	prev    [sha256.Size]byte
	hasPrev bool
	start   int
	scratch [64]byte
}

// NewChain continues a chain after line lastSeq whose bytes hashed to prev
// (lastSeq 0 starts a new chain and prev is ignored).
func NewChain(key Key, lastSeq uint64, prev [sha256.Size]byte) *Chain {
	return &Chain{key: key, seq: lastSeq, prev: prev, hasPrev: lastSeq > 0}
}

// Seq is the seq of the last line appended.
func (c *Chain) Seq() uint64 { return c.seq }

// Begin appends the opening of the next line, `{"seq":N,`, to dst; the
// caller then appends the body fields and calls Finish with the result.
func (c *Chain) Begin(dst []byte) []byte {
	c.start = len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, c.seq+1, 10)
	return append(dst, ',')
}

// Finish appends epoch, prev and signature and the newline, and advances the
// chain.
func (c *Chain) Finish(dst []byte) []byte {
	dst = append(dst, `,"epoch":`...)
	dst = strconv.AppendUint(dst, c.key.Epoch(), 10)
	dst = append(dst, `,"prev":"`...)
	if c.hasPrev {
		dst = base64.StdEncoding.AppendEncode(dst, c.prev[:])
	}
	dst = append(dst, '"')
	mac := c.key.MAC(c.scratch[:0], dst[c.start:])
	dst = append(dst, record.SignatureSep...)
	dst = hex.AppendEncode(dst, mac)
	dst = append(dst, `"}`...)
	c.prev = sha256.Sum256(dst[c.start:])
	c.hasPrev = true
	c.seq++
	return append(dst, '\n')
}

// LineHash is the SHA-256 that the next line's prev field commits to.
func LineHash(line []byte) [sha256.Size]byte { return sha256.Sum256(line) }

// Prev is the hash of the last line appended.
func (c *Chain) Prev() [sha256.Size]byte { return c.prev }

// Package record is the record contract (DESIGN.md, Record) in one leaf
// package: the field order of a stored line, how the signed message is
// delimited, the fixed leading fields (Head), the event types the agent
// writes and their details, the pseudonym token syntax, and the JSON byte
// primitives (escaping, canonical strings, top-level fields) that writers
// and readers share. The writer, the verifier, the sinks and the queries
// use it; nobody else parses a stored line. It imports only the standard
// library.
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// SignatureSep precedes the signature, which is always the last field. The
// signed message is the line from '{' up to, not including, this separator.
const SignatureSep = `,"signature":"`

// ErrMalformed reports a stored line that does not have the record layout.
var ErrMalformed = errors.New("malformed record")

// Source names the bytes of the source file a record came from.
type Source struct {
	File   string `json:"file"`
	ID     string `json:"id"`     // device:inode:fingerprint of the source file
	Offset int64  `json:"offset"` // first byte of the line in the source file
	Length int64  `json:"length"` // bytes consumed, including the newline
}

// End is the offset just after the line.
func (s Source) End() int64 { return s.Offset + s.Length }

// Meta is what recovery and verification need from a stored line.
type Meta struct {
	Seq       uint64          `json:"seq"`
	Timestamp string          `json:"timestamp"`
	EventType string          `json:"event_type"`
	Details   json.RawMessage `json:"details"`
	Source    *Source         `json:"source"`
	Epoch     uint64          `json:"epoch"`
	Prev      string          `json:"prev"`
	Signature string          `json:"signature"`
}

// ParseMeta decodes a stored line (without its newline). It is meant for the
// few lines read at startup; hot paths use the Split* helpers.
func ParseMeta(line []byte) (Meta, error) {
	var m Meta
	if len(line) == 0 || line[0] != '{' || !bytes.HasPrefix(line, []byte(`{"seq":`)) {
		return m, fmt.Errorf("%w: does not start with {\"seq\"", ErrMalformed)
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if m.Seq == 0 {
		return m, fmt.Errorf("%w: seq 0", ErrMalformed)
	}
	if _, _, ok := SplitSigned(line); !ok {
		return m, fmt.Errorf("%w: signature is not the last field", ErrMalformed)
	}
	return m, nil
}

// SplitSigned returns the signed message and the hex signature of a line.
func SplitSigned(line []byte) (msg, sig []byte, ok bool) {
	// The agent's signature is 64 hex digits: look there first.
	if i := len(line) - 2 - 64 - len(SignatureSep); i > 0 && string(line[i:i+len(SignatureSep)]) == SignatureSep &&
		line[len(line)-2] == '"' && line[len(line)-1] == '}' {
		return line[:i], line[i+len(SignatureSep) : len(line)-2], true
	}
	i := bytes.LastIndex(line, []byte(SignatureSep))
	if i < 0 || len(line) < i+len(SignatureSep)+2 || line[len(line)-2] != '"' || line[len(line)-1] != '}' {
		return nil, nil, false
	}
	return line[:i], line[i+len(SignatureSep) : len(line)-2], true
}

// AppendSource appends `,"source":{...}` for s.
func AppendSource(dst []byte, file, id string, offset, length int64) []byte {
	dst = append(dst, `,"source":{"file":`...)
	dst = append(dst, file...) // already a JSON string token
	dst = append(dst, `,"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","offset":`...)
	dst = strconv.AppendInt(dst, offset, 10)
	dst = append(dst, `,"length":`...)
	dst = strconv.AppendInt(dst, length, 10)
	return append(dst, '}')
}

// Seq extracts the seq of a stored line without decoding it.
func Seq(line []byte) (uint64, bool) {
	const p = `{"seq":`
	if !bytes.HasPrefix(line, []byte(p)) {
		return 0, false
	}
	var n uint64
	i := len(p)
	for ; i < len(line) && line[i] >= '0' && line[i] <= '9'; i++ {
		n = n*10 + uint64(line[i]-'0')
	}
	if i == len(p) || i >= len(line) || line[i] != ',' {
		return 0, false
	}
	return n, true
}

// StringField returns the raw content (between the quotes, still escaped)
// of the first top-level string field named key. Records put their fixed
// fields before details, so the first match for timestamp and event_type is
// the top-level one.
func StringField(line []byte, key string) ([]byte, bool) {
	var pat [32]byte
	p := append(append(append(pat[:0], ",\""...), key...), "\":\""...)
	i := bytes.Index(line, p)
	if i < 0 {
		return nil, false
	}
	v := line[i+len(p):]
	for j := 0; j < len(v); j++ {
		switch v[j] {
		case '\\':
			j++
		case '"':
			return v[:j], true
		}
	}
	return nil, false
}

var sourceField = []byte(`,"source":{"file":`)

// SourceStart returns where `,"source":{"file":` starts in a stored line,
// or -1. The source object follows details, so the last match is the
// record's own.
func SourceStart(line []byte) int { return LastIndexComma(line, sourceField) }

// LastIndexComma is bytes.LastIndex for a sep that starts with a comma, made
// for fields a few commas from the end of a record: it goes back comma by
// comma instead of hashing the whole line (Rabin-Karp), which profiles of
// the indexer and of verify showed at 4-9 %.
func LastIndexComma(b, sep []byte) int {
	for end := len(b); ; {
		i := bytes.LastIndexByte(b[:end], ',')
		if i < 0 || bytes.HasPrefix(b[i:], sep) {
			return i
		}
		end = i
	}
}

// SourceID returns the id inside the record's source object.
func SourceID(line []byte) ([]byte, bool) {
	i := SourceStart(line)
	if i < 0 {
		return nil, false
	}
	return StringField(line[i+len(sourceField)-1:], "id")
}

var epochField = []byte(`,"epoch":`)

// ChainTail reads `,"epoch":N,"prev":"<base64 or nothing>"`, which ends a
// record's signed message (SplitSigned), without decoding the line: the
// epoch, and prev still as base64 text.
func ChainTail(msg []byte) (epoch uint64, prev []byte, ok bool) {
	tail := msg[max(0, len(msg)-96):]
	i := LastIndexComma(tail, epochField)
	if i < 0 {
		return 0, nil, false
	}
	rest := tail[i+len(epochField):]
	j := bytes.IndexByte(rest, ',')
	const prevKey = `,"prev":"`
	if j < 0 || len(rest) < j+len(prevKey)+1 || !bytes.HasPrefix(rest[j:], []byte(prevKey)) || rest[len(rest)-1] != '"' {
		return 0, nil, false
	}
	e, err := strconv.ParseUint(string(rest[:j]), 10, 64)
	if err != nil {
		return 0, nil, false
	}
	return e, rest[j+len(prevKey) : len(rest)-1], true
}

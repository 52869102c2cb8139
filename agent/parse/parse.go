// Package parse owns turning one source line into the body of an event: the
// seed fields of a JSON object, or a "malformed" event that carries the raw
// text. It never drops a line and never fails.
package parse

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tailseal/tailseal/signer/record"
)

// MaxDepth bounds the nesting of accepted JSON; deeper input is malformed.
const MaxDepth = 128

// RawCap bounds how many bytes of a malformed line are kept in the event.
const RawCap = 8 << 10

// TimeLayout is how the agent writes times it supplies itself.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// Reasons a line is malformed.
const (
	ReasonNotJSON   = "not json"
	ReasonNotObject = "not an object"
	ReasonUTF8      = "invalid utf-8"
	ReasonTooLong   = "too long"
	ReasonNUL       = "nul byte"
	ReasonDepth     = "nested too deeply"
)

// Kind tells what Append produced.
type Kind uint8

const (
	Event     Kind = iota // a JSON object
	Malformed             // anything else
)

var seedKeys = [...]string{"timestamp", "event_type", "actor", "lead_id", "workflow"}

// Line is one source line as the tailer delivers it.
type Line struct {
	Data      []byte // the line without its newline; a prefix if Truncated
	Length    int64  // bytes the whole line has in the source, newline excluded
	Truncated bool   // the line was longer than the limit
}

// Append appends the event body for line to dst:
//
//	"timestamp":…,"event_type":…,"actor":…,"lead_id":…,"workflow":…,"details":{…}
//
// readTime fills a missing timestamp and stamps malformed lines.
func Append(dst []byte, line Line, readTime time.Time) ([]byte, Kind) {
	data := line.Data
	reason := ""
	switch {
	case line.Truncated:
		reason = ReasonTooLong
	case bytes.IndexByte(data, 0) >= 0:
		reason = ReasonNUL
	case !utf8.Valid(data):
		reason = ReasonUTF8
	}
	if reason == "" {
		valid, depth := validate(data)
		data = trimSpace(data)
		switch {
		case !valid:
			reason = ReasonNotJSON
		case data[0] != '{':
			reason = ReasonNotObject
		case depth > MaxDepth:
			reason = ReasonDepth
		default:
			return appendObject(dst, data, readTime), Event
		}
	}
	return appendMalformed(dst, line, reason, readTime), Malformed
}

func appendObject(dst, obj []byte, readTime time.Time) []byte {
	var seed [len(seedKeys)][]byte // raw JSON values of the seed fields
	var details []byte             // raw value of "details"
	var extra [][2][]byte          // other top-level members: raw key, raw value
	var extraBuf [8][2][]byte
	extra = extraBuf[:0]

	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] != '}' {
		kEnd := record.SkipString(obj, i)
		key := obj[i:kEnd]
		i = skipSpace(obj, kEnd)
		i = skipSpace(obj, i+1) // ':'
		vEnd := record.SkipValue(obj, i)
		val := obj[i:vEnd]
		i = skipSpace(obj, vEnd)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		name := keyName(key)
		switch {
		case name == "details":
			if val[0] == '{' {
				details = val
			} else {
				extra = append(extra, [2][]byte{key, val})
			}
			continue
		case val[0] == 'n': // null seed values count as absent
			if seedIndex(name) >= 0 {
				continue
			}
		}
		if k := seedIndex(name); k >= 0 {
			seed[k] = val
			continue
		}
		extra = append(extra, [2][]byte{key, val})
	}

	dst = appendSeeds(dst, &seed, readTime)
	dst = append(dst, `,"details":`...)
	if details == nil {
		dst = append(dst, '{')
	} else {
		body := trimSpace(details[1 : len(details)-1])
		dst = append(dst, '{')
		dst = append(dst, body...)
		if len(body) > 0 && len(extra) > 0 {
			dst = append(dst, ',')
		}
	}
	for n, kv := range extra {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, kv[0]...)
		dst = append(dst, ':')
		dst = append(dst, kv[1]...)
	}
	return append(dst, '}')
}

// appendSeeds writes the seed fields in their fixed order: a missing
// timestamp is the read time, other missing ones are "", strings are
// canonical, other JSON values become strings.
func appendSeeds(dst []byte, seed *[len(seedKeys)][]byte, readTime time.Time) []byte {
	for k, name := range seedKeys {
		if k > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, `":`...)
		switch v := seed[k]; {
		case v == nil && k == 0:
			dst = append(dst, '"')
			dst = readTime.UTC().AppendFormat(dst, TimeLayout)
			dst = append(dst, '"')
		case v == nil:
			dst = append(dst, `""`...)
		case v[0] == '"':
			// Canonical, so that readers, the index and its filters compare
			// bytes: an application's "caf\u00e9" is stored as "café".
			dst = append(dst, '"')
			dst = record.AppendCanonical(dst, v[1:len(v)-1])
			dst = append(dst, '"')
		default: // a number, bool, object or array where a string belongs
			dst = record.AppendString(dst, v)
		}
	}

	return dst
}

func appendMalformed(dst []byte, line Line, reason string, readTime time.Time) []byte {
	dst = append(dst, `"timestamp":"`...)
	dst = readTime.UTC().AppendFormat(dst, TimeLayout)
	dst = append(dst, `","event_type":"`+record.TypeMalformed+`","actor":"","lead_id":"","workflow":"","details":{"reason":"`...)
	dst = append(dst, reason...)
	dst = append(dst, `","length":`...)
	dst = strconv.AppendInt(dst, line.Length, 10)
	raw := line.Data
	capped := line.Truncated
	if len(raw) > RawCap {
		raw = raw[:safeCut(raw, RawCap)]
		capped = true
	}
	dst = append(dst, `,"raw":`...)
	dst = record.AppendString(dst, raw)
	if capped {
		dst = append(dst, `,"truncated":true`...)
	}
	return append(dst, '}')
}

func seedIndex(name string) int {
	for k, s := range seedKeys {
		if s == name {
			return k
		}
	}
	return -1
}

// keyName returns the unquoted key. Keys with escapes are rare and decoded
// the slow way; the common case does not allocate.
func keyName(key []byte) string {
	inner := key[1 : len(key)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return unsafeString(inner)
	}
	var s string
	if json.Unmarshal(key, &s) != nil {
		return ""
	}
	return s
}

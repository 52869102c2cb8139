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

// extraMember is a top-level member that goes into details: its raw key
// and value, whether it repeats a seed field or details, and the name it
// is written under.
type extraMember struct {
	key, val []byte
	dup      bool
	name     string
}

// appendObject writes the event of a JSON object. A key can appear twice
// in a line, and a reader of the stored JSON would keep one of the two, so
// nothing is dropped that way: the first seed field of a name (the first
// that is not null) is the seed field, and the first object named details
// is details; every later one goes into details as duplicate_<name>
// (duplicate_lead_id, duplicate_details). A member whose name is taken in
// details (a key of details itself, or an earlier member) is renamed the
// same way, with _2, _3, … when duplicate_<name> is taken too.
func appendObject(dst, obj []byte, readTime time.Time) []byte {
	var seed [len(seedKeys)][]byte // raw JSON values of the seed fields
	var details []byte             // raw value of "details"
	var extraBuf [8]extraMember    // other top-level members
	extra := extraBuf[:0]

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
		if name == "details" {
			switch {
			case val[0] == '{' && details == nil:
				details = val
			default: // not an object, or a second one
				extra = append(extra, extraMember{key: key, val: val, dup: val[0] == '{', name: name})
			}
			continue
		}
		if k := seedIndex(name); k >= 0 {
			switch {
			case seed[k] != nil:
				extra = append(extra, extraMember{key: key, val: val, dup: true, name: name})
			case val[0] != 'n': // null seed values count as absent
				seed[k] = val
			}
			continue
		}
		extra = append(extra, extraMember{key: key, val: val, name: name})
	}

	dst = appendSeeds(dst, &seed, readTime)
	dst = append(dst, `,"details":`...)
	var body []byte
	if details != nil {
		body = trimSpace(details[1 : len(details)-1])
	}
	dst = append(dst, '{')
	dst = append(dst, body...)
	if len(body) > 0 && len(extra) > 0 {
		dst = append(dst, ',')
	}
	taken := takenNames{body: body}
	for n := range extra {
		m := &extra[n]
		if n > 0 {
			dst = append(dst, ',')
		}
		if !m.dup && !taken.has(m.name, extra[:n]) {
			dst = append(dst, m.key...)
		} else {
			base := "duplicate_" + m.name
			m.name = base
			for k := 2; taken.has(m.name, extra[:n]); k++ {
				m.name = base + "_" + strconv.Itoa(k)
			}
			dst = record.AppendString(dst, []byte(m.name))
		}
		dst = append(dst, ':')
		dst = append(dst, m.val...)
	}
	return append(dst, '}')
}

// takenNames answers whether a name is taken in details: a key of body
// (the members of details) or the name of an earlier member. A few
// members are compared one by one; many (a line made of thousands of
// keys) are put in a map, so that the work stays linear.
type takenNames struct {
	body []byte
	set  map[string]bool
	seen int // members in set
}

func (t *takenNames) has(name string, earlier []extraMember) bool {
	if len(earlier) < 8 && len(t.body) < 4096 {
		for _, m := range earlier {
			if m.name == name {
				return true
			}
		}
		found := false
		eachKey(t.body, func(k string) { found = found || k == name })
		return found
	}
	if t.set == nil {
		t.set = map[string]bool{}
		eachKey(t.body, func(k string) { t.set[k] = true })
	}
	for ; t.seen < len(earlier); t.seen++ {
		t.set[earlier[t.seen].name] = true
	}
	return t.set[name]
}

// eachKey calls fn with the name of each member of body, object members
// without braces as validate accepted them.
func eachKey(body []byte, fn func(string)) {
	for i := 0; i < len(body); {
		kEnd := record.SkipString(body, i)
		fn(keyName(body[i:kEnd]))
		i = skipSpace(body, kEnd)
		i = skipSpace(body, i+1) // ':'
		i = skipSpace(body, record.SkipValue(body, i))
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
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

// EventType is the event_type of a body that Append wrote (or the
// anonymizer rewrote, which keeps its layout): the content of its JSON
// string, escapes and all; nil for anything else.
func EventType(body []byte) []byte {
	const ts, et = `"timestamp":`, `,"event_type":"`
	if len(body) <= len(ts) || !bytes.HasPrefix(body, []byte(ts)) {
		return nil
	}
	i := record.SkipValue(body, len(ts))
	if !bytes.HasPrefix(body[i:], []byte(et)) {
		return nil
	}
	start := i + len(et)
	end := record.SkipString(body, start-1)
	if end <= start || body[end-1] != '"' {
		return nil
	}
	return body[start : end-1]
}

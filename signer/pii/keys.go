package pii

import (
	"strconv"
	"strings"
	"unsafe"

	"github.com/tailseal/tailseal/signer/record"
)

// replaceKey appends pending and then the key token src[start:end] of the
// object top with what the detectors find in it replaced, if they find
// anything; else it returns false and dst untouched. walk calls it only
// for keys that pass mayHold.
//
// Two keys can become one ("Bob@example.org" and "bob@example.org" are one
// pseudonym), and a JSON reader keeps only one of two equal keys, so a
// replaced key that equals another key of its object, as written before
// or as it stands in the source, gets the first free suffix ~2, ~3, …:
// {"a@x.io":1,"A@x.io":2} becomes {"<email:…>":1,"<email:…>~2":2}. Every
// value stays, under a key of its own. A key that holds no personal data
// is never changed.
func (a *Anonymizer) replaceKey(dst, pending, src []byte, top *frame, start, end int) ([]byte, bool) {
	tok := src[start:end]
	s, escaped := content(tok)
	if escaped {
		s = unquote(tok)
	}
	cur, ok := a.anonymizeText(s)
	if !ok {
		return dst, false
	}
	key := cur
	for n := 2; a.keyTaken(src, top, key); n++ {
		key = cur + "~" + strconv.Itoa(n)
	}
	if key == cur {
		key = strings.Clone(cur) // cur lives in scratch space
	}
	a.keys = append(a.keys, key)
	return appendQuoted(append(dst, pending...), key), true
}

// mayHold reports whether a detector could find anything in the string
// token tok: every key of every event is looked at, and almost none holds
// personal data, so this one pass spares the rest (detect's own prefilter
// needs the text unescaped first). An escape may hide anything.
func mayHold(tok []byte) bool {
	digits, colons := 0, 0
	for _, c := range tok {
		if !keyByte[c] {
			continue // the letters and _ of almost every key: one lookup
		}
		switch {
		case isDigit(c):
			digits++
		case c == '@' || c == '\\':
			return true
		case c == ':':
			colons++
		}
	}
	return digits >= 4 || colons >= 2
}

// keyByte marks the bytes mayHold counts.
var keyByte = [256]bool{'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'@': true, '\\': true, ':': true}

// keyTaken reports whether key is already a key of the object top: one
// written by replaceKey, or one of the source object's own keys.
func (a *Anonymizer) keyTaken(src []byte, top *frame, key string) bool {
	for _, k := range a.keys[top.keys:] {
		if k == key {
			return true
		}
	}
	i := top.start
	for {
		i = skipSpace(src, i)
		if i >= len(src) || src[i] != '"' {
			return false
		}
		kEnd := record.SkipString(src, i)
		if kEnd-i >= 2 {
			k, escaped := content(src[i:kEnd])
			if escaped {
				k = unquote(src[i:kEnd])
			}
			if k == key {
				return true
			}
		}
		i = skipSpace(src, kEnd)
		if i >= len(src) || src[i] != ':' {
			return false
		}
		if i = skipSpace(src, i+1); i >= len(src) {
			return false
		}
		i = skipSpace(src, record.SkipValue(src, i))
		if i >= len(src) || src[i] != ',' {
			return false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// bytesString views b as a string without copying.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

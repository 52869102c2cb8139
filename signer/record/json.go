package record

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON byte primitives every writer and reader of stored lines shares.
// A record is valid JSON; its string fields are written by AppendString, so
// the canonical form of a text is the one AppendString gives.

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string token. Bytes that are not valid
// UTF-8 are written as the text \xNN, so that nothing is lost and the
// output is valid UTF-8; control characters, U+2028 and U+2029 are escaped,
// nothing else is (no \/, no \u003c): this is the canonical form.
func AppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || size != 1 {
				if r == '\u2028' || r == '\u2029' {
					dst = append(dst, s[start:i]...)
					dst = append(dst, `\u202`...)
					dst = append(dst, hexDigits[r&0xf])
					i += size
					start = i
					continue
				}
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\\x`...)
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, `\n`...)
		case '\r':
			dst = append(dst, `\r`...)
		case '\t':
			dst = append(dst, `\t`...)
		default:
			dst = append(dst, `\u00`...)
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// SkipString returns the index just past the JSON string token starting at
// b[i] (len(b) if it is not closed).
func SkipString(b []byte, i int) int {
	end, _ := StringEnd(b, i)
	return end
}

// StringEnd is SkipString that also reports whether the token is closed:
// a string cut off by the end of b returns len(b), false.
func StringEnd(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return len(b), false
}

// NeedsCanonical reports whether raw, the content of a JSON string token
// (between its quotes), may differ from its canonical form: only an escape
// or a U+2028/U+2029 written as is can make it differ, and both are rare,
// so the common case costs an IndexByte or two.
func NeedsCanonical(raw []byte) bool {
	if bytes.IndexByte(raw, '\\') >= 0 {
		return true
	}
	for i := bytes.IndexByte(raw, 0xE2); i >= 0 && i+2 < len(raw); {
		if raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9) {
			return true
		}
		j := bytes.IndexByte(raw[i+1:], 0xE2)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// AppendCanonical appends the canonical content (without quotes) of raw,
// the content of a JSON string token as some writer escaped it: the
// application's "caf\u00e9" and the agent's "café" are one value.
func AppendCanonical(dst, raw []byte) []byte {
	if !NeedsCanonical(raw) {
		return append(dst, raw...)
	}
	var tmp [128]byte
	n := len(dst)
	tok := AppendString(dst, AppendUnescaped(tmp[:0], raw))
	return append(tok[:n], tok[n+1:len(tok)-1]...)
}

// AppendUnescaped appends the text raw (the content of a JSON string token)
// stands for. Invalid escapes are kept as written and lone surrogates
// become U+FFFD, as encoding/json decodes them.
func AppendUnescaped(dst, raw []byte) []byte {
	for {
		i := bytes.IndexByte(raw, '\\')
		if i < 0 || i+1 >= len(raw) {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:i]...)
		c := raw[i+1]
		raw = raw[i+2:]
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n := unicodeEscape(raw)
			if n == 0 {
				dst = append(dst, '\\', 'u')
				continue
			}
			dst = utf8.AppendRune(dst, r)
			raw = raw[n:]
		default: // " \ / and anything else: the byte itself
			dst = append(dst, c)
		}
	}
}

// unicodeEscape decodes the XXXX after \u, and a low surrogate's
// \uXXXX after a high one; n is how many bytes of b it used.
func unicodeEscape(b []byte) (r rune, n int) {
	r, ok := hex4(b)
	if !ok {
		return 0, 0
	}
	if !utf16.IsSurrogate(r) {
		return r, 4
	}
	if len(b) >= 10 && b[4] == '\\' && b[5] == 'u' {
		if lo, ok := hex4(b[6:]); ok {
			if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
				return dec, 10
			}
		}
	}
	return utf8.RuneError, 4
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// Text is the text raw (the content of a JSON string token) stands for.
func Text(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	return string(AppendUnescaped(nil, raw))
}

// SkipValue returns the index just past the value starting at b[i].
func SkipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		level := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = SkipString(b, j) - 1
			case '{', '[':
				level++
			case '}', ']':
				level--
				if level == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && !isSpace(b[j]) {
			j++
		}
		return j
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// Field returns the raw JSON value of the top-level key in obj, a JSON
// object as the agent stores it (valid JSON). Nested objects are skipped,
// not searched. nil when the key is absent.
func Field(obj []byte, key string) []byte {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	for i++; ; i++ {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil
		}
		kEnd := SkipString(obj, i)
		k := obj[i:kEnd]
		i = skipSpace(obj, kEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil
		}
		i = skipSpace(obj, i+1)
		if i >= len(obj) {
			return nil
		}
		vEnd := SkipValue(obj, i)
		if keyIs(k, key) {
			return obj[i:vEnd]
		}
		i = skipSpace(obj, vEnd)
		if i >= len(obj) || obj[i] != ',' {
			return nil
		}
	}
}

// keyIs reports whether the string token k names key.
func keyIs(k []byte, key string) bool {
	inner := k[1 : len(k)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == key
	}
	return string(AppendUnescaped(nil, inner)) == key
}

// AppendCanonicalJSON appends the valid JSON value v with every string
// token in canonical form, for searching a record for a value however its
// writer escaped it.
func AppendCanonicalJSON(dst, v []byte) []byte {
	for {
		i := bytes.IndexByte(v, '"')
		if i < 0 {
			return append(dst, v...)
		}
		end := SkipString(v, i)
		dst = append(dst, v[:i+1]...)
		dst = AppendCanonical(dst, v[i+1:max(end-1, i+1)])
		dst = append(dst, '"')
		v = v[end:]
	}
}

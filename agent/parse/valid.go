package parse

// validate reports whether b is exactly one JSON value, with optional white
// space around it, and how deeply its objects and arrays nest. It accepts
// what encoding/json's Valid accepts (the fuzz test holds it to that),
// including its nesting limit, in one pass and without allocating; bytes
// from 0x80 up inside strings are left to utf8.Valid, as json.Valid does.
func validate(b []byte) (ok bool, maxDepth int) {
	var objects [maxNesting/64 + 1]uint64 // bit d: the container at depth d is an object
	depth := 0
	i := 0
	for {
		// A value starts at i, perhaps after white space.
		i = skipSpace(b, i)
		if i >= len(b) {
			return false, 0
		}
		good := false
		switch c := b[i]; c {
		case '{', '[':
			if depth == maxNesting {
				return false, 0
			}
			if c == '{' {
				objects[depth/64] |= 1 << (depth % 64)
			} else {
				objects[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			maxDepth = max(maxDepth, depth)
			i = skipSpace(b, i+1)
			switch {
			case i < len(b) && b[i] == c+2: // '{'+2 is '}', '['+2 is ']'
				depth--
				i++
				good = true
			case c == '{':
				if i, good = member(b, i); !good {
					return false, 0
				}
				continue // to the member's value
			default:
				continue // to the first element
			}
		case '"':
			i, good = scanString(b, i)
		case 't':
			i, good = literal(b, i, "true")
		case 'f':
			i, good = literal(b, i, "false")
		case 'n':
			i, good = literal(b, i, "null")
		default:
			i, good = scanNumber(b, i)
		}
		if !good {
			return false, 0
		}
		// After a value: close containers, or go on to the next element.
		for {
			i = skipSpace(b, i)
			if depth == 0 {
				return i == len(b), maxDepth
			}
			if i >= len(b) {
				return false, 0
			}
			object := objects[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			if c := b[i]; c == ',' {
				if object {
					if i, good = member(b, skipSpace(b, i+1)); !good {
						return false, 0
					}
				} else {
					i++
				}
				break
			} else if object && c == '}' || !object && c == ']' {
				depth--
				i++
				continue
			}
			return false, 0
		}
	}
}

// maxNesting is encoding/json's limit: deeper input is not valid JSON.
const maxNesting = 10000

// member scans `"key" :` at b[i] and returns the index after the colon.
func member(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, ok := scanString(b, i)
	if !ok {
		return i, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return i + 1, true
}

// stringSpecial marks the bytes a string scan must look at: the closing
// quote, a backslash, and control characters (not allowed unescaped).
var stringSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// scanString scans the string token at b[i] and returns the index after it.
func scanString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		if !stringSpecial[b[j]] {
			continue
		}
		switch b[j] {
		case '"':
			return j + 1, true
		case '\\':
			j++
			if j >= len(b) {
				return j, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) || !isHex(b[j+1]) || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) {
					return j, false
				}
				j += 4
			default:
				return j, false
			}
		default: // a control character
			return j, false
		}
	}
	return len(b), false
}

// scanNumber scans -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		i = digits(b, i)
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

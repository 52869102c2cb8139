package parse

import "unicode/utf8"

// maxToken is the longest value a detector of signer/pii finds (an email
// address has at most 254 bytes), with room for the separators of a
// formatted card, phone or IBAN.
const maxToken = 320

// safeCut returns where to cut b, longer than n, at or before n, so that
// no value the anonymizer would find is cut in two: a half ("alice.smith@exa",
// "4111 1111 11") is no longer recognizable and would be stored raw. It
// cuts back to the last place where a token ends: the byte before it or
// the byte after it is no token byte (letters, digits and @._%+-():/, and
// a space before a group with a digit, as inside "4111 1111" or "DE89
// 3704"), and no rune is split. When there is none within maxToken bytes
// (a long run of one token), it cuts maxToken bytes back, which drops any
// value that straddled n whole.
func safeCut(b []byte, n int) int {
	for i := n; i > 0 && i >= n-maxToken; i-- {
		if utf8.RuneStart(b[i]) && (!tokenByte(b, i-1) || !tokenByte(b, i)) {
			return i
		}
	}
	i := max(0, n-maxToken)
	for i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return i
}

// tokenByte reports whether b[i] can be part of a value a detector finds.
func tokenByte(b []byte, i int) bool {
	switch c := b[i]; {
	case c >= '0' && c <= '9', c|0x20 >= 'a' && c|0x20 <= 'z':
		return true
	case c == '@' || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c == '(' || c == ')' || c == ':' || c == '/':
		return true
	case c == ' ':
		// a space inside a formatted number or IBAN: the next group has a digit
		for j := i + 1; j < len(b) && j <= i+8; j++ {
			switch d := b[j]; {
			case d >= '0' && d <= '9':
				return true
			case d|0x20 >= 'a' && d|0x20 <= 'z' || d == '(' || d == ')' || d == '-':
			default:
				return false
			}
		}
	}
	return false
}

package record

import (
	"errors"
	"strings"
)

// OriginToken is an origin made one NATS subject token and one file name:
// the subject tailseal.records.<token> and the collector's directory
// origins/<token>/. ASCII letters, digits, '-' and '_' stay; every other
// byte becomes %XX (upper-case hex), '%' included, so the mapping is
// one-to-one and ParseOriginToken undoes it: web-0.example becomes
// web-0%2Eexample.
func OriginToken(origin string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(origin))
	for i := 0; i < len(origin); i++ {
		c := origin[i]
		if tokenByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func tokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// ErrOriginToken reports a token OriginToken does not make.
var ErrOriginToken = errors.New("not an origin token")

// ParseOriginToken returns the origin of a token made by OriginToken.
func ParseOriginToken(tok string) (string, error) {
	if tok == "" {
		return "", ErrOriginToken
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case tokenByte(c):
			b.WriteByte(c)
		case c == '%' && i+2 < len(tok) && upperHex(tok[i+1]) >= 0 && upperHex(tok[i+2]) >= 0:
			d := byte(upperHex(tok[i+1])<<4 | upperHex(tok[i+2]))
			if tokenByte(d) {
				return "", ErrOriginToken // not how OriginToken writes it
			}
			b.WriteByte(d)
			i += 2
		default:
			return "", ErrOriginToken
		}
	}
	return b.String(), nil
}

func upperHex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

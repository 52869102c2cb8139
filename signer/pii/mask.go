package pii

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// appendMasked keeps a useful part of a detected value: the first letter
// and domain of an email, the last four digits of a card, phone, SSN or
// IBAN, the /24 of an IPv4 and the /48 of an IPv6 address.
func appendMasked(dst []byte, k Kind, v string) []byte {
	switch k {
	case Email:
		at := strings.LastIndexByte(v, '@')
		_, size := utf8.DecodeRuneInString(v)
		return append(append(append(dst, v[:size]...), "***"...), v[at:]...)
	case IPv4, IPv6:
		ip, err := netip.ParseAddr(v)
		if err != nil {
			break
		}
		bits := 24
		if k == IPv6 {
			bits = 48
		}
		p, _ := ip.Prefix(bits)
		return append(dst, p.String()...)
	case Card:
		return append(append(dst, "**** **** **** "...), lastDigits(v, 4)...)
	case SSN:
		return append(append(dst, "***-**-"...), lastDigits(v, 4)...)
	case IBAN:
		return append(append(append(dst, v[:2]...), "** **** "...), lastDigits(v, 4)...)
	case Phone:
		return append(append(dst, "***-***-"...), lastDigits(v, 4)...)
	}
	return append(append(append(dst, '<'), k.String()...), '>')
}

// appendMaskedText keeps the first letter of a whole field: A***.
func appendMaskedText(dst []byte, v string) []byte {
	r, size := utf8.DecodeRuneInString(v)
	if r == utf8.RuneError || r == '"' || r == '\\' || r < 0x20 {
		return append(dst, "***"...)
	}
	return append(append(dst, v[:size]...), "***"...)
}

func lastDigits(v string, n int) string {
	var d []byte
	for i := len(v) - 1; i >= 0 && len(d) < n; i-- {
		if isDigit(v[i]) || isUpper(v[i]) {
			d = append([]byte{v[i]}, d...)
		}
	}
	return string(d)
}

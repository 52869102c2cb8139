package pii

import (
	"net/netip"
	"strings"
	"unsafe"

	"github.com/tailseal/tailseal/signer/record"
)

// Kind names what a detector finds; it is the tag in pseudonyms.
type Kind uint8

// Detector kinds.
const (
	Email Kind = iota
	Phone
	IPv4
	IPv6
	Card
	IBAN
	SSN
	numKinds
)

var kindNames = [numKinds]string{"email", "phone", "ip", "ip", "card", "iban", "ssn"}

func (k Kind) String() string { return kindNames[k] }

// Detectors lists the names used in metrics, one per detector.
var Detectors = [numKinds]string{"email", "phone", "ipv4", "ipv6", "card", "iban", "ssn"}

// span is one detected value: s[start:end] of kind.
type span struct {
	start, end int
	kind       Kind
}

// minDigits is the fewest digits a card, phone, SSN or IBAN has.
const minDigits = 7

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isHex(c byte) bool   { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

// detect returns the values found in s, in order, without overlaps. Each
// detector runs only when a cheap prefilter says it can match.
func detect(s string, out []span, phones *phoneRegions) []span {
	digits, ats, dots, colons := 0, 0, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			digits++
		case c == '@':
			ats++
		case c == '.':
			dots++
		case c == ':':
			colons++
		}
	}
	if ats > 0 {
		out = findEmails(s, out)
	}
	if digits >= minDigits {
		out = findDigitRuns(s, out, phones)
	}
	if colons >= 2 { // before IPv4: ::ffff:192.0.2.1 is one IPv6 address
		out = findIPv6(s, out)
	}
	if digits >= 4 && dots >= 3 {
		out = findIPv4(s, out)
	}
	return sortSpans(out)
}

func sortSpans(sp []span) []span {
	// insertion sort: a handful of spans, already nearly sorted
	for i := 1; i < len(sp); i++ {
		for j := i; j > 0 && sp[j].start < sp[j-1].start; j-- {
			sp[j], sp[j-1] = sp[j-1], sp[j]
		}
	}
	out := sp[:0]
	end := -1
	for _, x := range sp {
		if x.start >= end {
			out = append(out, x)
			end = x.end
		}
	}
	return out
}

func overlaps(sp []span, start, end int) bool {
	for _, x := range sp {
		if start < x.end && x.start < end {
			return true
		}
	}
	return false
}

// --- email ---

func isLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomain(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

func findEmails(s string, out []span) []span {
	prevEnd := 0 // a local part never reaches back into the previous address
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		l := i
		for l > prevEnd && isLocal(s[l-1]) {
			l--
		}
		r := i + 1
		for r < len(s) && isDomain(s[r]) {
			r++
		}
		for r > i+1 && (s[r-1] == '.' || s[r-1] == '-') { // sentence end
			r--
		}
		for l < i && s[l] == '.' {
			l++
		}
		if l == i || r == i+1 {
			continue
		}
		domain := s[i+1 : r]
		dot := strings.LastIndexByte(domain, '.')
		if dot <= 0 || len(domain)-dot-1 < 2 {
			continue
		}
		tld := domain[dot+1:]
		ok := true
		for j := 0; j < len(tld); j++ {
			ok = ok && isAlpha(tld[j])
		}
		if ok {
			// a@b.cc@d.ee is one value, not an address followed by
			// "@d.ee": replacing only the first part would leave the
			// rest to be found again, differently, on a second pass.
			for r < len(s) && s[r] == '@' {
				next := r + 1
				for next < len(s) && isDomain(s[next]) {
					next++
				}
				for next > r+1 && (s[next-1] == '.' || s[next-1] == '-') {
					next--
				}
				if next == r+1 {
					break
				}
				r = next
			}
			out = append(out, span{l, r, Email})
			i, prevEnd = r, r
		}
	}
	return out
}

// --- digit runs: cards, SSNs, IBANs, phones ---

// findDigitRuns looks at runs of digits joined by single separators
// (space, dash, dot, parentheses), which is where cards, phones and SSNs
// live, and at IBAN-shaped tokens.
func findDigitRuns(s string, out []span, phones *phoneRegions) []span {
	out = findIBANs(s, out)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && c != '+' && c != '(' {
			continue
		}
		if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '_' || s[i-1] == '/' || s[i-1] == '-' && i > 1 && isAlnum(s[i-2])) {
			// inside a bigger token (an id like LEAD-0001234567)
			for i < len(s) && (isAlnum(s[i]) || s[i] == '-' || s[i] == '_') {
				i++
			}
			continue
		}
		if inPseudonym(s, i) {
			i += record.PseudonymHex
			continue
		}
		if c == '(' && !strings.Contains(s[i:min(len(s), i+7)], ")") {
			continue // "(4111…": the value starts after the parenthesis
		}
		end, nd := runEnd(s, i)
		if nd < 7 {
			i = max(i, end-1)
			continue
		}
		if end < len(s) && (isAlpha(s[end]) || s[end] == '_') {
			i = end
			continue
		}
		if !overlaps(out, i, end) {
			if k, ok := classify(s[i:end], phones); ok && !(k == Phone && idContext(s[:i], s[i:end])) {
				out = append(out, span{i, end, k})
			}
		}
		i = end - 1
	}
	return out
}

// inPseudonym reports whether s[i:] starts the hex digits of a pseudonym
// ("<ip:071113390055>"): they can all be decimal digits, and then look like
// a national phone number, which a second pass must not replace.
func inPseudonym(s string, i int) bool {
	if i == 0 || s[i-1] != ':' {
		return false
	}
	j := i - 1
	for j > 0 && (s[j-1] >= 'a' && s[j-1] <= 'z' || s[j-1] == '_' || isDigit(s[j-1])) {
		j--
	}
	if j == 0 || s[j-1] != '<' {
		return false
	}
	b := unsafe.Slice(unsafe.StringData(s[j-1:]), len(s)-j+1)
	tok, rest, ok := record.NextPseudonym(b)
	return ok && len(tok)+len(rest) == len(b)
}

// idContext reports a bare run of digits without a trunk prefix written as
// an id ("order 912345678", "#912345678", "ref: 4155552671"): in Spain or
// Poland almost any nine digits are a valid number, so the words before
// it decide. A number written with separators, a trunk prefix or a '+'
// is a phone whatever precedes it.
func idContext(before, run string) bool {
	if run[0] == '0' || run[0] == '+' || run[0] == '(' {
		return false
	}
	for i := 0; i < len(run); i++ {
		if !isDigit(run[i]) {
			return false
		}
	}
	before = strings.TrimRight(before, " :=\t")
	if strings.HasSuffix(before, "#") {
		return true
	}
	tail := strings.ToLower(before[max(0, len(before)-12):])
	for _, w := range idWords {
		if strings.HasSuffix(tail, w) && (len(tail) == len(w) || !isAlpha(tail[len(tail)-len(w)-1])) {
			return true
		}
	}
	return false
}

// idWords name numbers that are not phones, as they precede one.
var idWords = []string{"id", "order", "invoice", "ref", "ticket", "sku", "lot", "batch", "serial", "nr", "no", "no.", "txn", "pid", "code"}

// runEnd returns where a run of digits and single separators starting at i
// ends, and how many digits it holds.
func runEnd(s string, i int) (end, digits int) {
	j := i
	if s[j] == '+' {
		j++
	}
	last := j
	for j < len(s) {
		c := s[j]
		switch {
		case isDigit(c):
			digits++
			j++
			last = j
		case (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') && j+1 < len(s) &&
			(isDigit(s[j+1]) || s[j+1] == '(' || c == ')' && s[j+1] == ' '):
			j++
		case c == '(' && j == i:
			j++
		default:
			return last, digits
		}
	}
	return last, digits
}

// classify decides what a run of digits and separators is, validating it.
func classify(run string, phones *phoneRegions) (Kind, bool) {
	var d [24]byte
	n := 0
	seps := 0
	for i := 0; i < len(run); i++ {
		if isDigit(run[i]) {
			if n == len(d) {
				return 0, false
			}
			d[n] = run[i]
			n++
		} else if run[i] != '+' {
			seps++
		}
	}
	digits := d[:n]
	if n >= 13 && n <= 19 && run[0] != '+' && run[0] != '(' && luhn(digits) && cardBrand(digits) {
		return Card, true
	}
	if n == 9 && ssnShape(run) {
		return SSN, isSSN(run) // an invalid SSN is not a phone either
	}
	if isDateOrTime(run) || sameDigits(digits) {
		return 0, false
	}
	if zipPlus4(run) {
		return 0, false
	}
	if isPhone(run, n, seps) {
		return Phone, true
	}
	if run[0] == '+' || strings.Count(run, ".") == 3 {
		return 0, false // a dotted quad is an IP address
	}
	var buf [6]string
	groups, ok := digitGroups(run, buf[:])
	if !ok {
		return 0, false
	}
	for _, g := range groups {
		if len(g) < 2 {
			return 0, false // no national format has a group of one
		}
	}
	return Phone, phones.national(digits, groups)
}

func luhn(d []byte) bool {
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

func prefixIn(d []byte, lo, hi int, width int) bool {
	if len(d) < width {
		return false
	}
	v := 0
	for _, c := range d[:width] {
		v = v*10 + int(c-'0')
	}
	return v >= lo && v <= hi
}

// cardBrand accepts the lengths and prefixes of the common card networks.
func cardBrand(d []byte) bool {
	n := len(d)
	switch {
	case d[0] == '4':
		return n == 13 || n == 16 || n == 19 // Visa
	case prefixIn(d, 51, 55, 2) || prefixIn(d, 2221, 2720, 4):
		return n == 16 // Mastercard
	case prefixIn(d, 34, 34, 2) || prefixIn(d, 37, 37, 2):
		return n == 15 // American Express
	case prefixIn(d, 6011, 6011, 4) || prefixIn(d, 65, 65, 2) || prefixIn(d, 644, 649, 3):
		return n >= 16 && n <= 19 // Discover
	case prefixIn(d, 3528, 3589, 4):
		return n >= 16 && n <= 19 // JCB
	case prefixIn(d, 300, 305, 3) || prefixIn(d, 36, 36, 2) || prefixIn(d, 38, 39, 2):
		return n >= 14 && n <= 19 // Diners Club
	case prefixIn(d, 62, 62, 2):
		return n >= 16 && n <= 19 // UnionPay
	case prefixIn(d, 50, 50, 2) || prefixIn(d, 56, 69, 2):
		return n >= 12 && n <= 19 // Maestro
	}
	return false
}

// ssnShape reports AAA-GG-SSSS, with dashes or spaces.
func ssnShape(run string) bool {
	return len(run) == 11 && (run[3] == '-' && run[6] == '-' || run[3] == ' ' && run[6] == ' ')
}

// sameDigits reports a placeholder like 0000 0000 0000.
func sameDigits(d []byte) bool {
	for _, c := range d {
		if c != d[0] {
			return false
		}
	}
	return true
}

// isSSN accepts the valid ranges of an SSN-shaped run: area 001-899 but
// not 666, group 01-99, serial 0001-9999.
func isSSN(run string) bool {
	area := run[0:3]
	group := run[4:6]
	serial := run[7:11]
	return area != "000" && area != "666" && area < "900" && group != "00" && serial != "0000"
}

// zipPlus4 reports a US ZIP+4 code, 94107-1234: no phone anywhere.
func zipPlus4(run string) bool {
	if len(run) != 10 || run[5] != '-' {
		return false
	}
	for i := 0; i < len(run); i++ {
		if i != 5 && !isDigit(run[i]) {
			return false
		}
	}
	return true
}

// digitGroups splits a run at separators into at most len(buf) groups,
// without allocating; ok is false when there are more.
func digitGroups(run string, buf []string) (groups []string, ok bool) {
	groups = buf[:0]
	start := -1
	for i := 0; i <= len(run); i++ {
		if i < len(run) && isDigit(run[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			if len(groups) == cap(buf) {
				return groups, false
			}
			groups = append(groups, run[start:i])
			start = -1
		}
	}
	return groups, true
}

// isDateOrTime rejects 2026-02-04, 04.02.2026, 20:30:45-like runs.
func isDateOrTime(run string) bool {
	var buf [8]string
	groups, _ := digitGroups(run, buf[:])
	// 2026-02-04, 2026-02-04-001 (a date and more), 04.02.2026
	return len(groups) >= 3 && len(groups[0]) == 4 && len(groups[1]) == 2 && len(groups[2]) == 2 ||
		len(groups) == 3 && len(groups[0]) == 2 && len(groups[1]) == 2 && len(groups[2]) == 4
}

// isPhone accepts E.164 (+ and 8-15 digits) and national formats with
// separators: (555) 123-4567, 555-123-4567, 555.123.4567, 020 7946 0958.
// A bare run of digits is an order number, not a phone.
func isPhone(run string, digits, seps int) bool {
	if run[0] == '+' {
		return digits >= 8 && digits <= 15
	}
	if digits < 7 || digits > 13 || seps == 0 {
		return false
	}
	var buf [6]string
	groups, ok := digitGroups(run, buf[:])
	if !ok || len(groups) < 2 || len(groups) > 5 {
		return false
	}
	if strings.Count(run, ".") == 3 && len(groups) == 4 {
		return false // a dotted quad is an IP address
	}
	// 030 12345678, (0852) 176050356: a trunk prefix and area code, and a
	// long subscriber number.
	if len(groups) == 2 && groups[0][0] == '0' && len(groups[0]) >= 2 && len(groups[0]) <= 5 && len(groups[1]) <= 9 {
		return true
	}
	if digits > 12 {
		return false
	}
	for _, g := range groups {
		if len(g) > 5 {
			return false
		}
	}
	if len(groups[len(groups)-1]) >= 3 {
		return true
	}
	// 01 23 45 67 89, 915 34 30 55, 56-683-02-92: groups of two and three,
	// as much of Europe writes a number.
	if len(groups) < 4 || digits < 8 {
		return false
	}
	for _, g := range groups {
		if len(g) < 2 || len(g) > 3 {
			return false
		}
	}
	return true
}

// --- IBAN ---

// ibanLength is every country's IBAN length: the SWIFT IBAN registry
// (89 countries, from Albania to Yemen, as of 2025), and Iran (IR,
// 26), whose banks issue IBANs without being in the registry. The mod-97
// check keeps a random token of the right shape from passing.
var ibanLength = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
	"LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
	"NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
	"SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
	"IR": 26,
}

func findIBANs(s string, out []span) []span {
	for i := 0; i+15 <= len(s); i++ {
		if !isUpper(s[i]) || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) || i > 0 && isAlnum(s[i-1]) {
			continue
		}
		want, ok := ibanLength[s[i:i+2]]
		if !ok {
			continue
		}
		var buf [34]byte
		n, j, end := 0, i, i
		for j < len(s) && n < want {
			c := s[j]
			switch {
			case isAlnum(c):
				buf[n] = c &^ 0x20
				if isDigit(c) {
					buf[n] = c
				}
				n++
				j++
				end = j
			case c == ' ' && j+1 < len(s) && isAlnum(s[j+1]):
				j++
			default:
				j = len(s) + 1
			}
		}
		if n == want && (end == len(s) || !isAlnum(s[end])) && ibanValid(buf[:n]) {
			out = append(out, span{i, end, IBAN})
			i = end - 1
		}
	}
	return out
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// ibanValid checks the ISO 13616 mod-97 rule.
func ibanValid(b []byte) bool {
	rem := 0
	add := func(c byte) {
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			v := int(c-'A') + 10
			rem = (rem*100 + v) % 97
		}
	}
	for _, c := range b[4:] {
		add(c)
	}
	for _, c := range b[:4] {
		add(c)
	}
	return rem == 1
}

// --- IP addresses ---

func findIPv4(s string, out []span) []span {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) || i > 0 && (isAlnum(s[i-1]) || s[i-1] == '.' || s[i-1] == '-') {
			continue
		}
		j := i
		for j < len(s) && (isDigit(s[j]) || s[j] == '.') {
			j++
		}
		cand := strings.TrimRight(s[i:j], ".")
		end := i + len(cand)
		if strings.Count(cand, ".") != 3 || end < len(s) && isAlnum(s[end]) {
			i = j
			continue
		}
		if versionContext(s[:i]) {
			i = j
			continue
		}
		if a, err := netip.ParseAddr(cand); err == nil && a.Is4() && !cidr(s, end) && !overlaps(out, i, end) && !besideReplacement(s, i, end) {
			out = append(out, span{i, end, IPv4})
		}
		i = j
	}
	return out
}

// besideReplacement reports an address candidate touching what the
// anonymizer writes ("***-***-0100", "<phone>", "<phone:…>"): once a phone
// is replaced, the digits and colons left beside it can form an address
// that was not there before ("::000010 0" becomes "::<phone>"), and a
// second pass must not find it. The cost is missing an address written
// right against a '*', '<' or '>'.
func besideReplacement(s string, start, end int) bool {
	return start > 0 && (s[start-1] == '*' || s[start-1] == '>') ||
		start > 1 && s[start-2] == '*' && (s[start-1] == '-' || s[start-1] == ' ') ||
		end < len(s) && (s[end] == '*' || s[end] == '<')
}

// cidr reports a /prefix after an address: a network, as mask mode writes
// it, not one host.
func cidr(s string, end int) bool {
	return end+1 < len(s) && s[end] == '/' && isDigit(s[end+1])
}

// versionContext reports text just before a dotted quad that makes it a
// version (v1.2.3.4, "version 10.0.19041.1", "build 1.2.3.4").
func versionContext(before string) bool {
	if len(before) > 0 && (before[len(before)-1] == 'v' || before[len(before)-1] == 'V') {
		return true
	}
	tail := strings.ToLower(before[max(0, len(before)-16):])
	for _, w := range []string{"version", "ver ", "release", "build", "firmware", "v="} {
		if strings.Contains(tail, w) {
			return true
		}
	}
	return false
}

func findIPv6(s string, out []span) []span {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isHex(c) && c != ':' || i > 0 && (isHex(s[i-1]) || s[i-1] == ':' || isAlnum(s[i-1])) {
			continue
		}
		j := i
		for j < len(s) && (isHex(s[j]) || s[j] == ':' || s[j] == '.') {
			j++
		}
		cand := strings.TrimRight(s[i:j], ".")
		end := i + len(cand)
		if strings.Count(cand, ":") >= 2 && (end == len(s) || !isAlnum(s[end])) {
			if a, err := netip.ParseAddr(cand); err == nil && a.Is6() && !cidr(s, end) && !overlaps(out, i, end) && !besideReplacement(s, i, end) {
				out = append(out, span{i, end, IPv6})
			}
		}
		i = j
	}
	return out
}

// Package pii owns anonymizing personal data in an event before it is
// signed: validated detectors find emails, phones, IP addresses, payment
// cards, IBANs and US SSNs inside any string, object key or number (a
// replaced key becomes its pseudonym, a replaced number a string pseudonym,
// see replaceKey for keys that become one); field rules replace some
// fields whole and leave others alone; a mode says what a value becomes.
// Pseudonyms are keyed (HMAC-SHA256 under a key of their own), so the same
// value gives the same pseudonym and events stay joinable, but nobody
// without the key can test a guess.
package pii

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/netip"
	"strings"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	"github.com/tailseal/tailseal/signer/record"
)

// Mode says what a detected value becomes.
type Mode uint8

// Modes (TAILSEAL_PII_MODE).
const (
	Hash   Mode = iota // <email:3f9a1c0b2d4e>
	Redact             // <email>
	Mask               // j***@example.com
	Off                // unchanged
)

// ParseMode reads a mode name.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "hash", "":
		return Hash, nil
	case "redact":
		return Redact, nil
	case "mask":
		return Mask, nil
	case "off":
		return Off, nil
	}
	return 0, fmt.Errorf("unknown PII mode %q (hash, redact, mask or off)", s)
}

// Default field rules.
var (
	DefaultAlways = []string{"name", "first_name", "last_name", "full_name", "address", "phone", "email"}
	DefaultNever  = []string{"lead_id", "crm_id", "workflow", "event_type", "timestamp"}
)

// Options configure an Anonymizer.
type Options struct {
	Mode   Mode
	Key    []byte   // pseudonymization key (not the signing key)
	Always []string // fields replaced whole, at any depth
	Never  []string // fields never touched, at any depth
	// PhoneRegions are the regions (two-letter codes) whose national phone
	// numbers, written without a country code, are found; nil means
	// DefaultPhoneRegions.
	PhoneRegions []string
}

// Anonymizer rewrites event bodies. Use one per goroutine; the counters may
// be read from any.
type Anonymizer struct {
	opt    Options
	rules  rules
	mac    hash.Hash
	msg    []byte // scratch: the HMAC input
	norm   []byte // scratch: a normalized value
	frames []frame
	sum    [32]byte
	spans  []span
	// scratch holds a string's replacement passes, alternately.
	scratch [2][]byte
	// currentKey is the lower-cased name of the field being rewritten.
	currentKey string
	// keys are the replaced keys written in the objects open in walk.
	keys []string
	// phones are the regions whose national phone numbers are found.
	phones *phoneRegions

	// Counts are shared with the anonymizers made by Fork.
	*Counts
}

// Counts are what an anonymizer replaced: values by detector, and whole
// fields by the field rules. Never the values themselves.
type Counts struct {
	Replaced [numKinds]atomic.Uint64
	Fields   atomic.Uint64
}

type rule uint8

// fieldRule is a field rule and the field's name, kept so that naming the
// field does not allocate.
type fieldRule struct {
	rule rule
	name string
}

const (
	detectRule rule = iota
	alwaysRule
	neverRule
)

// rules are the field rules by the length of the name: every key of every
// event is looked up, and most match nothing, so a lookup compares a few
// names of the key's length (often none) without hashing or lower-casing it.
type rules [][]fieldRule

func newRules(always, never []string) rules {
	var rs rules
	set := func(name string, r rule) {
		name = strings.ToLower(name)
		for len(rs) <= len(name) {
			rs = append(rs, nil)
		}
		for i, fr := range rs[len(name)] {
			if fr.name == name {
				rs[len(name)][i].rule = r
				return
			}
		}
		rs[len(name)] = append(rs[len(name)], fieldRule{r, name})
	}
	for _, f := range always {
		set(f, alwaysRule)
	}
	for _, f := range never {
		set(f, neverRule) // never wins over always
	}
	return rs
}

// lookup returns the rule for a field name, in any case.
func (rs rules) lookup(name []byte) fieldRule {
	if len(name) >= len(rs) {
		return fieldRule{}
	}
	for _, fr := range rs[len(name)] {
		if equalFoldLower(name, fr.name) {
			return fr
		}
	}
	return fieldRule{}
}

// equalFoldLower reports whether b equals the lower-case ASCII s, ignoring
// the case of b.
func equalFoldLower(b []byte, s string) bool {
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// New returns an Anonymizer.
func New(opt Options) *Anonymizer {
	return &Anonymizer{opt: opt, rules: newRules(opt.Always, opt.Never), phones: newPhoneRegions(opt.PhoneRegions), mac: hmac.New(sha256.New, opt.Key), Counts: &Counts{}}
}

// Fork returns an anonymizer with the same settings and counts and scratch
// space of its own, for another goroutine. (An Anonymizer is not safe for
// concurrent use.)
func (a *Anonymizer) Fork() *Anonymizer {
	return &Anonymizer{opt: a.opt, rules: a.rules, phones: a.phones, mac: hmac.New(sha256.New, a.opt.Key), Counts: a.Counts}
}

// Mode is the configured mode.
func (a *Anonymizer) Mode() Mode { return a.opt.Mode }

// AppendBody appends body, the members of an event object without the
// braces, with personal data replaced.
func (a *Anonymizer) AppendBody(dst, body []byte) []byte {
	if a.opt.Mode == Off {
		return append(dst, body...)
	}
	return a.walk(dst, body, true)
}

// walk rewrites JSON. members says src is object members without braces.
// Most of an event is copied as it is: walk only finds the values to
// replace and copies the bytes between them in one piece.
type frame struct {
	obj  bool
	rule rule
	// start is where the object's members begin in src, and keys how many
	// of a.keys were written before it: see replaceKey.
	start, keys int
}

func (a *Anonymizer) walk(dst, src []byte, members bool) []byte {
	stack := append(a.frames[:0], frame{obj: members})
	a.keys = a.keys[:0]
	defer func() { a.frames = stack[:0] }()
	expectKey := members
	valueRule := detectRule
	copied := 0 // src[:copied] is in dst already
	for i := 0; i < len(src); {
		c := src[i]
		top := &stack[len(stack)-1]
		r := top.rule // the rule of a value here
		if top.obj {
			r = valueRule
		}
		switch c {
		case '{', '[':
			if r == neverRule {
				// A field never touched keeps its own scalar value; what
				// is nested under it is data like any other.
				r = detectRule
			}
			stack = append(stack, frame{obj: c == '{', rule: r, start: i + 1, keys: len(a.keys)})
			expectKey = c == '{'
			i++
		case '}', ']':
			if len(stack) > 1 {
				a.keys = a.keys[:top.keys]
				stack = stack[:len(stack)-1]
			}
			expectKey = false
			i++
		case ',':
			expectKey = top.obj
			i++
		case ':':
			i++
		case '"':
			end, closed := record.StringEnd(src, i)
			if !closed {
				// Not JSON: the body's validation failed or was skipped.
				// What is left is copied as it is, never indexed past.
				i = end
				continue
			}
			if top.obj && expectKey {
				valueRule = a.keyRule(top.rule, src[i:end])
				expectKey = false
				if mayHold(src[i:end]) { // almost no key does: one pass, no call
					if out, ok := a.replaceKey(dst, src[copied:i], src, top, i, end); ok {
						dst, copied = out, end
					}
				}
			} else if out, ok := a.replaceString(dst, src[copied:i], src[i:end], r); ok {
				dst, copied = out, end
			}
			i = end
		default: // a number, true, false, null or white space
			j := i + 1
			for j < len(src) && !structural[src[j]] {
				j++
			}
			switch tok := bytes.TrimSpace(src[i:j]); {
			case r == alwaysRule && len(tok) > 0 && tok[0] != 'n':
				dst = append(dst, src[copied:i]...)
				dst = a.appendFieldValue(dst, a.currentKey, string(tok)) // numbers and booleans in PII fields
				copied = j
			case r == detectRule && len(tok) >= minDigits && (isDigit(tok[0]) || tok[0] == '-'):
				// A card or a phone written as a number.
				if out, ok := a.replaceNumber(dst, src[copied:i], tok); ok {
					dst, copied = out, j
				}
			}
			i = j
		}
	}
	return append(dst, src[copied:]...)
}

// structural marks the bytes that end a number or literal.
var structural = [256]bool{'{': true, '}': true, '[': true, ']': true, ',': true, ':': true, '"': true}

// keyRule returns the rule for the value of key tok inside a container
// whose rule is parent: always is inherited; never holds for a scalar
// value only (walk scans what is nested under it).
func (a *Anonymizer) keyRule(parent rule, tok []byte) rule {
	name := tok[1 : len(tok)-1]
	if bytes.IndexByte(name, '\\') >= 0 { // "\u0065mail" is "email"
		name = []byte(unquote(tok))
	}
	switch parent {
	case alwaysRule:
		// Inside a field replaced whole, a value is named by its own key
		// when that is a plain name; any other key ("a\"b", an address) is
		// no tag to write, and the enclosing name stays.
		if tagName(name) {
			a.currentKey = strings.ToLower(string(name))
		}
		return alwaysRule
	}
	fr := a.rules.lookup(name)
	if fr.rule == alwaysRule {
		a.currentKey = fr.name // the rule's own string: no allocation
	}
	return fr.rule
}

// replaceString appends pending and then the JSON string token tok
// anonymized under r, if r or a detector replaces anything in it; else it
// returns false and dst untouched.
func (a *Anonymizer) replaceString(dst, pending, tok []byte, r rule) ([]byte, bool) {
	if r == neverRule {
		return dst, false
	}
	s, escaped := content(tok)
	if escaped {
		s = unquote(tok)
	}
	if r == alwaysRule {
		if s == "" || a.isOwnFieldValue(a.currentKey, s) {
			return dst, false
		}
		return a.appendFieldValue(append(dst, pending...), a.currentKey, s), true
	}
	cur, ok := a.anonymizeText(s)
	if !ok {
		return dst, false
	}
	dst = append(dst, pending...)
	if escaped {
		return appendQuoted(dst, cur), true
	}
	// Unescaped content, and replacements need no escaping.
	return append(append(append(dst, '"'), cur...), '"'), true
}

// anonymizeText returns s with what the detectors find replaced, and
// whether they found anything. The result lives in a's scratch space until
// the next call.
func (a *Anonymizer) anonymizeText(s string) (string, bool) {
	a.spans = detect(s, a.spans[:0], a.phones)
	if len(a.spans) == 0 {
		return s, false
	}
	// A replacement can change what its neighbours look like ("::0 000010 0"
	// masks to "::/48 000010 0", where a phone now stands alone), so replace
	// until nothing more is found: anonymizing the result again changes
	// nothing. The passes alternate between two scratch buffers.
	cur := s
	for pass := 0; len(a.spans) > 0 && pass < maxPasses; pass++ {
		buf := a.scratch[pass%2][:0]
		prev := 0
		for _, sp := range a.spans {
			buf = append(buf, cur[prev:sp.start]...)
			buf = a.appendReplacement(buf, sp.kind, cur[sp.start:sp.end])
			a.Replaced[sp.kind].Add(1)
			prev = sp.end
		}
		buf = append(buf, cur[prev:]...)
		a.scratch[pass%2] = buf
		cur = unsafe.String(unsafe.SliceData(buf), len(buf))
		a.spans = detect(cur, a.spans[:0], a.phones)
	}
	return cur, true
}

// replaceNumber appends pending and then the JSON number tok as a string
// with what the detectors find in it replaced (4111111111111111 becomes
// "<card:…>"), if they find anything; else it returns false and dst
// untouched.
func (a *Anonymizer) replaceNumber(dst, pending, tok []byte) ([]byte, bool) {
	cur, ok := a.anonymizeText(bytesString(tok))
	if !ok {
		return dst, false
	}
	return appendQuoted(append(dst, pending...), cur), true
}

// maxPasses bounds the replacement passes over one string; the fuzz test
// checks that the result is stable.
const maxPasses = 4

// appendFieldValue replaces a whole field value: a detected kind when the
// field is named like one (email, phone), else the field's name.
func (a *Anonymizer) appendFieldValue(dst []byte, field, value string) []byte {
	a.Fields.Add(1)
	tag := fieldTag(field)
	dst = append(dst, '"')
	switch a.opt.Mode {
	case Redact:
		dst = append(append(append(dst, '<'), tag...), '>')
	case Mask:
		switch {
		case field == "email" && strings.IndexByte(value, '@') > 0:
			dst = appendMasked(dst, Email, value)
		case field == "phone":
			dst = appendMasked(dst, Phone, value)
		default:
			dst = appendMaskedText(dst, value)
		}
	default:
		a.norm = appendNormalizedField(a.norm[:0], value)
		dst = a.appendPseudonym(dst, tag, a.norm)
	}
	return append(dst, '"')
}

// appendReplacement appends what a detected value becomes in the mode.
func (a *Anonymizer) appendReplacement(dst []byte, k Kind, v string) []byte {
	switch a.opt.Mode {
	case Redact:
		return append(append(append(dst, '<'), k.String()...), '>')
	case Mask:
		return appendMasked(dst, k, v)
	}
	a.norm = appendNormalized(a.norm[:0], k, v)
	return a.appendPseudonym(dst, k.String(), a.norm)
}

// appendPseudonym appends <tag:12 hex digits of HMAC(key, tag NUL value)>.
func (a *Anonymizer) appendPseudonym(dst []byte, tag string, value []byte) []byte {
	a.msg = append(append(append(a.msg[:0], tag...), 0), value...)
	a.mac.Reset()
	a.mac.Write(a.msg)
	sum := a.mac.Sum(a.sum[:0])
	dst = append(dst, '<')
	dst = append(dst, tag...)
	dst = append(dst, ':')
	dst = hex.AppendEncode(dst, sum[:6])
	return append(dst, '>')
}

// Pseudonym returns what value of kind tag (email, phone, ip, card, iban,
// ssn, or a field name) becomes in hash mode: for data-subject requests.
func (a *Anonymizer) Pseudonym(tag, value string) string {
	norm := appendNormalizedField(nil, value)
	for k := Kind(0); k < numKinds; k++ {
		if k.String() == tag {
			norm = appendNormalized(nil, k, value)
		}
	}
	return string(a.appendPseudonym(nil, tag, norm))
}

// appendNormalized appends the form of v that pseudonyms are computed on,
// so that spellings of one value join.
func appendNormalized(dst []byte, k Kind, v string) []byte {
	switch k {
	case Email:
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
		return dst
	case IPv4, IPv6:
		if ip, err := netip.ParseAddr(v); err == nil {
			return ip.AppendTo(dst)
		}
	case IBAN:
		for i := 0; i < len(v); i++ {
			if c := v[i]; c != ' ' {
				if c >= 'a' && c <= 'z' {
					c -= 'a' - 'A'
				}
				dst = append(dst, c)
			}
		}
		return dst
	}
	for i := 0; i < len(v); i++ { // phone, card, ssn: the digits
		if isDigit(v[i]) {
			dst = append(dst, v[i])
		}
	}
	return dst
}

// appendNormalizedField lower-cases v and collapses its white space.
func appendNormalizedField(dst []byte, v string) []byte {
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			space = len(dst) > 0
			continue
		}
		if space {
			dst = append(dst, ' ')
			space = false
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// content returns the inside of a string token; escaped reports a backslash.
func content(tok []byte) (string, bool) {
	in := tok[1 : len(tok)-1]
	return unsafe.String(unsafe.SliceData(in), len(in)), bytes.IndexByte(in, '\\') >= 0
}

func unquote(tok []byte) string {
	return record.Text(tok[1 : len(tok)-1])
}

// appendQuoted writes s in the canonical form of the record contract.
func appendQuoted(dst []byte, s string) []byte {
	return record.AppendString(dst, []byte(s))
}

// tagName reports a key that can name a pseudonym as it is: a few letters,
// digits and underscores, without personal data (no run of 7 digits).
func tagName(name []byte) bool {
	if len(name) == 0 || len(name) > 32 {
		return false
	}
	digits := 0
	for _, c := range name {
		switch {
		case isDigit(c):
			if digits++; digits >= 7 {
				return false
			}
		case isAlpha(c) || c == '_':
			digits = 0
		default:
			return false
		}
	}
	return true
}

// fieldTag is the tag a whole-field replacement of field carries.
func fieldTag(field string) string {
	switch field {
	case "email":
		return Email.String()
	case "phone":
		return Phone.String()
	}
	return field
}

// isOwnFieldValue reports whether s, the value of a field replaced whole,
// is exactly what this mode writes there, so that a second pass keeps it:
// <tag:12 hex digits> in hash mode and <tag> in redact mode, where tag is
// a detector's kind or the field's own tag, and the masked forms in mask
// mode. Anything merely shaped like one ("<jo_smith>", "Jo ***") is
// personal data like any other value.
func (a *Anonymizer) isOwnFieldValue(field, s string) bool {
	switch a.opt.Mode {
	case Mask:
		return isMaskedField(field, s)
	case Redact:
		if len(s) < 3 || s[0] != '<' || s[len(s)-1] != '>' {
			return false
		}
		return a.isTag(field, s[1:len(s)-1])
	}
	const hexLen = record.PseudonymHex
	if len(s) < hexLen+4 || s[0] != '<' || s[len(s)-1] != '>' || s[len(s)-hexLen-2] != ':' {
		return false
	}
	for i := len(s) - hexLen - 1; i < len(s)-1; i++ {
		if c := s[i]; !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return a.isTag(field, s[1:len(s)-hexLen-2])
}

// isTag reports a tag this package writes in field: a detector's kind or
// the field's own tag.
func (a *Anonymizer) isTag(field, tag string) bool {
	if tag == fieldTag(field) {
		return true
	}
	for _, name := range kindNames {
		if tag == name {
			return true
		}
	}
	return false
}

// isMaskedField reports a value that appendFieldValue writes in mask mode:
// "***", the first character and "***", an email's first character,
// "***" and its domain, a phone's "***-***-" and its last digits.
func isMaskedField(field, s string) bool {
	if s == "***" {
		return true
	}
	if rest, ok := strings.CutPrefix(s, "***-***-"); ok && field == "phone" {
		return len(rest) <= 4 && strings.Trim(rest, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == ""
	}
	_, size := utf8.DecodeRuneInString(s)
	rest, ok := strings.CutPrefix(s[size:], "***")
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	return field == "email" && len(rest) > 1 && rest[0] == '@' && strings.IndexByte(rest[1:], '@') < 0
}

package pii

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

//go:generate go run ./internal/phonegen/gen

// DefaultPhoneRegions are the regions whose national phone numbers are
// found when Options.PhoneRegions is nil (TAILSEAL_PII_PHONE_REGIONS).
var DefaultPhoneRegions = []string{"US", "GB", "DE", "FR", "ES", "NL", "PL", "IT"}

// KnownPhoneRegion reports whether libphonenumber's metadata knows region,
// a two-letter code in any case.
func KnownPhoneRegion(region string) bool {
	return len(region) == 2 && phoneMetaFor(strings.ToUpper(region)) != nil
}

// phoneRegions validate national phone numbers, written without a country
// code, against libphonenumber's metadata for a few regions. Parsing
// allocates, so it runs only on digit runs that the cheap checks in
// classify leave open.
//
// What follows is the part of github.com/nyaruka/phonenumbers (a port of
// libphonenumber) that parsing a run of digits in a region, validating,
// typing and formatting it nationally takes, step for step, on that
// package's metadata (phonedata.go, generated from it). Linking the
// package would cost the agent about 3 MiB of resident memory: its init
// decodes the metadata of every region and compiles its patterns.
// TestNationalAgreesWithLibphonenumber holds every answer here to the
// package's own, for every region.
//
// A region's patterns are compiled when the first run is looked up in
// it, as the library compiles them (about 100 KiB of memory a region).
// Safe for concurrent use: the forks of an Anonymizer share it.
type phoneRegions struct {
	ids     []string
	once    sync.Once
	regions []*phoneRegion // compiled, by once, at the first lookup
}

func newPhoneRegions(codes []string) *phoneRegions {
	if codes == nil {
		codes = DefaultPhoneRegions
	}
	p := &phoneRegions{}
	for _, c := range codes {
		if c = strings.ToUpper(strings.TrimSpace(c)); KnownPhoneRegion(c) {
			p.ids = append(p.ids, c)
		}
	}
	return p
}

// national reports whether run, digits and separators without a '+', is a
// phone number as it is written within one of the regions: a valid fixed
// or mobile number there,
// with the digits of the region's national format (so with the trunk
// prefix where the region dials one: "1738700000" is no German number,
// "01738700000" is), and, when run has separators, in the national
// format's groups ("12 345 67 89" is a Polish number, "12-3456789" a lot
// number). digits are run's digits and groups its digit groups.
func (p *phoneRegions) national(digits []byte, groups []string) bool {
	if p == nil || len(p.ids) == 0 || len(digits) < 7 || len(digits) > 13 || digits[0] == '0' && digits[1] == '0' {
		return false
	}
	if len(groups) == 1 && len(digits) < 9 {
		return false // a bare run this short is a count or an id
	}
	p.once.Do(func() {
		for _, id := range p.ids {
			p.regions = append(p.regions, compiledRegion(id))
		}
	})
	for _, r := range p.regions {
		nsn, ok := r.parse(string(digits))
		if !ok {
			continue
		}
		kind := r.numberType(nsn)
		if kind == otherNumber {
			continue
		}
		// The type is the one of the region the number belongs to among
		// those that share the country code, and it is formatted as the
		// main one of those formats it.
		if typed := regionOfNumber(nsn, r.countryCode); typed != r {
			kind = otherNumber
			if typed != nil {
				kind = typed.numberType(nsn)
			}
		}
		if kind != personalNumber {
			// Pagers, premium, shared-cost and service numbers overlap
			// timestamps and ids ("1648013504093" is a German pager
			// number), and a person is rarely reached on one.
			continue
		}
		if sameGroups(r.main().formatNational(nsn), digits, groups) {
			return true
		}
	}
	return false
}

// phoneRegion is a region's metadata with its patterns compiled.
type phoneRegion struct {
	countryCode        int
	code               string // countryCode in decimal
	idd                *regexp.Regexp
	nationalPrefix     *regexp.Regexp // anchored; nil if none
	prefixTransform    string
	leadingDigits      *regexp.Regexp // anchored; nil if none
	sameMobileAndFixed bool
	general            phonePattern
	fixed, mobile      phonePattern
	others             [8]phonePattern
	formats            []compiledFormat
	mainOnce           sync.Once
	mainRegion         *phoneRegion
}

// phonePattern is a number description: possible lengths and a pattern
// the whole national number must match (nil: none does).
type phonePattern struct {
	re        *regexp.Regexp
	lengths   []int32
	localOnly []int32
}

type compiledFormat struct {
	whole   *regexp.Regexp // the pattern, anchored at both ends
	pattern *regexp.Regexp // as the library replaces with it: unanchored
	leading *regexp.Regexp // nil if none
	rule    string         // the national format, the first group under the national prefix rule
}

var compiled struct {
	sync.Mutex
	regions map[string]*phoneRegion
}

// phoneMetaFor returns the metadata of a geographic region, or nil. It
// searches the sorted list of codes, not the metadata, whose pages are
// then read only for the regions configured.
func phoneMetaFor(id string) *phoneMeta {
	if len(id) != 2 {
		return nil
	}
	i := sort.Search(len(phoneRegionIDs)/2, func(i int) bool { return phoneRegionIDs[2*i:2*i+2] >= id })
	if 2*i < len(phoneRegionIDs) && phoneRegionIDs[2*i:2*i+2] == id {
		return &phoneMetadata[i]
	}
	return nil
}

// compiledRegion returns region id with its patterns compiled, once per
// process, or nil if libphonenumber has no such region.
func compiledRegion(id string) *phoneRegion {
	compiled.Lock()
	defer compiled.Unlock()
	if r, ok := compiled.regions[id]; ok {
		return r
	}
	m := phoneMetaFor(id)
	if m == nil {
		return nil
	}
	r := &phoneRegion{
		countryCode:        m.countryCode,
		code:               strconv.Itoa(m.countryCode),
		idd:                regexp.MustCompile(m.internationalPrefix), // "" too: it matches
		nationalPrefix:     compileOrNil(m.nationalPrefixForParsing, "^(?:", ")"),
		prefixTransform:    m.nationalPrefixTransformRule,
		leadingDigits:      compileOrNil(m.leadingDigits, "^(?:", ")"),
		sameMobileAndFixed: m.sameMobileAndFixed,
		general:            m.general.compile(),
		fixed:              m.fixed.compile(),
		mobile:             m.mobile.compile(),
	}
	for i, d := range m.others {
		r.others[i] = d.compile()
	}
	for _, f := range m.formats {
		c := compiledFormat{
			whole:   regexp.MustCompile("^(?:" + f.pattern + ")$"),
			pattern: regexp.MustCompile(f.pattern),
			leading: compileOrNil(f.leadingDigits, "", ""),
			rule:    f.format,
		}
		if f.nationalPrefixFormattingRule != "" {
			c.rule = replaceFirst(firstGroup, f.format, f.nationalPrefixFormattingRule)
		}
		r.formats = append(r.formats, c)
	}
	if compiled.regions == nil {
		compiled.regions = make(map[string]*phoneRegion)
	}
	compiled.regions[id] = r
	return r
}

var firstGroup = regexp.MustCompile(`(\$\d)`)

// replaceFirst replaces the first match of re in s with repl, literally.
func replaceFirst(re *regexp.Regexp, s, repl string) string {
	loc := re.FindStringIndex(s)
	if loc == nil {
		return s
	}
	return s[:loc[0]] + repl + s[loc[1]:]
}

func compileOrNil(pattern, before, after string) *regexp.Regexp {
	if pattern == "" {
		return nil
	}
	return regexp.MustCompile(before + pattern + after)
}

func (d phoneDesc) compile() phonePattern {
	return phonePattern{re: compileOrNil(d.pattern, "^(?:", ")$"), lengths: d.lengths, localOnly: d.localOnly}
}

// main is the region whose formats the regions of r's country code use.
func (r *phoneRegion) main() *phoneRegion {
	r.mainOnce.Do(func() { r.mainRegion = compiledRegion(phoneRegionsByCode[r.countryCode][0]) })
	return r.mainRegion
}

// matches is the library's isNumberMatchingDesc.
func (d *phonePattern) matches(nsn string) bool {
	if len(d.lengths) > 0 && !hasLength(d.lengths, len(nsn)) {
		return false
	}
	return d.re != nil && d.re.MatchString(nsn)
}

func hasLength(lengths []int32, n int) bool {
	for _, l := range lengths {
		if int(l) == n {
			return true
		}
	}
	return false
}

type numberKind int

const (
	otherNumber    numberKind = iota // invalid in the region: the library's UNKNOWN
	serviceNumber                    // premium, toll free, shared cost, VoIP, personal, pager, UAN, voicemail
	personalNumber                   // fixed line, mobile, either
)

// numberType is the library's getNumberTypeHelper, down to the kinds
// national tells apart.
func (r *phoneRegion) numberType(nsn string) numberKind {
	if !r.general.matches(nsn) {
		return otherNumber
	}
	for i := range r.others {
		if r.others[i].matches(nsn) {
			return serviceNumber
		}
	}
	if r.fixed.matches(nsn) || !r.sameMobileAndFixed && r.mobile.matches(nsn) {
		return personalNumber
	}
	return otherNumber
}

// regionOfNumber is the library's GetRegionCodeForNumber: the first of
// the regions of the country code whose leading digits the number starts
// with or, for one without, where it is valid.
func regionOfNumber(nsn string, countryCode int) *phoneRegion {
	ids := phoneRegionsByCode[countryCode]
	if len(ids) == 1 {
		return compiledRegion(ids[0])
	}
	for _, id := range ids {
		r := compiledRegion(id)
		if r.leadingDigits != nil {
			if r.leadingDigits.MatchString(nsn) {
				return r
			}
		} else if r.numberType(nsn) != otherNumber {
			return r
		}
	}
	return nil
}

type lengthResult int

const (
	possibleLength lengthResult = iota
	localOnlyLength
	tooShort
	tooLong
	invalidLength
)

// testLength is the library's testNumberLength for an unknown type.
func (r *phoneRegion) testLength(number string) lengthResult {
	possible := r.general.lengths
	if len(possible) == 0 || possible[0] == -1 {
		return invalidLength
	}
	n := int32(len(number))
	if hasLength(r.general.localOnly, int(n)) {
		return localOnlyLength
	}
	switch {
	case possible[0] == n:
		return possibleLength
	case possible[0] > n:
		return tooShort
	case possible[len(possible)-1] < n:
		return tooLong
	case hasLength(possible[1:], int(n)):
		return possibleLength
	}
	return invalidLength
}

// wholeGeneral reports whether number matches the region's general
// pattern, lengths aside (the library's validNumberPattern).
func (r *phoneRegion) wholeGeneral(number string) bool {
	return r.general.re != nil && r.general.re.MatchString(number)
}

// parse is the library's parseHelper for a run of digits in region r: it
// returns the national significant number, and false where the library
// fails or reads the run as dialled from abroad. A run that starts with
// the region's international prefix gets the country code that follows
// it, so its national format, which has neither, never has its digits:
// national would find no number, and parse stops there.
func (r *phoneRegion) parse(digits string) (string, bool) {
	if loc := r.idd.FindStringIndex(digits); loc != nil && loc[0] == 0 && (loc[1] == len(digits) || digits[loc[1]] != '0') {
		return "", false
	}
	national, meta := digits, r
	if strings.HasPrefix(digits, r.code) {
		potential := r.stripNationalPrefix(digits[len(r.code):])
		if !r.wholeGeneral(digits) && r.wholeGeneral(potential) || r.testLength(digits) == tooLong {
			// Read as the country code and a number: the library goes on
			// with the metadata of the code's main region.
			national, meta = potential, r.main()
		}
	}
	if len(national) < 2 {
		return "", false
	}
	// The national prefix is stripped only if what is left has a possible
	// length: otherwise the run may be a short number.
	if potential := meta.stripNationalPrefix(national); potential != national {
		if v := meta.testLength(potential); v != tooShort && v != localOnlyLength && v != invalidLength {
			national = potential
		}
	}
	if len(national) < 2 || len(national) > 17 {
		return "", false
	}
	return national, true
}

// stripNationalPrefix is the library's maybeStripNationalPrefixAndCarrierCode.
func (r *phoneRegion) stripNationalPrefix(number string) string {
	if number == "" || r.nationalPrefix == nil {
		return number
	}
	groups := r.nationalPrefix.FindStringSubmatchIndex(number)
	if groups == nil {
		return number
	}
	viable := r.wholeGeneral(number)
	last := len(groups)/2 - 1
	if r.prefixTransform == "" || groups[last*2] < 0 {
		if viable && !r.wholeGeneral(number[groups[1]:]) {
			return number
		}
		return number[groups[1]:]
	}
	transformed := r.nationalPrefix.ReplaceAllString(number, r.prefixTransform)
	if viable && !r.wholeGeneral(transformed) {
		return number
	}
	return transformed
}

// formatNational is the library's formatNsn in the NATIONAL format.
func (r *phoneRegion) formatNational(nsn string) string {
	for _, f := range r.formats {
		if f.leading != nil {
			if loc := f.leading.FindStringIndex(nsn); loc == nil || loc[0] != 0 {
				continue
			}
		}
		if f.whole.MatchString(nsn) {
			return f.pattern.ReplaceAllString(nsn, f.rule)
		}
	}
	return nsn
}

// sameGroups reports whether the national format f has exactly digits and,
// unless groups is one bare run, the same digit groups.
func sameGroups(f string, digits []byte, groups []string) bool {
	var buf [8]string
	fg, ok := digitGroups(f, buf[:])
	if !ok {
		return false
	}
	n := 0
	for _, g := range fg {
		if n+len(g) > len(digits) || g != string(digits[n:n+len(g)]) {
			return false
		}
		n += len(g)
	}
	if n != len(digits) {
		return false
	}
	if len(groups) == 1 {
		return true
	}
	if len(groups) != len(fg) {
		return false
	}
	for i := range groups {
		if len(groups[i]) != len(fg[i]) {
			return false
		}
	}
	return true
}

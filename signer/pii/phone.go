package pii

import (
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// DefaultPhoneRegions are the regions whose national phone numbers are
// found when Options.PhoneRegions is nil (TAILSEAL_PII_PHONE_REGIONS).
var DefaultPhoneRegions = []string{"US", "GB", "DE", "FR", "ES", "NL", "PL", "IT"}

// KnownPhoneRegion reports whether libphonenumber's metadata knows region,
// a two-letter code in any case.
func KnownPhoneRegion(region string) bool {
	return len(region) == 2 && phonenumbers.GetSupportedRegions()[strings.ToUpper(region)]
}

// phoneRegions validate national phone numbers, written without a country
// code, against libphonenumber's metadata for a few regions. Parsing
// allocates, so it runs only on digit runs that the cheap checks in
// classify leave open.
type phoneRegions struct {
	regions []string
}

func newPhoneRegions(codes []string) *phoneRegions {
	if codes == nil {
		codes = DefaultPhoneRegions
	}
	p := &phoneRegions{}
	for _, c := range codes {
		if c = strings.ToUpper(strings.TrimSpace(c)); KnownPhoneRegion(c) {
			p.regions = append(p.regions, c)
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
	if p == nil || len(p.regions) == 0 || len(digits) < 7 || len(digits) > 13 || digits[0] == '0' && digits[1] == '0' {
		return false
	}
	if len(groups) == 1 && len(digits) < 9 {
		return false // a bare run this short is a count or an id
	}
	num := &phonenumbers.PhoneNumber{}
	for _, region := range p.regions {
		if phonenumbers.ParseToNumber(string(digits), region, num) != nil || !phonenumbers.IsValidNumberForRegion(num, region) {
			continue
		}
		switch phonenumbers.GetNumberType(num) {
		case phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		default:
			// Pagers, premium, shared-cost and service numbers overlap
			// timestamps and ids ("1648013504093" is a German pager
			// number), and a person is rarely reached on one.
			continue
		}
		if sameGroups(phonenumbers.Format(num, phonenumbers.NATIONAL), digits, groups) {
			return true
		}
	}
	return false
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

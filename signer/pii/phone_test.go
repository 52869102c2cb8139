package pii

import (
	"strings"
	"testing"
)

// Options.PhoneRegions decides where a bare national number is a phone:
// valid there, with the trunk prefix where the region dials one, and in
// its national groups when written with separators.
func TestPhoneRegions(t *testing.T) {
	for _, c := range []struct {
		regions []string
		value   string
		found   bool
	}{
		{nil, "0312618768", true},            // FR, no separators
		{[]string{"FR"}, "0312618768", true}, // as configured
		{[]string{}, "0312618768", false},    // none configured
		{[]string{"US"}, "0312618768", false},
		{nil, "4155552671", true}, // US
		{[]string{"DE"}, "4155552671", false},
		{nil, "56-683-02-92", true},     // PL groups
		{nil, "(0852) 176050356", true}, // DE trunk and area code
		{nil, "0612345678", true},       // NL mobile
		{nil, "912345678", true},        // ES, no trunk prefix
		{nil, "1738700000", false},      // epoch seconds: no German number without its 0
		{nil, "1738700000123", false},   // epoch milliseconds
		{nil, "12-3456789", false},      // a lot number: not the groups of a PL number
		{nil, "5551234567", false},      // 555 is no US area code
		{nil, "20260204001", false},     // an invoice number
		{nil, "22336-8171", false},      // ZIP+4
		{nil, "0.123456789", false},     // a ratio
	} {
		a := New(Options{Mode: Redact, Key: testKey, PhoneRegions: c.regions})
		out := string(a.AppendBody(nil, []byte(`"details":{"note":"call `+c.value+` today"}`)))
		if found := strings.Contains(out, "<phone>"); found != c.found {
			t.Errorf("regions %v: %q found %v, want %v: %s", c.regions, c.value, found, c.found, out)
		}
	}
}

// A pseudonym's hex digits can all be decimal and form a valid national
// number ("071113390055" is one in Germany): a second pass keeps them.
func TestPseudonymDigitsNoPhone(t *testing.T) {
	for _, body := range []string{
		`"details":{"note":"contact <ip:071113390055> now"}`,
		`"details":{"<email:071113390055>":1}`,
		`"details":{"ip":"<ip:912345678123>","n":"<phone:061234567812>"}`,
	} {
		if out := anon(Hash, body); out != body {
			t.Errorf("a pseudonym changed:\n%s\n%s", body, out)
		}
	}
	// and a number right after a colon is still found
	if out := anon(Redact, `"details":{"note":"tel:0612345678"}`); out != `"details":{"note":"tel:<phone>"}` {
		t.Errorf("tel: %s", out)
	}
}

// Almost any nine digits are a Spanish or Polish number, so a bare run
// written as an id is left alone; one written as a phone is not.
func TestBareNumberAsID(t *testing.T) {
	for text, found := range map[string]bool{
		"call 912345678":    true,
		"order 912345678":   false,
		"Order #912345678":  false,
		"ref: 4155552671":   false,
		"invoice=912345678": false,
		"paid 912345678":    true, // ends in "id", but no word for ids
		"order 0612345678":  true, // a trunk prefix: written as a phone
		"order 912 345 678": true, // separators: written as a phone
	} {
		out := anon(Redact, `"details":{"note":"`+text+`"}`)
		if got := strings.Contains(out, "<phone>"); got != found {
			t.Errorf("%q: found %v, want %v: %s", text, got, found, out)
		}
	}
}

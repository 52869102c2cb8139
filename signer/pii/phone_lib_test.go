package pii

import (
	"bytes"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
	"github.com/tailseal/tailseal/signer/pii/internal/phonegen"
)

// libNational is national as it was written on github.com/nyaruka/phonenumbers
// itself: the oracle the tables and the port in phone.go are held to.
func libNational(regions []string, digits []byte, groups []string) bool {
	if len(digits) < 7 || len(digits) > 13 || digits[0] == '0' && digits[1] == '0' || len(groups) == 1 && len(digits) < 9 {
		return false
	}
	for _, region := range regions {
		num := &phonenumbers.PhoneNumber{} // fresh: ParseToNumber leaves fields of an earlier parse
		if phonenumbers.ParseToNumber(string(digits), region, num) != nil || !phonenumbers.IsValidNumberForRegion(num, region) {
			continue
		}
		switch phonenumbers.GetNumberType(num) {
		case phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		default:
			continue
		}
		if sameGroups(phonenumbers.Format(num, phonenumbers.NATIONAL), digits, groups) {
			return true
		}
	}
	return false
}

// phoneCases are runs to ask both about in region: the library's example
// numbers of every type, formatted nationally and bare, with and without
// the national prefix, with the country code or an international prefix
// in front, with digits changed, dropped and added; and random runs.
func phoneCases(region string, rng *rand.Rand, random int) []string {
	var runs []string
	add := func(s string) {
		if s != "" {
			runs = append(runs, s)
		}
	}
	cc := phonenumbers.GetCountryCodeForRegion(region)
	for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER,
		phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL} {
		ex := phonenumbers.GetExampleNumberForType(region, typ)
		if ex == nil {
			continue
		}
		nat := phonenumbers.Format(ex, phonenumbers.NATIONAL)
		nsn := phonenumbers.GetNationalSignificantNumber(ex)
		digits := onlyDigits(nat)
		add(nat)
		add(digits)
		add(nsn)
		add(phonenumbers.Format(ex, phonenumbers.INTERNATIONAL)[1:]) // without its '+'
		add(strings.TrimPrefix(phonenumbers.Format(ex, phonenumbers.E164), "+"))
		add("0" + nsn)
		add("1" + nsn)
		add("00" + strconv.Itoa(cc) + nsn)
		add("011" + strconv.Itoa(cc) + nsn)
		add("8" + nsn)
		for range 12 {
			b := []byte(digits)
			switch i := rng.IntN(len(b)); rng.IntN(3) {
			case 0:
				b[i] = byte('0' + rng.IntN(10))
			case 1:
				b = slices.Delete(b, i, i+1)
			default:
				b = slices.Insert(b, i, byte('0'+rng.IntN(10)))
			}
			add(string(b))
			// and in the example's groups, where the length allows
			if n := []byte(nat); len(b) == len(digits) {
				j := 0
				for k := range n {
					if isDigit(n[k]) {
						n[k] = b[j]
						j++
					}
				}
				add(string(n))
			}
		}
	}
	for range random {
		n := 7 + rng.IntN(7)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		add(string(b))
	}
	return runs
}

func onlyDigits(s string) string {
	var b strings.Builder
	for i := range len(s) {
		if isDigit(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// TestNationalAgreesWithLibphonenumber asks the port in phone.go and the
// library the same question about tens of thousands of runs: each region
// of libphonenumber alone, and the default regions together.
func TestNationalAgreesWithLibphonenumber(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2026))
	check := func(regions []string, runs []string) (yes int) {
		t.Helper()
		p := newPhoneRegions(regions)
		var buf [8]string
		for _, run := range runs {
			groups, ok := digitGroups(run, buf[:])
			if !ok {
				continue
			}
			digits := []byte(strings.Join(groups, ""))
			want := libNational(regions, digits, groups)
			if got := p.national(digits, groups); got != want {
				t.Errorf("regions %v, run %q: national = %t, libphonenumber says %t", regions, run, got, want)
			}
			if want {
				yes++
			}
		}
		return yes
	}
	var all []string
	for r := range phonenumbers.GetSupportedRegions() {
		all = append(all, r)
	}
	slices.Sort(all)
	total, yes := 0, 0
	for _, r := range all {
		runs := phoneCases(r, rng, 40)
		total += len(runs)
		yes += check([]string{r}, runs)
	}
	var runs []string
	for _, r := range DefaultPhoneRegions {
		runs = append(runs, phoneCases(r, rng, 2000)...)
	}
	total += len(runs)
	yes += check(DefaultPhoneRegions, runs)
	t.Logf("%d regions, %d runs, %d of them national numbers", len(all), total, yes)
	if yes < total/20 {
		t.Fatalf("only %d of %d runs are national numbers: the cases test too little", yes, total)
	}
}

// TestKnownPhoneRegions: the regions are the library's.
func TestKnownPhoneRegions(t *testing.T) {
	supported := phonenumbers.GetSupportedRegions()
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			r := string([]rune{a, b})
			if got, want := KnownPhoneRegion(r), supported[r]; got != want {
				t.Errorf("KnownPhoneRegion(%q) = %t, libphonenumber supports it: %t", r, got, want)
			}
		}
	}
	if !KnownPhoneRegion("de") || KnownPhoneRegion("001") || KnownPhoneRegion("") {
		t.Error("KnownPhoneRegion: any case, geographic regions only")
	}
}

// TestPhoneDataCurrent: phonedata.go is what the generator writes from
// the library in go.mod (run go generate ./signer/pii after updating it).
func TestPhoneDataCurrent(t *testing.T) {
	want, err := phonegen.Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("phonedata.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("phonedata.go is not what signer/pii/internal/phonegen writes from the library in go.mod: run go generate ./signer/pii")
	}
}

// BenchmarkNational: the port against the library, on runs national
// looks up (a German mobile and a French fixed line, written nationally,
// and a lot number) in the default regions.
func BenchmarkNational(b *testing.B) {
	runs := []string{"0151 23456789", "01 23 45 67 89", "12-3456789"}
	p := newPhoneRegions(nil)
	var buf [8]string
	for _, impl := range []string{"port", "libphonenumber"} {
		b.Run(impl, func(b *testing.B) {
			for b.Loop() {
				for _, run := range runs {
					groups, _ := digitGroups(run, buf[:])
					digits := []byte(strings.Join(groups, ""))
					if impl == "port" {
						p.national(digits, groups)
					} else {
						libNational(DefaultPhoneRegions, digits, groups)
					}
				}
			}
		})
	}
}

// The forks of an Anonymizer, one per body builder, share its phone
// regions, whose patterns compile at the first lookup: from two forks at
// once, under -race, with the answers of one alone.
func TestForksLookUpPhonesTogether(t *testing.T) {
	body := []byte(`"note":"call 0151 23456789 or 01 23 45 67 89","lot":"12-3456789"`)
	want := string(New(Options{Mode: Hash, Key: testKey}).AppendBody(nil, body))
	if !strings.Contains(want, "<phone:") {
		t.Fatalf("no national number found in %s", want)
	}
	a := New(Options{Mode: Hash, Key: testKey})
	out := make(chan string, 2)
	for range 2 {
		f := a.Fork()
		go func() { out <- string(f.AppendBody(nil, body)) }()
	}
	for range 2 {
		if got := <-out; got != want {
			t.Errorf("a fork gives %s, alone %s", got, want)
		}
	}
}

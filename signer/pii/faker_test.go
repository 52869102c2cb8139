package pii

import (
	"bufio"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
)

// TestFaker measures recall per kind and precision on values made by a
// generator we did not write (testdata/faker.tsv, from gen_faker.mjs:
// faker-js, eight locales). A value counts as found when one span of its
// kind covers all of it; a name when the name field rule replaces it. A
// value of kind none.* must come through a neutral field unchanged.
func TestFaker(t *testing.T) {
	f, err := os.Open("testdata/faker.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type score struct{ n, found int }
	recall := map[string]*score{}
	falsePos := map[string]int{} // by the kind wrongly found
	negatives := map[string]*score{}
	a := New(Options{Mode: Hash, Key: testKey, Always: DefaultAlways, Never: DefaultNever})
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		kind, locale, value := parts[0], parts[1], parts[2]
		if neg, ok := strings.CutPrefix(kind, "none."); ok {
			s := negatives[neg]
			if s == nil {
				s = &score{}
				negatives[neg] = s
			}
			s.n++
			val, _ := json.Marshal(value)
			body := `"details":{"v":` + string(val) + `}`
			if out := string(a.AppendBody(nil, []byte(body))); out != body {
				s.found++
				for _, sp := range detect(value, nil, a.phones) {
					falsePos[Detectors[sp.kind]]++
				}
				t.Logf("%s %s %q became %s", kind, locale, value, out)
			}
			continue
		}
		s := recall[kind]
		if s == nil {
			s = &score{}
			recall[kind] = s
		}
		s.n++
		if kind == "name" {
			val, _ := json.Marshal(value)
			if out := string(a.AppendBody(nil, []byte(`"details":{"name":`+string(val)+`}`))); !strings.Contains(out, value) {
				s.found++
			}
			continue
		}
		found := false
		for _, sp := range detect(value, nil, a.phones) {
			if Detectors[sp.kind] == kind && sp.start == 0 && sp.end == len(value) {
				found = true
			}
		}
		if found {
			s.found++
		} else {
			t.Logf("missed %s %s %q", kind, locale, value)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	kinds := make([]string, 0, len(recall))
	for k := range recall {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	t.Logf("%-8s %6s %6s %8s %6s %9s", "kind", "values", "found", "recall", "fp", "precision")
	for _, k := range kinds {
		s := recall[k]
		r := float64(s.found) / float64(s.n)
		p := 1.0
		if s.found+falsePos[k] > 0 {
			p = float64(s.found) / float64(s.found+falsePos[k])
		}
		t.Logf("%-8s %6d %6d %7.1f%% %6d %8.1f%%", k, s.n, s.found, 100*r, falsePos[k], 100*p)
		if r < 0.95 || p < 0.99 {
			t.Errorf("%s: recall %.3f precision %.3f; want recall >= 95%% and precision >= 99%%", k, r, p)
		}
	}
	negKinds := make([]string, 0, len(negatives))
	total, kept := 0, 0
	for k := range negatives {
		negKinds = append(negKinds, k)
	}
	sort.Strings(negKinds)
	for _, k := range negKinds {
		s := negatives[k]
		total += s.n
		kept += s.n - s.found
		t.Logf("none.%-8s %6d values, %4d changed", k, s.n, s.found)
	}
	p := float64(kept) / float64(total)
	t.Logf("not personal data: %d of %d kept (%.1f%%)", kept, total, 100*p)
	if p < 0.99 {
		t.Errorf("%.3f of the values that are not personal data kept; want >= 99%%", p)
	}
}

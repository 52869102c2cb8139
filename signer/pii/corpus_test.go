package pii

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestCorpus runs the detectors over the labelled corpus and prints
// precision and recall per detector. A detection is right only with the
// labelled kind and exactly the labelled span.
func TestCorpus(t *testing.T) {
	f, err := os.Open("testdata/corpus.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type score struct{ tp, fp, fn int }
	scores := map[string]*score{}
	for _, d := range Detectors {
		scores[d] = &score{}
	}
	sc := bufio.NewScanner(f)
	rows := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		rows++
		parts := strings.SplitN(line, "\t", 3)
		kind, value, text := parts[0], parts[1], parts[2]
		found := false
		for _, sp := range detect(text, nil, newPhoneRegions(nil)) {
			name := Detectors[sp.kind]
			if kind != "none" && name == kind && text[sp.start:sp.end] == value {
				scores[name].tp++
				found = true
				continue
			}
			scores[name].fp++
			t.Logf("false positive %s %q in %q", name, text[sp.start:sp.end], text)
		}
		if kind != "none" && !found {
			scores[kind].fn++
			t.Logf("missed %s %q in %q", kind, value, text)
		}
	}
	if rows < 300 {
		t.Fatalf("corpus has %d rows, want at least 300", rows)
	}
	t.Logf("%-6s %5s %5s %5s %9s %7s", "", "tp", "fp", "fn", "precision", "recall")
	for _, d := range Detectors {
		s := scores[d]
		precision := 1.0
		if s.tp+s.fp > 0 {
			precision = float64(s.tp) / float64(s.tp+s.fp)
		}
		recall := 1.0
		if s.tp+s.fn > 0 {
			recall = float64(s.tp) / float64(s.tp+s.fn)
		}
		t.Logf("%-6s %5d %5d %5d %8.1f%% %6.1f%%", d, s.tp, s.fp, s.fn, 100*precision, 100*recall)
		if recall < 1 || precision < 0.99 {
			t.Errorf("%s: precision %.3f recall %.3f; want recall 100%% and precision >= 99%%", d, precision, recall)
		}
	}
}

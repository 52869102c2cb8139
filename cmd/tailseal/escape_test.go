package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/store"
)

// escapeVariants are one value each, written five ways as JSON writers
// do: as is, Python's json.dumps (\uXXXX for non-ASCII), upper-case hex,
// PHP's \/ and gratuitous escapes of plain letters.
var escapeVariants = []struct {
	field, value string
	raw          [5]string // the JSON string contents, as the application writes them
}{
	{"workflow", "café_onboarding", [5]string{`café_onboarding`, `caf\u00e9_onboarding`, `caf\u00E9_onboarding`, `\u0063af\u00e9_onboarding`, `caf\u00e9\u005fonboarding`}},
	{"event_type", `lead "vip"`, [5]string{`lead \"vip\"`, `lead \u0022vip\u0022`, `\u006cead \"vip\u0022`, `lead \"vip\"`, `l\u0065ad \"vip\"`}},
	{"lead_id", `LEAD/42\A`, [5]string{`LEAD/42\\A`, `LEAD\/42\\A`, `LEAD\u002f42\u005cA`, `LEAD\/42\u005CA`, `\u004cEAD/42\\A`}},
	{"actor", "ops@example.org", [5]string{`ops@example.org`, `ops\u0040example.org`, `ops\u0040example\u002eorg`, `\u006fps@example.org`, `ops@ex\u0061mple.org`}},
}

// A value the application escapes in any of the ways JSON allows is one
// value to stats, to every filter, to the index (the first block lands in
// a compressed, indexed segment) and to --subject.
func TestEscapedSeedValuesAreOneValue(t *testing.T) {
	piiKey := strings.Repeat("07", 32)
	e := newEnv(t, "TAILSEAL_SEGMENT_MAX_MB=1", "TAILSEAL_PII_KEY="+piiKey)
	p := e.start()
	f, err := os.OpenFile(e.source, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	block := func() {
		for k := range 5 {
			fmt.Fprintf(f, `{"event_type":"%s","actor":"%s","lead_id":"%s","workflow":"%s","details":{"k":%d}}`+"\n",
				escapeVariants[1].raw[k], escapeVariants[3].raw[k], escapeVariants[2].raw[k], escapeVariants[0].raw[k], k)
			n++
		}
	}
	block()
	filler := `{"event_type":"filler","workflow":"other","details":{"pad":"` + strings.Repeat("x", 400) + `"}}` + "\n"
	for range 3000 { // 1.3 MB: the first block's segment rotates
		f.WriteString(filler)
		n++
	}
	block()
	f.Close()
	e.waitStored(n)
	storeDir := filepath.Join(e.dataDir, "store")
	waitFor(t, "an indexed segment", 30*time.Second, func() bool {
		ix, err := store.ReadIndex(storeDir)
		return err == nil && len(ix) > 0
	})
	p.stop(t)

	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := cliEnv(t, e.dataDir, []string{"TAILSEAL_PII_KEY=" + piiKey}, args...)
		if code != 0 {
			t.Fatalf("tailseal %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	var st struct {
		ByType     map[string]int `json:"by_type"`
		ByWorkflow map[string]int `json:"by_workflow"`
	}
	if err := json.Unmarshal([]byte(run("stats", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.ByType[`lead "vip"`] != 10 || st.ByWorkflow["café_onboarding"] != 10 {
		t.Errorf("stats: by_type %v, by_workflow %v; want 10 of each value", st.ByType, st.ByWorkflow)
	}
	for _, c := range []struct{ flag, value string }{
		{"--workflow", "café_onboarding"}, {"--type", `lead "vip"`}, {"--lead", `LEAD/42\A`}, {"--subject", "ops@example.org"},
	} {
		out := run("query", c.flag, c.value, "--json", "--limit", "100")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 10 {
			t.Errorf("query %s %q: %d records, want 10", c.flag, c.value, len(lines))
			continue
		}
		for _, l := range lines {
			var r map[string]any
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			for _, v := range escapeVariants[:3] {
				if r[v.field] != v.value {
					t.Errorf("query %s: %s is %q, want %q", c.flag, v.field, r[v.field], v.value)
				}
			}
		}
	}
	s := readStore(t, e.dataDir)
	for _, l := range s.line {
		if strings.Contains(string(l), `\u00e9`) || strings.Contains(string(l), `\/`) {
			t.Errorf("a seed value was stored as the application escaped it: %s", l)
			break
		}
	}
}

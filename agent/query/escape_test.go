package query

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
)

// legacyValues are seed values as an application escaped them, which the
// agent stored as they were before it canonicalized at ingest.
var legacyValues = []struct{ typ, workflow, lead string }{
	{`lead \"vip\"`, `café_onboarding`, `LEAD/42\\A`},
	{`lead \u0022vip\u0022`, `caf\u00e9_onboarding`, `LEAD\/42\\A`},
	{`lead \"vip\u0022`, `caf\u00E9_onboarding`, `LEAD\u002f42\u005cA`},
}

// buildLegacy writes a store whose records hold seed values escaped in
// several ways, in 64 KiB segments, and an index as the agent wrote it
// before values were canonicalized: raw keys, no canonical flag, and lead
// filters that do not hold the canonical value.
func buildLegacy(t *testing.T) (dir string, perValue int) {
	dir = filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o700)
	st, _, err := store.Open(store.Options{Dir: dir, SegmentMax: 64 << 10, SegmentMaxAge: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	chain := signer.NewChain(signer.NewStaticKey(bytes.Repeat([]byte{1}, 32)), 0, [32]byte{})
	var buf []byte
	for i := range 1500 {
		v := legacyValues[i%len(legacyValues)]
		if i%2 == 1 {
			v.typ, v.workflow, v.lead = "filler", "other", fmt.Sprintf("LEAD-%04d", i)
		} else {
			perValue++
		}
		first := chain.Seq() + 1
		buf = chain.Begin(buf[:0])
		buf = fmt.Appendf(buf, `"timestamp":"2026-02-01T00:00:00Z","event_type":"%s","actor":"app","lead_id":"%s","workflow":"%s","details":{"pad":"%s"}`,
			v.typ, v.lead, v.workflow, strings.Repeat("p", 200))
		buf = record.AppendSource(buf, `"audit.log"`, "1:1:0", int64(i)*300, 300)
		buf = chain.Finish(buf)
		if err := st.Append(buf, first, first); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.CompressRotated(store.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	legacyIndex(t, dir)
	return dir, perValue / len(legacyValues) * len(legacyValues)
}

// legacyIndex rewrites the index as it was: type and workflow keys as
// escaped by the application, and a lead filter without the canonical
// lead (that of another value).
func legacyIndex(t *testing.T, dir string) {
	path := filepath.Join(dir, store.IndexFile)
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		t.Fatalf("no index: %v", err)
	}
	var out []byte
	for i, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var e map[string]json.RawMessage
		json.Unmarshal(l, &e)
		delete(e, "canonical")
		raw := legacyValues[i%len(legacyValues)]
		e["types"], _ = json.Marshal(map[string]int{"filler": 1, raw.typ: 1})
		e["workflows"], _ = json.Marshal(map[string]int{"other": 1, raw.workflow: 1})
		e["leads"] = []byte(`{"bits":"AAAAAAAAAAA=","k":1}`) // empty
		b, _ := json.Marshal(e)
		out = append(append(out, b...), '\n')
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A store written before seed values were canonicalized keeps its bytes,
// and readers still count and find one value however it was escaped,
// index or not.
func TestLegacyEscapedValues(t *testing.T) {
	dir, n := buildLegacy(t)
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, problems := s.Stats(context.Background(), Filter{})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if st.ByType[`lead "vip"`] != n || st.ByWorkflow["café_onboarding"] != n {
		t.Errorf("stats: %v %v, want %d of each", st.ByType, st.ByWorkflow, n)
	}
	for _, f := range []Filter{{Type: `lead "vip"`}, {Workflow: "café_onboarding"}, {Lead: `LEAD/42\A`}, {Subjects: []string{`LEAD/42\A`}}} {
		recs, problems := s.Newest(context.Background(), f, 10000)
		if len(recs) != n || len(problems) > 0 {
			t.Errorf("%+v: %d records (%v), want %d", f, len(recs), problems, n)
		}
	}
}

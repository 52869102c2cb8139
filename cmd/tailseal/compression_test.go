package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// An agent on TAILSEAL_COMPRESSION=zstd, killed -9 and restarted, then
// changed to gzip: the store holds both kinds of segments, each in
// members with its index line, and every command reads it whole: verify
// finds it intact, stats and a lead lookup answer from it, zstdcat and
// zcat read the segments as they are, and the outside verifier (the zstd
// tool, no code of ours) recomputes every checkpoint. Without zstd and
// gzip installed the tools' part is left out, unless TAILSEAL_REQUIRE_ZSTD
// is set (.ci/run sets it and installs them).
func TestZstdThenGzip(t *testing.T) {
	tools := true
	for _, tool := range []string{"zstd", "zstdcat", "zcat"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("TAILSEAL_REQUIRE_ZSTD") != "" {
				t.Fatalf("%s: %v, and TAILSEAL_REQUIRE_ZSTD is set", tool, err)
			}
			t.Logf("%s: %v: the store is not read by the standard tools", tool, err)
			tools = false
		}
	}
	e := newEnv(t, "TAILSEAL_SEGMENT_MAX_MB=1", "TAILSEAL_CHECKPOINT_EVERY=700", "TAILSEAL_COMPRESSION=zstd")
	w := newWriter(t, e.source)
	w.write(4000)
	p := e.start()
	e.waitStored(2000)
	p.kill9(t)
	p = e.start()
	w.write(4000)
	e.waitStored(w.next)
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	e.extra[len(e.extra)-1] = "TAILSEAL_COMPRESSION=gzip"
	p = e.start()
	w.write(6000)
	e.waitStored(w.next)
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	e.checkExactly(readStore(t, e.dataDir), w.next)

	dir := filepath.Join(e.dataDir, "store")
	segs, _ := store.List(dir)
	index, err := store.ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[store.Compression]int{}
	for _, seg := range segs[:len(segs)-1] {
		c, ok := store.CompressionOf(seg.Name)
		if !ok {
			t.Fatalf("%s: a rotated segment not compressed", seg.Name)
		}
		kinds[c]++
		if e, ok := index[seg.Name]; !ok || e.Filters == nil || e.Filters.Members == nil || e.Filters.Members.Count < 2 || !store.Intact(dir, &e) {
			t.Fatalf("%s: index entry %+v", seg.Name, e)
		}
		if !tools {
			continue
		}
		cat := map[store.Compression]string{store.Gzip: "zcat", store.Zstd: "zstdcat"}[c]
		out, err := exec.Command(cat, filepath.Join(dir, seg.Name)).Output()
		if err != nil {
			t.Fatalf("%s %s: %v", cat, seg.Name, err)
		}
		lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
		first, _ := record.Seq(lines[0])
		if first != seg.First || int(index[seg.Name].Count) != len(lines) {
			t.Fatalf("%s %s: %d lines from seq %d; the index says %d from %d", cat, seg.Name, len(lines), first, index[seg.Name].Count, seg.First)
		}
	}
	if kinds[store.Zstd] < 2 || kinds[store.Gzip] < 2 {
		t.Fatalf("compressed segments %v, want zstd ones then gzip ones", kinds)
	}

	env := []string{"TAILSEAL_DATA_DIR=" + e.dataDir}
	if out, stderr, code := runCLI(t, env, "verify"); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code := runCLI(t, env, "stats", "--json")
	var st struct{ Events int }
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Events < w.next {
		t.Fatalf("stats: exit %d, %s%s", code, out, stderr)
	}
	for _, n := range []int{10, 3000, 9000, w.next - 1} { // in zstd, gzip and the active segment
		lead := fmt.Sprintf("L-%08d", n)
		out, stderr, code := runCLI(t, env, "query", "--lead", lead, "--json")
		if code != 0 || strings.Count(out, `"lead_id":"`+lead+`"`) != 1 || stderr != "" {
			t.Fatalf("query --lead %s: exit %d\n%s%s", lead, code, out, stderr)
		}
	}
	if !tools {
		return
	}
	b, _ := os.ReadFile(filepath.Join(e.dataDir, "keys", "checkpoint.pub"))
	if out, code := ext(t, "roots", strings.TrimSpace(string(b)), e.dataDir); code != 0 {
		t.Fatalf("outside verifier: exit %d: %s", code, out)
	}
}

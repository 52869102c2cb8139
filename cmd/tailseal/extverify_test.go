package main

import (
	"encoding/base64"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tailseal/tailseal/agent/store"
)

// extVerifier is testdata/extverify, built once: a checker of the store's
// checkpoints and proofs that uses none of tailseal's code.
var extVerifier struct {
	once      sync.Once
	path, err string
}

func buildExtVerifier(t *testing.T) string {
	t.Helper()
	extVerifier.once.Do(func() {
		extVerifier.path = filepath.Join(filepath.Dir(binPath), "extverify")
		if out, err := exec.Command("go", "build", "-o", extVerifier.path, "./testdata/extverify").CombinedOutput(); err != nil {
			extVerifier.err = string(out)
		}
	})
	if extVerifier.err != "" {
		t.Fatal(extVerifier.err)
	}
	return extVerifier.path
}

// ext runs the outside verifier and returns its output and exit code.
func ext(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(buildExtVerifier(t), args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// editRecord changes the record a proof bundle carries (its timestamp's
// first digit), whether as JSON or in a tlog-proof's extra line.
func editRecord(t *testing.T, bundle []byte) []byte {
	t.Helper()
	edit := func(rec string) string {
		out := strings.Replace(rec, `"timestamp":"2`, `"timestamp":"3`, 1)
		if out == rec {
			t.Fatalf("no timestamp in %s", rec)
		}
		return out
	}
	if head, rest, ok := strings.Cut(string(bundle), "\nextra "); ok {
		b64, tail, _ := strings.Cut(rest, "\n")
		rec, _ := base64.StdEncoding.DecodeString(b64)
		return []byte(head + "\nextra " + base64.StdEncoding.EncodeToString([]byte(edit(string(rec)))) + "\n" + tail)
	}
	var b map[string]any
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	b["record"] = edit(b["record"].(string))
	out, _ := json.Marshal(b)
	return out
}

// The outside verifier imports the tlog and note packages of the Go
// checksum database and the standard library, nothing else.
func TestExternalVerifierImportsNoTailseal(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "testdata/extverify/main.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if strings.Contains(p, ".") && p != "golang.org/x/mod/sumdb/tlog" && p != "golang.org/x/mod/sumdb/note" {
			t.Errorf("extverify imports %s", p)
		}
	}
}

// Code that is not ours recomputes every checkpoint's root from the lines
// of a store rotated and compressed across many segments and recovered
// from kill -9 eight times, and checks prove's bundles and an export
// with proofs; a bundle whose record was edited fails.
func TestExternalVerifier(t *testing.T) {
	d, _, vkey := makeTreeLog(t)
	if gz, _ := filepath.Glob(filepath.Join(d, "store", "*.jsonl.gz")); len(gz) < 5 {
		t.Fatalf("%d compressed segments, want 5 or more", len(gz))
	}
	index, _ := store.ReadIndex(filepath.Join(d, "store"))
	for name, e := range index {
		if e.Filters == nil || e.Filters.Members == nil || e.Filters.Members.Count < 2 {
			t.Fatalf("%s is not in gzip members: %+v", name, e.Filters)
		}
	}
	if out, code := ext(t, "roots", vkey, d); code != 0 || !strings.Contains(out, "compressed") {
		t.Fatalf("roots: exit %d: %s", code, out)
	}
	sizes := checkpointSizes(t, d)
	for _, c := range []struct {
		check string
		args  []string
	}{
		{"inclusion", []string{"--seq", "1", "--json"}},
		{"inclusion", []string{"--seq", strconv.FormatUint(sizes[len(sizes)-1], 10), "--json"}},
		{"inclusion", []string{"--seq", "4000", "--size", strconv.FormatUint(sizes[len(sizes)/2], 10), "--json"}},
		{"proof", []string{"--seq", "2500"}},
		{"consistency", []string{"--from", strconv.FormatUint(sizes[0], 10), "--json"}},
		{"consistency", []string{"--from", strconv.FormatUint(sizes[1], 10), "--to", strconv.FormatUint(sizes[len(sizes)/2], 10), "--json"}},
	} {
		path, stderr, code := prove(t, d, c.args...)
		if code != 0 {
			t.Fatalf("prove %v: exit %d: %s", c.args, code, stderr)
		}
		if out, code := ext(t, c.check, vkey, path); code != 0 {
			t.Fatalf("%s of prove %v: exit %d: %s", c.check, c.args, code, out)
		}
		if c.check == "consistency" {
			continue
		}
		data, _ := os.ReadFile(path)
		edited := path + ".edited"
		os.WriteFile(edited, editRecord(t, data), 0o644)
		if out, code := ext(t, c.check, vkey, edited); code != 1 {
			t.Fatalf("%s of an edited bundle: exit %d: %s", c.check, code, out)
		}
	}
	exp := filepath.Join(t.TempDir(), "export.jsonl")
	if _, stderr, code := tool(t, []string{"TAILSEAL_DATA_DIR=" + d}, "export", "--proofs", "--format", "jsonl", "--workflow", "sales_lead_management", "--output", exp); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	if out, code := ext(t, "export", vkey, exp); code != 0 || strings.HasPrefix(out, "ok: 0 ") {
		t.Fatalf("export: exit %d: %s", code, out)
	}
}

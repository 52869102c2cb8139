package main

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tailseal/tailseal"

// importRule: a package in the tree from (from, or below it), but not in
// the tree besides, imports no module package in the trees of deny,
// except those in the trees of allow. stdOnly forbids every import outside
// the standard library.
type importRule struct {
	from, besides string
	deny, allow   []string
	stdOnly       bool
	rule          string // as the package docs write it
}

// importRules are habit 13 of STYLE.md: imports go one way, down the data
// flow. cmd assembles; agent produces; signer defines and checks what is
// produced; sinks consume. Only cmd/... may import everything.
var importRules = []importRule{
	{from: "signer/record", stdOnly: true,
		rule: "signer/record imports only the standard library"},
	{from: "signer", deny: []string{"agent", "sinks", "cmd"}, allow: []string{"agent/atomicfile"},
		rule: "signer/... imports no agent/... except agent/atomicfile, no sinks/..., no cmd/..."},
	{from: "agent", deny: []string{"sinks", "cmd"},
		rule: "agent/... imports no sinks/... and no cmd/..."},
	{from: "sinks", deny: []string{"agent", "cmd"}, allow: []string{"agent/atomicfile", "agent/clock"},
		rule: "sinks/... imports no agent/... except the leaf utilities agent/atomicfile and agent/clock, and no cmd/..."},
	{from: "", besides: "cmd", deny: []string{"cmd"},
		rule: "only cmd/... imports cmd/..."},
}

// allowedEdges are single imports that break a rule for now (none).
var allowedEdges = map[string]bool{}

// under reports whether the module package pkg (a path below the module,
// "" for the root) is tree or below it; the tree "" holds every package.
func under(pkg, tree string) bool {
	return tree == "" || pkg == tree || strings.HasPrefix(pkg, tree+"/")
}

// violates returns the rule that forbids pkg to import imp, if any. imp is
// a full import path.
func violates(pkg, imp string) (importRule, bool) {
	rel, inModule := strings.CutPrefix(imp, module+"/")
	inModule = inModule || imp == module
	std := !strings.Contains(strings.Split(imp, "/")[0], ".")
	for _, r := range importRules {
		if !under(pkg, r.from) || r.besides != "" && under(pkg, r.besides) {
			continue
		}
		if r.stdOnly && !std {
			return r, true
		}
		if !inModule || allowedEdges[pkg+" -> "+rel] {
			continue
		}
		denied, allowed := false, false
		for _, d := range r.deny {
			denied = denied || under(rel, d)
		}
		for _, a := range r.allow {
			allowed = allowed || under(rel, a)
		}
		if denied && !allowed {
			return r, true
		}
	}
	return importRule{}, false
}

// listed is a package as `go list -json` describes it.
type listed struct {
	ImportPath                         string
	Imports, TestImports, XTestImports []string
}

// modulePackages lists every package of the module with its imports,
// its tests' included.
func modulePackages(t *testing.T) []listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", module+"/...")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("go list: %v\n%s", err, exit.Stderr)
	} else if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	for dec := json.NewDecoder(strings.NewReader(string(out))); ; {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// Every import of every package of the module, its tests' included, keeps
// the dependency rules; the message names the edge and the rule it breaks.
func TestImportRules(t *testing.T) {
	pkgs := modulePackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; is the test running inside the module?", len(pkgs))
	}
	for _, p := range pkgs {
		pkg := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, imports := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
			for _, imp := range imports {
				if r, bad := violates(pkg, imp); bad {
					t.Errorf("%s imports %s: the rule is %q", pkg, imp, r.rule)
				}
			}
		}
	}
}

// The rules catch what they should, and nothing else.
func TestImportRuleCases(t *testing.T) {
	for _, c := range []struct {
		pkg, imp string
		bad      bool
	}{
		{"agent", module + "/sinks", true},
		{"agent/store", module + "/sinks/webhook", true},
		{"agent/store", module + "/cmd/tailseal", true},
		{"agent", module + "/signer/record", false},
		{"agent", module + "/agent/store", false},
		{"sinks/webhook", module + "/agent/store", true},
		{"sinks/webhook", module + "/agent/atomicfile", false},
		{"sinks", module + "/agent/clock", false},
		{"sinks", module + "/agent/config", true},
		{"sinks/webhook", module + "/signer/record", false},
		{"sinks", module + "/cmd/tailseal", true},
		{"signer", module + "/agent/atomicfile", false},
		{"signer/pii", module + "/agent/parse", true},
		{"signer/pii", module + "/sinks", true},
		{"signer/verify", module + "/agent/store", true},
		{"signer/verify", module + "/agent/query", true},
		{"signer/record", "bytes", false},
		{"signer/record", "golang.org/x/mod/sumdb/tlog", true},
		{"signer/record", module + "/agent/atomicfile", true},
		{"deploy/kubernetes", module + "/cmd/tailseal", true},
		{"cmd/tailseal", module + "/sinks/webhook", false},
		{"cmd/tailseal", module + "/cmd/tailseal", false},
		{"cmd/tailseal", module + "/agent/store", false},
	} {
		if _, bad := violates(c.pkg, c.imp); bad != c.bad {
			t.Errorf("%s imports %s: violation %v, want %v", c.pkg, c.imp, bad, c.bad)
		}
	}
}

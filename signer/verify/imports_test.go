package verify

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The verifier checks what the agent produced, so it must not depend on
// the agent: it imports the record contract, the signer's keys and notes,
// and the standard library, and anyone can run it on lines from anywhere.
func TestImportsNothingOfTheAgent(t *testing.T) {
	allowed := map[string]bool{
		"github.com/tailseal/tailseal/signer":        true,
		"github.com/tailseal/tailseal/signer/record": true,
		"github.com/tailseal/tailseal/signer/merkle": true,
		"golang.org/x/mod/sumdb/note":                true,
		"golang.org/x/mod/sumdb/tlog":                true,
	}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(path, ".") && !allowed[path] {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}

package parse

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tailseal/tailseal/signer/record"
)

// FuzzValidate holds validate to encoding/json's Valid, and its depth to a
// plain count of brackets outside strings.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		`{"a":1}`, ` [1, 2.5e-3, -0, true, false, null, "x\u00e9\n"] `, `{"a":{"b":[{}]}}`, `{}`, `[]`, `""`, `0`,
		`{"a":1,}`, `[1,]`, `{"a" 1}`, `{,}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nul`, `"\x"`, `"\u12"`, "\"a\x01\"",
		`{"a":1}}`, `[[`, `]`, "\"\xff\"", `{"a":[1,{"b":2}],"c":"}"}`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000), `1 2`, "\t{ \"k\" :\r\n\"v\" }\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ok, d := validate(b)
		if want := json.Valid(b); ok != want {
			t.Fatalf("validate(%q) = %v, json.Valid says %v", b, ok, want)
		}
		if ok && d != bracketDepth(b) {
			t.Fatalf("validate(%q) depth %d, want %d", b, d, bracketDepth(b))
		}
	})
}

// bracketDepth is the maximum nesting of objects and arrays in valid JSON.
func bracketDepth(b []byte) int {
	level, deepest := 0, 0
	for j := 0; j < len(b); j++ {
		switch b[j] {
		case '"':
			j = record.SkipString(b, j) - 1
		case '{', '[':
			level++
			deepest = max(deepest, level)
		case '}', ']':
			level--
		}
	}
	return deepest
}

func BenchmarkValidate(b *testing.B) {
	line := []byte(`{"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"lead_ingested","actor":"system","lead_id":"LEAD-000123","workflow":"sales_lead_management","details":{"source":"web_form","campaign":"spring","score":87,"utm":{"medium":"cpc"}}}`)
	b.SetBytes(int64(len(line)))
	b.Run("tailseal", func(b *testing.B) {
		for b.Loop() {
			validate(line)
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		for b.Loop() {
			json.Valid(line)
		}
	})
}

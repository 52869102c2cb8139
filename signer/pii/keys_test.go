package pii

import (
	"encoding/json"
	"strings"
	"testing"
)

// Issue 13: personal data in object keys and in JSON numbers is replaced
// too; a replaced key becomes its pseudonym, a replaced number a string.
func TestKeysAndNumbers(t *testing.T) {
	for _, c := range []struct{ body, raw string }{
		{`"details":{"bob@example.org":true}`, "bob@example.org"},
		{`"details":{"users":{"call +1 555 123 4567":1}}`, "555 123 4567"},
		{`"details":[{"203.0.113.45":{"ok":1}}]`, "203.0.113.45"},
		{`"details":{"card":4111111111111111}`, "4111111111111111"},
		{`"details":{"cards":[4111111111111111, 5500000000000004]}`, "5500000000000004"},
		{`"details":{"n":4155552671}`, "4155552671"},
		{`"details":{"n": 4155552671 ,"m":2}`, "4155552671"},
		{`"workflow":{"x":{"bob@example.org":"y"}}`, "bob@example.org"},
		{`"name":{"bob@example.org":"y"}`, "bob@example.org"},
	} {
		for _, mode := range []Mode{Hash, Redact, Mask} {
			out := anon(mode, c.body)
			if strings.Contains(out, c.raw) {
				t.Errorf("mode %d: %q survived: %s", mode, c.raw, out)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte("{"+out+"}"), &m); err != nil {
				t.Errorf("mode %d: invalid JSON %v: %s", mode, err, out)
			}
			if again := anon(mode, out); again != out {
				t.Errorf("mode %d: not idempotent:\n%s\n%s", mode, out, again)
			}
		}
	}
	if out := anon(Hash, `"details":{"card":4111111111111111,"score":87,"ts":1738700000,"amount":-12.5e3}`); !strings.HasPrefix(out, `"details":{"card":"<card:`) || !strings.HasSuffix(out, `","score":87,"ts":1738700000,"amount":-12.5e3}`) {
		t.Errorf("a card number did not become a string pseudonym, or other numbers changed: %s", out)
	}
	if out := anon(Hash, `"details":{"bob@example.org":true,"note":1}`); !strings.HasPrefix(out, `"details":{"<email:`) || !strings.HasSuffix(out, `>":true,"note":1}`) {
		t.Errorf("a key did not become its pseudonym: %s", out)
	}
}

// Issue 13: keys that become one pseudonym stay distinct keys, each with
// its value, and a replaced key never takes the name of a key that is
// there already.
func TestKeysCollide(t *testing.T) {
	a := New(Options{Mode: Hash, Key: testKey})
	p := a.Pseudonym("email", "bob@example.org")
	for _, c := range []struct {
		body string
		want []string // keys in order
	}{
		{`"details":{"bob@example.org":1,"BOB@example.org":2,"Bob@Example.org":3}`, []string{p, p + "~2", p + "~3"}},
		{`"details":{"bob@example.org":0,"bob@example.org":{"x":1}}`, []string{p, p + "~2"}}, // the same key twice: both kept
		{`"details":{"bob@example.org":1,"` + p + `":2}`, []string{p + "~2", p}},
		{`"details":{"` + p + `~2":0,"bob@example.org":1,"BOB@example.org":2,"` + p + `":3}`, []string{p + "~2", p + "~3", p + "~4", p}},
		{`"details":{"a":{"bob@example.org":1},"b":{"bob@example.org":2}}`, nil}, // other objects: no suffix
	} {
		out := anon(Hash, c.body)
		var m map[string]map[string]any
		if err := json.Unmarshal([]byte("{"+out+"}"), &m); err != nil {
			t.Fatalf("invalid JSON %v: %s", err, out)
		}
		if c.want == nil {
			if strings.Contains(out, "~") {
				t.Errorf("suffix across objects: %s", out)
			}
			continue
		}
		if len(m["details"]) != len(c.want) {
			t.Errorf("%d keys, want %d (a value was lost): %s", len(m["details"]), len(c.want), out)
		}
		for _, k := range c.want {
			if !strings.Contains(out, `"`+k+`":`) {
				t.Errorf("key %q missing: %s", k, out)
			}
		}
		if again := anon(Hash, out); again != out {
			t.Errorf("not idempotent:\n%s\n%s", out, again)
		}
	}
	// mask mode: two addresses mask alike
	out := anon(Mask, `"details":{"bob@example.org":1,"bill@example.org":2}`)
	if out != `"details":{"b***@example.org":1,"b***@example.org~2":2}` {
		t.Errorf("mask: %s", out)
	}
}

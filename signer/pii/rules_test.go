package pii

import (
	"strings"
	"testing"
)

// Issue 13: a field never touched keeps its scalar value only; objects and
// arrays under it are scanned like any other data, field rules included.
func TestNeverFieldScalarsOnly(t *testing.T) {
	for _, c := range []struct{ body, raw, kept string }{
		{`"workflow":{"email":"bob@example.org"}`, "bob@example.org", ""},
		{`"workflow":{"note":"mail bob@example.org"}`, "bob@example.org", ""},
		{`"details":{"lead_id":["LEAD-1","call +1 555 123 4567"]}`, "555 123 4567", "LEAD-1"},
		{`"details":{"crm_id":{"owner":{"name":"Zed Quux"}}}`, "Zed Quux", ""},
		{`"details":{"timestamp":[{"ip":"203.0.113.45"}]}`, "203.0.113.45", ""},
		// the scalar itself stays, whatever it looks like
		{`"lead_id":"bob@example.org","details":{"workflow":"4111 1111 1111 1111","crm_id":4111111111111111}`, "", "bob@example.org"},
	} {
		for _, mode := range []Mode{Hash, Redact, Mask} {
			out := anon(mode, c.body)
			if c.raw != "" && strings.Contains(out, c.raw) {
				t.Errorf("mode %d: %q survived under a never field: %s", mode, c.raw, out)
			}
			if c.kept != "" && !strings.Contains(out, c.kept) {
				t.Errorf("mode %d: %q was changed: %s", mode, c.kept, out)
			}
		}
	}
	if out := anon(Hash, `"details":{"workflow":"4111 1111 1111 1111","crm_id":4111111111111111}`); out != `"details":{"workflow":"4111 1111 1111 1111","crm_id":4111111111111111}` {
		t.Errorf("a never field's scalar changed: %s", out)
	}
}

// Issue 13: in a field replaced whole, only the exact tokens this mode
// writes are left as they are; a value merely shaped like one is replaced.
func TestFieldValueShapedLikePseudonym(t *testing.T) {
	a := New(Options{Mode: Hash, Key: testKey, Always: DefaultAlways, Never: DefaultNever})
	own := a.Pseudonym("name", "jo smith")
	for _, c := range []struct {
		mode  Mode
		value string
		keep  bool
	}{
		{Hash, own, true},
		{Hash, "<email:0123456789ab>", true}, // a detector's kind
		{Hash, "<jo_smith>", false},
		{Hash, "<name>", false},                // redact's token, not hash's
		{Hash, "<name:0123456789>", false},     // too short
		{Hash, "<name:0123456789abcd>", false}, // too long
		{Hash, "<name:0123456789AB>", false},   // not our hex
		{Hash, "<jo:0123456789ab>", false},     // not a tag of ours
		{Hash, "<a:b>", false},
		{Redact, "<name>", true},
		{Redact, "<email>", true},
		{Redact, "<jo_smith>", false},
		{Redact, "<name:0123456789ab>", false},
		{Mask, "J***", true},
		{Mask, "***", true},
		{Mask, "Jo Smith ***", false},
		{Mask, "***Jo Smith", false},
	} {
		out := anon(c.mode, `"name":"`+c.value+`"`)
		if kept := out == `"name":"`+c.value+`"`; kept != c.keep {
			t.Errorf("mode %d: %q kept %v, want %v: %s", c.mode, c.value, kept, c.keep, out)
		}
	}
	// mask mode's email and phone forms
	for body, keep := range map[string]bool{
		`"email":"j***@example.com"`:     true,
		`"email":"jo***@example.com"`:    false,
		`"email":"j***@a@example.com"`:   false,
		`"phone":"***-***-4567"`:         true,
		`"phone":"***-***-45678"`:        false,
		`"phone":"call ***-***-4567"`:    false,
		`"name":"***-***-4567"`:          false,
		`"email":"jo.smith@example.com"`: false,
	} {
		if out := anon(Mask, body); (out == body) != keep {
			t.Errorf("mask: %s kept %v, want %v: %s", body, out == body, keep, out)
		}
	}
}

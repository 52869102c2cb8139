package pii

import (
	"bytes"
	"encoding/json"
	"testing"
)

var testKey = bytes.Repeat([]byte{9}, 32)

func anon(mode Mode, body string) string {
	a := New(Options{Mode: mode, Key: testKey, Always: DefaultAlways, Never: DefaultNever})
	return string(a.AppendBody(nil, []byte(body)))
}

func TestModes(t *testing.T) {
	body := `"event_type":"lead_ingested","actor":"bob@corp.example","lead_id":"LEAD-0001234567","details":{"note":"call +1 (555) 123-4567 or mail Alice.Smith@example.com","ip":"203.0.113.45","card":"4111 1111 1111 1111","name":"Alice Smith","nested":{"phone":5551234567,"tags":["ssn 123-45-6789","ok"]},"order":"order 123456789012 shipped","version":"v1.2.3.4"}`
	for _, mode := range []Mode{Hash, Redact, Mask} {
		out := anon(mode, body)
		t.Logf("%d: %s", mode, out)
		var m map[string]any
		if err := json.Unmarshal([]byte("{"+out+"}"), &m); err != nil {
			t.Fatalf("mode %d: invalid JSON: %v\n%s", mode, err, out)
		}
		for _, raw := range []string{"bob@corp.example", "Alice.Smith@example.com", "123-4567", "203.0.113.45", "4111 1111 1111 1111", "Alice Smith", "5551234567", "123-45-6789"} {
			if bytes.Contains([]byte(out), []byte(raw)) {
				t.Errorf("mode %d: %q survived", mode, raw)
			}
		}
		for _, kept := range []string{"LEAD-0001234567", "order 123456789012 shipped", "v1.2.3.4", "lead_ingested"} {
			if !bytes.Contains([]byte(out), []byte(kept)) {
				t.Errorf("mode %d: %q was changed", mode, kept)
			}
		}
		if again := anon(mode, out); again != out {
			t.Errorf("mode %d: not idempotent:\n%s\n%s", mode, out, again)
		}
	}
	if anon(Off, body) != body {
		t.Error("off changed the body")
	}
}

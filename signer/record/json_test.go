package record

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestField(t *testing.T) {
	obj := []byte(`{"a":{"duration_ms":1},"op\u0065ration":"crm_sync", "duration_ms" : 12.5,"s":"x\"y","arr":[1,{"k":"}"}],"last":true}`)
	for key, want := range map[string]string{
		"duration_ms": "12.5", "operation": `"crm_sync"`, "s": `"x\"y"`, "arr": `[1,{"k":"}"}]`, "last": "true", "k": "", "missing": "",
	} {
		if got := string(Field(obj, key)); got != want {
			t.Errorf("Field(%q) = %q, want %q", key, got, want)
		}
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a"`, `{"a":`} {
		if Field([]byte(bad), "a") != nil {
			t.Errorf("Field(%q) found a value", bad)
		}
	}
}

func TestInvalidBytesEscaped(t *testing.T) {
	out := AppendString(nil, []byte("a\xffb\"\n\u2028"))
	if string(out) != `"a\\xffb\"\n\u2028"` {
		t.Errorf("got %s", out)
	}
}

func TestAppendCanonical(t *testing.T) {
	for raw, want := range map[string]string{
		`café`:                    `café`,
		`caf\u00e9`:               `café`,
		`caf\u00E9`:               `café`,
		`a\/b`:                    `a/b`,
		`a\\b`:                    `a\\b`,
		`a\u005cb`:                `a\\b`,
		`\"q\u0022`:               `\"q\"`,
		`tab\u0009nl\n`:           `tab\tnl\n`,
		`\ud83d\ude00`:            "\U0001F600",
		`lone \ud83d`:             "lone \uFFFD",
		"line\u2028sep":           `line\u2028sep`,
		`\u0000`:                  `\u0000`,
		`\b\f`:                    `\u0008\u000c`,
		`plain-ascii_0123 :@#`:    `plain-ascii_0123 :@#`,
		"\u20ac euro, not U+2028": "\u20ac euro, not U+2028",
	} {
		if got := string(AppendCanonical(nil, []byte(raw))); got != want {
			t.Errorf("AppendCanonical(%s) = %s, want %s", raw, got, want)
		}
	}
}

// The canonical form decodes to what encoding/json decodes, and is a fixed
// point: canonicalizing it again changes nothing.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`caf\u00e9`, `a\/b\\c\"`, `\ud83d\ude00`, `\ud83d`, "x\u2028", `\u0000\b\f\n\r\t`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // stored lines are valid UTF-8 (AppendString writes other bytes as \xNN)
		}
		tok := []byte(`"` + s + `"`)
		var want string
		if json.Unmarshal(tok, &want) != nil {
			return // not a JSON string's content
		}
		c := AppendCanonical(nil, []byte(s))
		var got string
		if err := json.Unmarshal([]byte(`"`+string(c)+`"`), &got); err != nil || got != want {
			t.Fatalf("canonical %q of %q decodes to %q (%v), want %q", c, s, got, err, want)
		}
		if Text([]byte(s)) != want {
			t.Fatalf("Text(%q) = %q, want %q", s, Text([]byte(s)), want)
		}
		if again := AppendCanonical(nil, c); string(again) != string(c) {
			t.Fatalf("not a fixed point: %q then %q", c, again)
		}
	})
}

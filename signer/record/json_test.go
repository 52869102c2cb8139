package record

import "testing"

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

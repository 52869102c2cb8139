package record

import "testing"

// The agent's records before any source line (the genesis of a new store)
// carry no source object; they are records all the same.
func TestHeadWithoutSource(t *testing.T) {
	for _, tc := range []struct{ line, details string }{
		{`{"seq":1,"timestamp":"2026-12-01T00:00:00Z","event_type":"genesis","actor":"tailseal","lead_id":"","workflow":"","details":{"origin":"web-0","epoch_seconds":900},"epoch":0,"prev":"","signature":"00"}`,
			`{"origin":"web-0","epoch_seconds":900}`},
		{`{"seq":7,"timestamp":"2026-12-01T00:00:00Z","event_type":"x","actor":"a","lead_id":"L","workflow":"w","details":{"k":"v"},"source":{"file":"a.log","id":"1:2","offset":0,"length":3},"epoch":2,"prev":"p","signature":"00"}`,
			`{"k":"v"}`},
	} {
		var h Head
		if !h.Parse([]byte(tc.line)) {
			t.Fatalf("not parsed: %s", tc.line)
		}
		if string(h.Details) != tc.details {
			t.Errorf("details %s, want %s", h.Details, tc.details)
		}
	}
	d, err := ParseGenesis([]byte(`{"seq":1,"timestamp":"2026-12-01T00:00:00Z","event_type":"genesis","actor":"tailseal","lead_id":"","workflow":"","details":{"origin":"web-0","epoch_seconds":900},"epoch":0,"prev":"","signature":"00"}`))
	if err != nil || d.Origin != "web-0" || d.EpochSeconds != 900 {
		t.Fatalf("ParseGenesis: %+v, %v", d, err)
	}
	if _, err := ParseGenesis([]byte(`{"seq":1,"timestamp":"t","event_type":"seal","actor":"tailseal","lead_id":"","workflow":"","details":{"epoch":0,"next_epoch":1},"epoch":0,"prev":"","signature":"00"}`)); err == nil {
		t.Fatal("a seal parsed as a genesis")
	}
}

func TestOriginToken(t *testing.T) {
	for origin, want := range map[string]string{
		"web-0":             "web-0",
		"web-0.example":     "web-0%2Eexample",
		"example.com/app_1": "example%2Ecom%2Fapp_1",
		"50%":               "50%25",
		"café":              "caf%C3%A9",
		"a>b*c":             "a%3Eb%2Ac",
	} {
		tok := OriginToken(origin)
		if tok != want {
			t.Errorf("OriginToken(%q) = %q, want %q", origin, tok, want)
		}
		if back, err := ParseOriginToken(tok); err != nil || back != origin {
			t.Errorf("ParseOriginToken(%q) = %q, %v", tok, back, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a%2", "a%2e", "%41", "a b"} {
		if o, err := ParseOriginToken(bad); err == nil {
			t.Errorf("ParseOriginToken(%q) = %q, want an error", bad, o)
		}
	}
}

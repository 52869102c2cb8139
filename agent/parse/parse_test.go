package parse

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var readTime = time.Date(2026, 2, 4, 20, 30, 45, 123456000, time.UTC)

func body(t *testing.T, line string) (map[string]any, Kind) {
	t.Helper()
	out, kind := Append(nil, Line{Data: []byte(line), Length: int64(len(line))}, readTime)
	if !utf8.Valid(out) {
		t.Fatalf("output is not UTF-8: %q", out)
	}
	var m map[string]any
	if err := json.Unmarshal(append(append([]byte("{"), out...), '}'), &m); err != nil {
		t.Fatalf("output is not a JSON object body: %v\n%s", err, out)
	}
	return m, kind
}

func TestObject(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"seed fields", `{"timestamp":"2026-01-01T00:00:00Z","event_type":"lead_ingested","actor":"system","lead_id":"LEAD-1","workflow":"wf","details":{"a":1}}`,
			`"timestamp":"2026-01-01T00:00:00Z","event_type":"lead_ingested","actor":"system","lead_id":"LEAD-1","workflow":"wf","details":{"a":1}`},
		{"missing timestamp gets read time", `{"event_type":"x"}`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"x","actor":"","lead_id":"","workflow":"","details":{}`},
		{"unknown fields go to details", `{"event_type":"x","details":{"a":1},"extra":"y","n":[1,2]}`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"x","actor":"","lead_id":"","workflow":"","details":{"a":1,"extra":"y","n":[1,2]}`},
		{"unknown fields without details", `{ "event_type" : "x" , "extra" : {"k":"}"} }`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"x","actor":"","lead_id":"","workflow":"","details":{"extra":{"k":"}"}}`},
		{"empty details with extras", `{"details":{ },"z":true}`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"","actor":"","lead_id":"","workflow":"","details":{"z":true}`},
		{"non-object details kept", `{"details":"text"}`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"","actor":"","lead_id":"","workflow":"","details":{"details":"text"}`},
		{"non-string seed values become strings", `{"timestamp":1700000000,"lead_id":42,"actor":null}`,
			`"timestamp":"1700000000","event_type":"","actor":"","lead_id":"42","workflow":"","details":{}`},
		{"escaped key", `{"event\u005ftype":"x"}`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"x","actor":"","lead_id":"","workflow":"","details":{}`},
		{"CRLF line", "{\"event_type\":\"x\"}\r",
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"x","actor":"","lead_id":"","workflow":"","details":{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, kind := Append(nil, Line{Data: []byte(tt.in)}, readTime)
			if kind != Event || string(out) != tt.want {
				t.Errorf("got kind %d\n%s\nwant\n%s", kind, out, tt.want)
			}
			body(t, tt.in)
		})
	}
}

func TestMalformed(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200)
	tests := []struct {
		name, in, reason string
	}{
		{"garbage", "\x01\x02binary\xff", ReasonUTF8},
		{"nul", "{\"a\":\"\x00\"}", ReasonNUL},
		{"invalid utf-8", "{\"a\":\"\xc3\x28\"}", ReasonUTF8},
		{"array", `[1,2]`, ReasonNotObject},
		{"string", `"str"`, ReasonNotObject},
		{"number", `42`, ReasonNotObject},
		{"empty", ``, ReasonNotJSON},
		{"truncated json", `{"a":`, ReasonNotJSON},
		{"deeply nested", deep, ReasonDepth},
		{"plain text", `ERROR something happened`, ReasonNotJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, kind := body(t, tt.in)
			if kind != Malformed {
				t.Fatalf("kind = %d, want Malformed", kind)
			}
			d := m["details"].(map[string]any)
			if m["event_type"] != "malformed" || d["reason"] != tt.reason {
				t.Errorf("got %v, want reason %q", m, tt.reason)
			}
			if int(d["length"].(float64)) != len(tt.in) {
				t.Errorf("length = %v, want %d", d["length"], len(tt.in))
			}
			if utf8.ValidString(tt.in) && d["raw"] != tt.in {
				t.Errorf("raw = %q, want %q", d["raw"], tt.in)
			}
		})
	}
}

func TestMalformedCapsRaw(t *testing.T) {
	long := strings.Repeat("é", RawCap) // 2 bytes each: the cap cuts a rune
	m, kind := body(t, long)
	d := m["details"].(map[string]any)
	if kind != Malformed || d["truncated"] != true || len(d["raw"].(string)) > RawCap+8 {
		t.Errorf("kind %d truncated %v raw %d bytes", kind, d["truncated"], len(d["raw"].(string)))
	}
	out, _ := Append(nil, Line{Data: []byte("{\"a\""), Length: 5 << 20, Truncated: true}, readTime)
	if !strings.Contains(string(out), `"reason":"too long","length":5242880`) {
		t.Errorf("truncated line: %s", out)
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"details":{"x":[1,{"y":"z"}]},"k":null}`, "\xff", `[]`, `{"a":"\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _ := Append(nil, Line{Data: in, Length: int64(len(in))}, readTime)
		full := append(append([]byte("{"), out...), '}')
		if !json.Valid(full) || !utf8.Valid(full) {
			t.Fatalf("invalid output for %q: %s", in, full)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	line := []byte(`{"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"lead_ingested","actor":"system","lead_id":"LEAD-000123","workflow":"sales_lead_management","details":{"source":"web_form","campaign":"spring","score":87,"utm":{"medium":"cpc"}}}`)
	dst := make([]byte, 0, 1024)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = Append(dst[:0], Line{Data: line}, readTime)
	}
}

// Seed strings are stored in canonical form however the application
// escaped them; details keep the application's bytes.
func TestSeedStringsCanonical(t *testing.T) {
	in := `{"event_type":"lead \u0022vip\"","actor":"ops\u0040example.org","lead_id":"LEAD\/42\\A","workflow":"caf\u00e9","details":{"note":"caf\u00e9"}}`
	out, kind := Append(nil, Line{Data: []byte(in), Length: int64(len(in))}, readTime)
	want := `"event_type":"lead \"vip\"","actor":"ops@example.org","lead_id":"LEAD/42\\A","workflow":"café","details":{"note":"caf\u00e9"}`
	if kind != Event || !strings.Contains(string(out), want) {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

// Issue 13: the cap on a malformed line's raw text never cuts a value in
// two, where the anonymizer would no longer recognize the half it keeps:
// every kind of value, straddling the cap at every offset, is dropped
// whole, and the text before it is kept.
func TestMalformedCapSplitsNoValue(t *testing.T) {
	values := []string{
		"alice.smith@example.com", "4111 1111 1111 1111", "4111111111111111", "+1 (555) 123-4567",
		"+44 20 7946 0958", "DE89 3704 0044 0532 0130 00", "CH06 1006 5991 Z716 570L 3", "203.0.113.45",
		"2001:db8::8a2e:370:7334", "123-45-6789", "56-683-02-92",
	}
	const filler = "lorem ipsum dolor sit amet; "
	for _, v := range values {
		for k := 1; k < len(v); k++ {
			head := strings.Repeat(filler, RawCap/len(filler)+1)[:RawCap-k]
			line := head + v + " and more text after it"
			m, kind := body(t, line)
			d := m["details"].(map[string]any)
			raw := d["raw"].(string)
			if kind != Malformed || d["truncated"] != true {
				t.Fatalf("%q at %d: kind %d, truncated %v", v, k, kind, d["truncated"])
			}
			if !strings.HasPrefix(line, raw) || len(raw) > len(head) {
				t.Errorf("%q straddling the cap at %d: a part is kept: ...%q", v, k, raw[max(0, len(raw)-40):])
			}
			if len(raw) < len(head)-len(filler) {
				t.Errorf("%q at %d: kept %d bytes, want about the %d before it", v, k, len(raw), len(head))
			}
		}
	}
	// a long run without a boundary is cut maxToken bytes back
	long := strings.Repeat("a", RawCap+100)
	if m, _ := body(t, long); len(m["details"].(map[string]any)["raw"].(string)) != RawCap-maxToken {
		t.Errorf("long run: kept %d bytes", len(m["details"].(map[string]any)["raw"].(string)))
	}
}

// Issue 13: a key that appears twice in a line loses nothing: the first
// seed field and the first details object win, every later one is kept in
// details under a name of its own, and no object of the stored JSON has
// two equal keys (a reader would keep one).
func TestDuplicateKeys(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"seed", `{"lead_id":"A","lead_id":"B"}`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"","actor":"","lead_id":"A","workflow":"","details":{"duplicate_lead_id":"B"}`},
		{"details", `{"details":{"a":1},"details":{"b":2}}`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"","actor":"","lead_id":"","workflow":"","details":{"a":1,"duplicate_details":{"b":2}}`},
		{"null first counts as absent", `{"actor":null,"actor":"x","actor":null}`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"","actor":"x","lead_id":"","workflow":"","details":{"duplicate_actor":null}`},
		{"taken names", `{"details":{"duplicate_lead_id":0,"x":1},"lead_id":"A","lead_id":"B","lead_id":"C","x":2,"x":3}`,
			`"timestamp":"2026-02-04T20:30:45.123456Z","event_type":"","actor":"","lead_id":"A","workflow":"","details":{"duplicate_lead_id":0,"x":1,"duplicate_lead_id_2":"B","duplicate_lead_id_3":"C","duplicate_x":2,"duplicate_x_2":3}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := Append(nil, Line{Data: []byte(tt.in)}, readTime)
			if string(out) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", out, tt.want)
			}
		})
	}

	// Every seed field and details, three times each, and many repeated
	// extras (past the few compared one by one): every value is stored,
	// under distinct keys.
	var in strings.Builder
	in.WriteString("{")
	var values []string
	for round := range 3 {
		for _, k := range append(seedKeys[:], "details", "extra") {
			v := fmt.Sprintf("%s-%d", k, round)
			values = append(values, v)
			if k == "details" {
				fmt.Fprintf(&in, `"details":{"v":%q,"duplicate_details":%q},`, v, v+"x")
				values = append(values, v+"x")
				continue
			}
			fmt.Fprintf(&in, "%q:%q,", k, v)
		}
	}
	for n := range 20 {
		v := fmt.Sprintf("many-%d", n)
		values = append(values, v)
		fmt.Fprintf(&in, `"many":%q,`, v)
	}
	in.WriteString(`"last":true}`)
	out, kind := Append(nil, Line{Data: []byte(in.String())}, readTime)
	full := "{" + string(out) + "}"
	if kind != Event || !json.Valid([]byte(full)) {
		t.Fatalf("kind %d, invalid JSON:\n%s", kind, full)
	}
	if err := noDuplicateKeys(json.NewDecoder(strings.NewReader(full))); err != nil {
		t.Fatalf("%v in\n%s", err, full)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(full), &m); err != nil {
		t.Fatal(err)
	}
	stored := fmt.Sprint(m)
	for _, v := range values {
		if !strings.Contains(stored, v+" ") && !strings.Contains(stored, v+"]") {
			t.Errorf("value %q lost:\n%s", v, full)
		}
	}
	if m["lead_id"] != "lead_id-0" || m["details"].(map[string]any)["v"] != "details-0" {
		t.Errorf("the first seed field or details did not win: %s", full)
	}
}

// noDuplicateKeys reads one JSON value and fails on an object with two
// equal keys.
func noDuplicateKeys(d *json.Decoder) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return err
			}
			if seen[k.(string)] {
				return fmt.Errorf("key %q twice", k)
			}
			seen[k.(string)] = true
			if err := noDuplicateKeys(d); err != nil {
				return err
			}
		}
		_, err = d.Token()
	case json.Delim('['):
		for d.More() {
			if err := noDuplicateKeys(d); err != nil {
				return err
			}
		}
		_, err = d.Token()
	}
	return err
}

// EventType finds the type in what Append writes: events, escaped types,
// malformed lines; and nothing in what it does not write.
func TestEventType(t *testing.T) {
	now := time.Date(2026, 2, 4, 20, 30, 45, 0, time.UTC)
	for line, want := range map[string]string{
		`{"event_type":"lead_ingested","timestamp":"2026-02-04T20:30:45Z"}`: "lead_ingested",
		`{"timestamp":"2026-02-04T20:30:45Z","event_type":"a\"b"}`:          `a\"b`,
		`{"lead_id":"L1"}`:           "",
		`{"event_type":7}`:           "7",
		`not json`:                   "malformed",
		`{"event_type":"caf\u00e9"}`: "café",
	} {
		body, _ := Append(nil, Line{Data: []byte(line), Length: int64(len(line))}, now)
		if got := EventType(body); string(got) != want {
			t.Errorf("%s: %q, want %q (body %s)", line, got, want, body)
		}
	}
	for _, body := range []string{"", `"timestamp":"x"`, `"timestamp":"x","event_type":"unterminated`, `"event_type":"x"`} {
		if got := EventType([]byte(body)); got != nil {
			t.Errorf("%q: %q, want nil", body, got)
		}
	}
}

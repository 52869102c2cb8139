package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Origins lists a collector's origins by name, decoded from their
// directories' tokens, and names what is not an origin's directory.
func TestOrigins(t *testing.T) {
	data := t.TempDir()
	if _, _, err := Origins(data); !errors.Is(err, ErrNotFleet) {
		t.Fatalf("a data dir without origins/: %v", err)
	}
	for _, origin := range []string{"web-1.example", "checkout-0", "a%b"} {
		if err := os.MkdirAll(OriginDir(data, origin), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, stray := range []string{"web-1.example", "%41"} { // not tokens: a raw dot, an escaped letter
		os.MkdirAll(filepath.Join(data, OriginsDir, stray), 0o755)
	}
	os.WriteFile(filepath.Join(data, OriginsDir, "file"), nil, 0o644)
	os.MkdirAll(filepath.Join(data, OriginsDir, ".tmp-1"), 0o755)
	got, stray, err := Origins(data)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[{a%%b %s} {checkout-0 %s} {web-1.example %s}]", OriginDir(data, "a%b"), OriginDir(data, "checkout-0"),
		filepath.Join(data, OriginsDir, "web-1%2Eexample"))
	if fmt.Sprint(got) != want || fmt.Sprint(stray) != "[%41 file web-1.example]" {
		t.Errorf("origins %v\nwant %s\nstray %v", got, want, stray)
	}
}

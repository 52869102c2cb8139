package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// After ingesting realistic lines full of personal data, no raw email,
// phone, card, IP, IBAN or SSN is anywhere in the data dir, compressed
// segments included, in any mode that anonymizes.
func TestNoRawPIIInDataDir(t *testing.T) {
	raws := []string{"alice.smith@example.com", "Bob@Corp.Example.org", "+1 (555) 123-4567", "+44 20 7946 0958",
		"4111 1111 1111 1111", "5555-5555-5555-4444", "203.0.113.45", "2001:db8::8a2e:370:7334",
		"DE89 3704 0044 0532 0130 00", "123-45-6789"}
	for _, mode := range []string{"hash", "redact", "mask"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, "TAILSEAL_PII_MODE="+mode, "TAILSEAL_SEGMENT_MAX_MB=1")
			p := e.start()
			f, err := os.OpenFile(e.source, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for i := 0; i < 6000; i++ {
				r1, r2 := raws[i%len(raws)], raws[(i+3)%len(raws)]
				fmt.Fprintf(f, `{"event_type":"lead_ingested","actor":%q,"lead_id":"LEAD-%07d","details":{"email":%q,"note":"call %s or write to %s","name":"Alice Smith","ip":%q,"nested":[{"card":%q}]}}`+"\n",
					r1, i, r2, r1, r2, raws[6], raws[4])
				n++
				if i%1000 == 0 {
					fmt.Fprintf(f, "plain text from %s at %s, card %s\n", r1, raws[6], raws[5]) // malformed
					n++
				}
			}
			f.Close()
			e.waitStored(n)
			p.stop(t)
			checked := 0
			filepath.WalkDir(e.dataDir, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data := readFile(t, path)
				checked += len(data)
				for _, raw := range append(raws, "Alice Smith") {
					if bytes.Contains(data, []byte(raw)) {
						t.Errorf("%s holds %q", path, raw)
					}
				}
				return nil
			})
			segs, _ := filepath.Glob(filepath.Join(e.dataDir, "store", "*.gz"))
			if len(segs) == 0 || checked < 1<<20 {
				t.Errorf("checked %d bytes, %d compressed segments: the test did not cover rotation", checked, len(segs))
			}
			e.checkChain(readStore(t, e.dataDir))
		})
	}
}

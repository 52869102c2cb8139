package verify

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer"
)

// typedChain builds signed records of the given types, a second apart.
func typedChain(types []string, at time.Time) []byte {
	c := signer.NewChain(signer.NewStaticKey(k0), 0, [sha256.Size]byte{})
	var buf []byte
	for i, typ := range types {
		buf = c.Begin(buf)
		buf = append(buf, `"timestamp":"`+at.Add(time.Duration(i)*time.Second).Format(time.RFC3339)+`","event_type":"`+typ+`","actor":"","lead_id":"","workflow":"","details":{}`...)
		buf = c.Finish(buf)
	}
	return buf
}

// How the store ends is held to the clock: a stopped store must end with
// a clean stop; a running agent's store must have a record less than an
// epoch old, in epoch mode.
func TestTail(t *testing.T) {
	t0 := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
	run := func(types []string, now time.Time, running bool) []Finding {
		t.Helper()
		opt := Options{Source: oneSegment(typedChain(types, t0)), Now: now, Epoch: 15 * time.Minute, AgentRunning: running}
		sum, err := Run(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		return sum.Findings
	}
	later := t0.Add(3 * time.Hour)
	for _, c := range []struct {
		name    string
		types   []string
		now     time.Time
		running bool
		want    int
	}{
		{"stopped cleanly", []string{"e", "e", "stop"}, later, false, 0},
		{"stopped without a clean stop", []string{"e", "e", "e"}, later, false, 1},
		{"an old clean stop, then more", []string{"e", "stop", "e"}, later, false, 1},
		{"running, a seal an hour old (epoch mode)", []string{"e", "seal", "e"}, t0.Add(time.Hour), true, 1},
		{"running, a seal a minute old", []string{"e", "seal", "e"}, t0.Add(time.Minute), true, 0},
		{"running, static key (no seals): nothing to hold it to", []string{"e", "e"}, later, true, 0},
		{"no clock given: not checked", []string{"e", "e"}, time.Time{}, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := run(c.types, c.now, c.running)
			if len(fs) != c.want || c.want == 1 && fs[0].Kind != TailMissing {
				t.Errorf("findings %+v, want %d %q", fs, c.want, TailMissing)
			}
		})
	}
}

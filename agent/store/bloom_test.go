package store

import (
	"encoding/json"
	"fmt"
	"testing"
)

// Added values are always found, after folding and a JSON round trip, and
// the false positive rate stays near what the filter was folded to.
func TestBloom(t *testing.T) {
	for _, n := range []int{1, 100, 10_000} {
		b := newBloom(1_000_000) // sized for far more, as for a big segment
		for i := range n {
			b.Add(fmt.Appendf(nil, "LEAD-%07d", i))
		}
		b.fold()
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var got Bloom
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if !got.MayContain(fmt.Appendf(nil, "LEAD-%07d", i)) {
				t.Fatalf("n=%d: LEAD-%07d added but not found", n, i)
			}
		}
		fp := 0
		const probes = 100_000
		for i := range probes {
			if got.MayContain(fmt.Appendf(nil, "other-%d", i)) {
				fp++
			}
		}
		rate := float64(fp) / probes
		t.Logf("n=%d: %d bytes in the index, false positive rate %.4f", n, len(data), rate)
		if rate > 2*FalsePositiveRate {
			t.Errorf("n=%d: false positive rate %.4f, want about %.2f", n, rate, FalsePositiveRate)
		}
		if n == 1 && len(data) > 100 {
			t.Errorf("n=1: %d bytes: the filter was not folded", len(data))
		}
	}
}

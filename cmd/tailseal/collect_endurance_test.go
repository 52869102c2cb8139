//go:build endurance

package main

import "testing"

// The collector killed with kill -9 25 times while it consumes two
// agents' stores of 60,000 lines each (10 times over 20,000 with
// TAILSEAL_ENDURANCE_SHORT): each collected origin is its agent's store,
// byte for byte, and verifies.
func TestEnduranceCollectKill9(t *testing.T) {
	n, chunks := 60000, 25
	if short() {
		n, chunks = 20000, 10
	}
	collectKill9(t, n, chunks)
}

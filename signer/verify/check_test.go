package verify

import "testing"

// Each finding a line in order can get, from what is known about it. The
// zero lineFacts is a line in the middle of a segment whose signature and
// links are wrong; ok is a line with nothing wrong.
func TestClassify(t *testing.T) {
	ok := lineFacts{haveKey: true, sigOK: true, linkOK: true, nextLinkOK: true, chained: true}
	with := func(change func(*lineFacts)) lineFacts {
		f := ok
		change(&f)
		return f
	}
	tests := []struct {
		name  string
		facts lineFacts
		want  string
	}{
		{"intact", ok, ""},
		// The next line chains to this one as it is, so these are the bytes
		// that were chained; only the signature fails: signed under a key
		// that is not its epoch's.
		{"signature only", with(func(f *lineFacts) { f.sigOK = false }), BadSignature},
		// Signature and the next line's link both fail: the bytes changed
		// after signing and chaining.
		{"edited", with(func(f *lineFacts) { f.sigOK, f.nextLinkOK = false, false }), Edited},
		// Without the key only the chain tells: the next line does not
		// chain to this one.
		{"edited, no key", with(func(f *lineFacts) { f.haveKey, f.nextLinkOK = false, false }), Edited},
		// A segment whose first line is consistently chained to its
		// successor but signed under another key: a whole foreign segment.
		{"segment replaced", with(func(f *lineFacts) { f.firstOfSegment, f.sigOK = true, false }), SegmentReplace},
		// Without the key: a segment whose first line does not continue a
		// chain that was fine up to here.
		{"segment replaced, no key", with(func(f *lineFacts) { f.firstOfSegment, f.haveKey, f.linkOK = true, false, false }), SegmentReplace},
		// The same without the key, after a line that had a finding: the
		// broken link is that finding's, not a foreign segment.
		{"broken link after a finding", with(func(f *lineFacts) {
			f.firstOfSegment, f.haveKey, f.linkOK, f.lastReported = true, false, false, true
		}), ""},
		// The later lines of a replaced segment were reported with it.
		{"in a replaced segment", with(func(f *lineFacts) { f.inReplaced, f.sigOK = true, false }), inReplaced},
		// Even when intact: the segment as a whole is not ours.
		{"intact line in a replaced segment", with(func(f *lineFacts) { f.inReplaced = true }), inReplaced},
		// A broken link into this line is the previous line's finding
		// (edited or deleted), not this one's.
		{"link into it broken", with(func(f *lineFacts) { f.linkOK = false }), ""},
	}
	for _, tt := range tests {
		if got := classify(tt.facts); got != tt.want {
			t.Errorf("%s: %+v: got %q, want %q", tt.name, tt.facts, got, tt.want)
		}
	}
}

func TestStand(t *testing.T) {
	next := func(seq uint64) *parsed { return &parsed{ok: true, seq: seq} }
	end := &parsed{}
	tests := []struct {
		name          string
		expected, seq uint64
		segStart      bool
		next          *parsed
		want          standing
	}{
		{"in order", 5, 5, false, next(6), inOrder},
		{"records missing", 5, 8, false, next(9), gap},
		{"swapped with the next", 5, 6, false, next(5), early},
		// A segment's first line that the next line would precede is still
		// a lost segment before it: segments are named by their first seq.
		{"segment start", 5, 8, true, next(5), gap},
		{"gap at the end", 5, 8, false, end, gap},
		{"seen already", 5, 3, false, next(6), behind},
	}
	for _, tt := range tests {
		if got := stand(tt.expected, tt.seq, tt.segStart, tt.next); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestEpochRule(t *testing.T) {
	tests := []struct {
		lastEpoch, lastSeal, epoch uint64
		want                       string
	}{
		{3, 0, 3, ""},
		{3, 4, 4, ""},          // sealed, then the next epoch
		{3, 0, 4, SealMissing}, // a new epoch without the seal of the last
		{3, 5, 4, SealMissing}, // the seal named another epoch
		{3, 0, 2, EpochBackwards},
	}
	for _, tt := range tests {
		if got, _ := epochRule(tt.lastEpoch, tt.lastSeal, tt.epoch); got != tt.want {
			t.Errorf("epoch %d after %d (seal to %d): got %q, want %q", tt.epoch, tt.lastEpoch, tt.lastSeal, got, tt.want)
		}
	}
}

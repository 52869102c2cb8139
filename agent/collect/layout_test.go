package collect

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/collect/collecttest"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
)

// agentLike writes, with agent/store as the agent does, n chained records
// in small segments, each rotated segment attested by an index record
// once it is compressed, except the segments whose number (0 for the
// first) is in unattested: as when an agent is killed between a rotation
// and the compression. It returns the store's directory and its lines.
func agentLike(t *testing.T, n int, unattested ...int) (string, [][]byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	type indexed struct{ seg, digest string }
	done := make(chan indexed, 16)
	st, _, err := store.Open(store.Options{Dir: dir, SegmentMax: 16 << 10, SegmentMaxAge: time.Hour,
		OnIndexed: func(_ <-chan struct{}, seg string, line []byte) error {
			done <- indexed{seg, store.IndexDigest(line)}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	c := signer.NewChain(signer.NewStaticKey([]byte("k")), 0, [sha256.Size]byte{})
	add := func(body string) {
		line := c.Finish(append(c.Begin(nil), body...))
		if err := st.Append(line, c.Seq(), c.Seq()); err != nil {
			t.Fatal(err)
		}
		if err := st.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	segs := 0
	active := st.ActiveSegment()
	for i := 1; i <= n; i++ {
		add(fmt.Sprintf(`"timestamp":"2026-12-01T10:00:00Z","event_type":"t","actor":"","lead_id":"L-%d","workflow":"","details":{"n":%d}`, i, i))
		if st.ActiveSegment() == active {
			continue
		}
		active = st.ActiveSegment()
		ix := <-done
		if !slices.Contains(unattested, segs) {
			d, _ := json.Marshal(record.IndexDetails{Segment: ix.seg, SHA256: ix.digest})
			add(`"timestamp":"2026-12-01T10:00:00Z","event_type":"index","actor":"tailseal","lead_id":"","workflow":"","details":` + string(d))
		}
		segs++
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, collecttest.StoreLines(t, dir)
}

// The collected segments are the agent's, cut where its index records
// say; the one segment whose successor's start the agent never attested
// spans two of the agent's, and stays out of the index rather than
// contradict the agent's index record for its name.
func TestSegmentsFollowTheAgent(t *testing.T) {
	for _, tc := range []struct {
		name       string
		unattested []int
	}{
		{"every segment attested", nil},
		{"segment 2 not attested", []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agentDir, lines := agentLike(t, 600, tc.unattested...)
			r := newRig(t, "TAILSEAL_COLLECT_BATCH=50")
			c, stop := r.start()
			collecttest.Publish(t, r.js, "seg", lines)
			r.waitStored("seg", len(lines))
			waitFor(t, "the collected segments compressed", func() bool {
				segs, _ := store.List(filepath.Join(r.dir("seg"), agent.StoreDir))
				for _, s := range segs[:len(segs)-1] {
					if !s.Compressed {
						return false
					}
				}
				return len(segs) > 2
			})
			stop()
			equalLines(t, r.stored("seg"), lines)
			dir := filepath.Join(r.dir("seg"), agent.StoreDir)
			want, _ := store.ReadIndexDigests(agentDir)
			got, _ := store.ReadIndexDigests(dir)
			segs, _ := store.List(dir)
			agentSegs, _ := store.List(agentDir)
			merged := 0
			for _, s := range segs {
				if !s.Compressed {
					continue
				}
				d, ok := got[s.Name]
				switch {
				case ok && d == want[s.Name]:
				case !ok && len(tc.unattested) > 0:
					merged++
				default:
					t.Errorf("segment %s: index line %q, the agent's %q", s.Name, d, want[s.Name])
				}
			}
			t.Logf("agent: %d segments, collector: %d, %d left out of the index", len(agentSegs), len(segs), merged)
			if n := testutil.ToFloat64(c.m.unindexed.WithLabelValues("seg")); int(n) != merged || merged != len(tc.unattested) {
				t.Errorf("%v segments unindexed (metric), %d without an index line, want %d", n, merged, len(tc.unattested))
			}
			// The collector runs one segment behind the agent: its active
			// segment starts where the agent's last attested segment does.
			if len(segs) < len(agentSegs)-1-len(tc.unattested) {
				t.Errorf("collector segments %v for the agent's %v", segs, agentSegs)
			}
		})
	}
}

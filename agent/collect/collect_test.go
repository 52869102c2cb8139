package collect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/collect/collecttest"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
)

// chain makes n signed, chained records of an origin, seq 1 a genesis.
func chain(origin string, n int) [][]byte {
	c := signer.NewChain(signer.NewStaticKey([]byte("k")), 0, [sha256.Size]byte{})
	var out [][]byte
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf(`"timestamp":"2026-12-01T10:00:00.%06dZ","event_type":"lead_ingested","actor":"system","lead_id":"L-%d","workflow":"w","details":{"n":%d}`, i, i, i)
		if i == 1 {
			d, _ := json.Marshal(record.GenesisDetails{Origin: origin, Created: "2026-12-01T10:00:00Z", Version: "test"})
			body = `"timestamp":"2026-12-01T10:00:00Z","event_type":"genesis","actor":"tailseal","lead_id":"","workflow":"","details":` + string(d)
		}
		line := c.Finish(append(c.Begin(nil), body...))
		out = append(out, line[:len(line)-1])
	}
	return out
}

// rig is a JetStream server with the stream, and a collector's data dir.
type rig struct {
	t   *testing.T
	srv *collecttest.Server
	js  jetstream.JetStream
	cfg *config.Config
}

func newRig(t *testing.T, env ...string) *rig {
	srv := collecttest.StartServer(t)
	js := srv.Connect(t)
	collecttest.CreateStream(t, js, "TAILSEAL")
	for _, kv := range append([]string{"TAILSEAL_NATS_URL=" + srv.URL, "TAILSEAL_DATA_DIR=" + t.TempDir(), "TAILSEAL_LISTEN="}, env...) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, srv: srv, js: js, cfg: cfg}
}

// start runs a collector until the returned function stops it.
func (r *rig) start() (*Collector, func()) {
	r.t.Helper()
	c, err := New(Options{Config: r.cfg, LagInterval: 50 * time.Millisecond})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			r.t.Errorf("Run: %v", err)
		}
	}
	r.t.Cleanup(stop)
	return c, stop
}

func (r *rig) dir(origin string) string {
	return filepath.Join(r.cfg.DataDir, OriginsDir, record.OriginToken(origin))
}

func (r *rig) stored(origin string) [][]byte {
	if _, err := os.Stat(filepath.Join(r.dir(origin), agent.StoreDir)); err != nil {
		return nil
	}
	return collecttest.StoreLines(r.t, filepath.Join(r.dir(origin), agent.StoreDir))
}

// waitFor polls until cond holds, for at most 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *rig) waitStored(origin string, n int) [][]byte {
	r.t.Helper()
	var got [][]byte
	waitFor(r.t, fmt.Sprintf("%d records of %s", n, origin), func() bool { got = r.stored(origin); return len(got) >= n })
	return got
}

func equalLines(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records stored, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d differs:\n got %s\nwant %s", i+1, got[i], want[i])
		}
	}
}

// Two origins, interleaved in the stream, end up each in its own store,
// byte for byte, with genesis.json; the origin token names the directory.
func TestTwoOrigins(t *testing.T) {
	r := newRig(t, "TAILSEAL_COLLECT_BATCH=100")
	a, b := chain("web-0.example", 700), chain("web-1", 500)
	_, stop := r.start()
	for i := 0; i < 700; i += 100 {
		collecttest.Publish(t, r.js, "web-0.example", a[i:i+100])
		if i < 500 {
			collecttest.Publish(t, r.js, "web-1", b[i:i+100])
		}
	}
	equalLines(t, r.waitStored("web-0.example", 700), a)
	equalLines(t, r.waitStored("web-1", 500), b)
	stop()
	if !strings.HasSuffix(r.dir("web-0.example"), "web-0%2Eexample") {
		t.Errorf("directory %s", r.dir("web-0.example"))
	}
	g, err := os.ReadFile(filepath.Join(r.dir("web-1"), agent.GenesisFile))
	if err != nil || !bytes.Equal(bytes.TrimSuffix(g, []byte("\n")), b[0]) {
		t.Errorf("genesis.json %q, %v", g, err)
	}
}

// After a restart the consumer is read from its first unacknowledged
// message: here all of them, as if no ack had reached the server. Every
// record is already stored byte for byte, so all are skipped.
func TestRedeliveryIsSkipped(t *testing.T) {
	r := newRig(t)
	lines := chain("a", 300)
	collecttest.Publish(t, r.js, "a", lines)
	_, stop := r.start()
	r.waitStored("a", 300)
	stop()
	if _, err := r.js.ResetConsumerToSequence(context.Background(), "TAILSEAL", r.cfg.CollectConsumer, 1); err != nil {
		t.Fatal(err)
	}
	c, stop := r.start()
	waitFor(t, "300 duplicates", func() bool { return testutil.ToFloat64(c.m.duplicates.WithLabelValues("a")) == 300 })
	stop()
	equalLines(t, r.stored("a"), lines)
	if n := testutil.CollectAndCount(c.m.findings); n != 0 {
		t.Errorf("%d findings", n)
	}
}

// The rules of take, one case each: what is stored, what is quarantined,
// which finding is counted, and whether the origin halts.
func TestFindings(t *testing.T) {
	lines := chain("o", 20)
	edited := bytes.Replace(lines[9], []byte(`"n":10`), []byte(`"n":99`), 1)
	for _, tc := range []struct {
		name      string
		publish   [][]byte
		kind      string
		stored    int // records in the store at the end
		halted    bool
		quarantin int
	}{
		// Record 10 edited in the stream: it still chains to 9 (the collector
		// holds no signing key), 11 does not chain to it: halted after 10.
		{"edited", append(append(append([][]byte{}, lines[:9]...), edited), lines[10:]...), FindingChain, 10, true, 10},
		{"gap", append(append([][]byte{}, lines[:9]...), lines[10:]...), FindingGap, 9, true, 10},
		// Record 10 again with other bytes, after the real one: a fork; the
		// store goes on.
		// (JetStream drops a second message with the same Nats-Msg-Id within
		// its duplicate window: this one comes under another id.)
		{"fork", append(append(append([][]byte{}, lines[:10]...), edited), lines[10:]...), FindingFork, 20, false, 1},
		{"newline", append(append(append([][]byte{}, lines[:10]...), append(bytes.Clone(lines[10]), '\n', '{')), lines[11:]...), FindingMalformed, 10, true, 10},
		{"not a record", append(append([][]byte{}, lines[:5]...), []byte(`hello`)), FindingMalformed, 5, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			for i, line := range tc.publish {
				if tc.name == "fork" && i == 10 {
					collecttest.PublishAs(t, r.js, "o", "o:10 again", line)
					continue
				}
				collecttest.Publish(t, r.js, "o", [][]byte{line})
			}
			c, stop := r.start()
			waitFor(t, "every message handled", func() bool {
				info, err := r.js.Consumer(context.Background(), "TAILSEAL", r.cfg.CollectConsumer)
				if err != nil {
					return false
				}
				ci, err := info.Info(context.Background())
				return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 && ci.AckFloor.Stream == uint64(len(tc.publish))
			})
			stop()
			if got := testutil.ToFloat64(c.m.findings.WithLabelValues("o", tc.kind)); got != 1 {
				t.Errorf("%s findings: %v", tc.kind, got)
			}
			got := r.stored("o")
			if len(got) != tc.stored {
				t.Fatalf("%d records stored, want %d", len(got), tc.stored)
			}
			if tc.name != "edited" {
				equalLines(t, got, lines[:tc.stored])
			}
			if h := testutil.ToFloat64(c.m.halted.WithLabelValues("o")); (h == 1) != tc.halted {
				t.Errorf("halted %v, want %v", h, tc.halted)
			}
			q, err := os.ReadFile(filepath.Join(r.dir("o"), QuarantineFile))
			if n := bytes.Count(q, []byte("\n")); err != nil || n != tc.quarantin {
				t.Errorf("quarantine: %d entries (%v), want %d", n, err, tc.quarantin)
			}
			// A restart keeps a halted origin halted, and writes no entry twice.
			if _, err := r.js.ResetConsumerToSequence(context.Background(), "TAILSEAL", r.cfg.CollectConsumer, 1); err != nil {
				t.Fatal(err)
			}
			c, stop = r.start()
			waitFor(t, "a second pass", func() bool {
				return testutil.ToFloat64(c.m.duplicates.WithLabelValues("o")) >= float64(tc.stored)
			})
			stop()
			if h := testutil.ToFloat64(c.m.halted.WithLabelValues("o")); (h == 1) != tc.halted {
				t.Errorf("after a restart: halted %v, want %v", h, tc.halted)
			}
			if q2, _ := os.ReadFile(filepath.Join(r.dir("o"), QuarantineFile)); !bytes.Equal(q, q2) {
				t.Errorf("the quarantine changed on redelivery:\n%s", q2)
			}
			if n := len(r.stored("o")); n != tc.stored {
				t.Errorf("after a restart: %d records stored", n)
			}
		})
	}
}

// A stream that starts after seq 1 (the agent's retention came first) is
// taken from where it starts.
func TestStartsLater(t *testing.T) {
	r := newRig(t)
	lines := chain("late", 50)
	collecttest.Publish(t, r.js, "late", lines[19:])
	c, stop := r.start()
	equalLines(t, r.waitStored("late", 31), lines[19:])
	stop()
	if got := testutil.ToFloat64(c.m.firstSeq.WithLabelValues("late")); got != 20 {
		t.Errorf("first seq %v", got)
	}
	if n := testutil.CollectAndCount(c.m.findings); n != 0 {
		t.Errorf("%d findings", n)
	}
}

// Two collectors share the origins by partition: each origin is in one
// data dir only, whole.
func TestPartitions(t *testing.T) {
	srv := collecttest.StartServer(t)
	js := srv.Connect(t)
	collecttest.CreateStream(t, js, "TAILSEAL")
	origins := []string{"a", "b", "c", "d", "e", "f"}
	lines := map[string][][]byte{}
	for _, o := range origins {
		lines[o] = chain(o, 100)
		collecttest.Publish(t, js, o, lines[o])
	}
	var dirs [2]string
	var stops []func()
	for k := range 2 {
		dirs[k] = t.TempDir()
		cfg := &config.Config{NATSURL: srv.URL, NATSStream: "TAILSEAL", DataDir: dirs[k], CollectConsumer: "c", CollectBatch: 64,
			CollectAckWait: time.Minute, CollectPartitions: 2, CollectPartition: k}
		c, err := New(Options{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		var once sync.Once
		stops = append(stops, func() { once.Do(func() { cancel(); <-done }) })
		defer stops[k]()
	}
	parts := [2]int{}
	for _, o := range origins {
		k := Partition(record.OriginToken(o), 2)
		parts[k]++
		dir := filepath.Join(dirs[k], OriginsDir, o, agent.StoreDir)
		waitFor(t, "origin "+o+" in partition "+fmt.Sprint(k), func() bool {
			_, err := os.Stat(dir)
			return err == nil && len(collecttest.StoreLines(t, dir)) == 100
		})
		equalLines(t, collecttest.StoreLines(t, dir), lines[o])
		if _, err := os.Stat(filepath.Join(dirs[1-k], OriginsDir, o)); err == nil {
			t.Errorf("origin %s is in both data dirs", o)
		}
	}
	if parts[0] == 0 || parts[1] == 0 {
		t.Fatalf("the test's origins all fall in one partition: %v", parts)
	}
	for _, stop := range stops {
		stop()
	}
	// The split is kept: the same data dir refuses another one.
	cfg := &config.Config{DataDir: dirs[0], CollectPartitions: 3, CollectPartition: 0}
	if _, err := New(Options{Config: cfg}); err == nil || !strings.Contains(err.Error(), "partition 0 of 2") {
		t.Errorf("another split accepted: %v", err)
	}
}

// The metrics a dashboard needs are there, per origin.
func TestMetrics(t *testing.T) {
	r := newRig(t)
	collecttest.Publish(t, r.js, "m", chain("m", 40))
	c, stop := r.start()
	r.waitStored("m", 40)
	waitFor(t, "lag 0", func() bool {
		return testutil.ToFloat64(c.m.lastSeq.WithLabelValues("m")) == 40 && testutil.ToFloat64(c.m.lag.WithLabelValues("m")) == 0
	})
	collecttest.Publish(t, r.js, "m", nil)
	stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collectors()...)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP tailseal_collect_records_total Records appended to an origin's collected store.
# TYPE tailseal_collect_records_total counter
tailseal_collect_records_total{origin="m"} 40
`), "tailseal_collect_records_total"); err != nil {
		t.Error(err)
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/tailseal/tailseal/agent/collect"
	"github.com/tailseal/tailseal/agent/collect/collecttest"
	"github.com/tailseal/tailseal/agent/lock"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// agentStore runs a real agent of origin over n source lines, with 1 MB
// segments, waits until every rotated segment is compressed and attested
// by an index record, and stops it cleanly (its store ends with a stop
// record). It returns the agent's environment, its data dir intact.
func agentStore(t *testing.T, origin string, n int, extra ...string) *env {
	t.Helper()
	e := newEnv(t, append([]string{"TAILSEAL_ORIGIN=" + origin, "TAILSEAL_SEGMENT_MAX_MB=1", "TAILSEAL_CHECKPOINT_EVERY=500", "TAILSEAL_LOG_LEVEL=info"}, extra...)...)
	p := e.start()
	w := newWriter(t, e.source)
	for w.next < n {
		w.write(min(1000, n-w.next))
	}
	e.waitStored(n)
	dir := filepath.Join(e.dataDir, "store")
	waitFor(t, "the agent's rotated segments compressed and attested", 30*time.Second, func() bool {
		segs, err := store.List(dir)
		if err != nil {
			return false
		}
		attested := 0
		for _, l := range readStore(t, e.dataDir).meta {
			if l.EventType == record.TypeIndex {
				attested++
			}
		}
		return attested == len(segs)-1
	})
	if _, err := p.stop(t); err != nil {
		t.Fatalf("agent %s: %v", origin, err)
	}
	return e
}

// agentLines are the stored lines of an agent's store.
func agentLines(t *testing.T, e *env) [][]byte {
	return collecttest.StoreLines(t, filepath.Join(e.dataDir, "store"))
}

// collectedDir is an origin's directory in a collector's data dir.
func collectedDir(dataDir, origin string) string {
	return filepath.Join(dataDir, collect.OriginsDir, record.OriginToken(origin))
}

// collectedSeq is the highest seq in an origin's collected store, read
// while the collector writes it (0 while it cannot be read).
func collectedSeq(dataDir, origin string) uint64 {
	var last uint64
	err := store.Scan(filepath.Join(collectedDir(dataDir, origin), "store"), func(_ store.Segment, _ int, line []byte) error {
		if seq, ok := record.Seq(line); ok {
			last = max(last, seq)
		}
		return nil
	})
	if err != nil {
		return 0
	}
	return last
}

// verifyWithAgentKeys runs `tailseal verify` on dir with the K0 and the
// checkpoint verifier key of the agent e.
func verifyWithAgentKeys(t *testing.T, dir string, e *env) (string, int) {
	t.Helper()
	k0, err := os.ReadFile(filepath.Join(e.dataDir, "keys", "verify.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(e.dataDir, "keys", "checkpoint.pub"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, "verify")
	cmd.Env = append(withoutTailsealEnv(), "TAILSEAL_DATA_DIR="+dir, "TAILSEAL_VERIFY_KEY="+strings.TrimSpace(string(k0)),
		"TAILSEAL_VERIFIER="+strings.TrimSpace(string(pub)))
	out, err := cmd.CombinedOutput()
	code := 0
	if x, ok := err.(*exec.ExitError); ok {
		code = x.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// sameStore holds a collected origin to the agent's store: the same
// records byte for byte, the same compressed segments (names, records and
// index lines), the same genesis.json and checkpoints.
func sameStore(t *testing.T, dir string, e *env) {
	t.Helper()
	want, got := agentLines(t, e), collecttest.StoreLines(t, filepath.Join(dir, "store"))
	if len(got) != len(want) {
		t.Fatalf("%s: %d records collected, the agent stored %d", dir, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: record %d differs:\n got %s\nwant %s", dir, i+1, got[i], want[i])
		}
	}
	agentIx, _ := store.ReadIndexDigests(filepath.Join(e.dataDir, "store"))
	ix, _ := store.ReadIndexDigests(filepath.Join(dir, "store"))
	segs, err := store.List(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	same := 0
	for _, s := range segs {
		if !s.Compressed {
			continue
		}
		if d, ok := ix[s.Name]; !ok || d != agentIx[s.Name] {
			t.Errorf("%s: segment %s: index line %q, the agent's %q", dir, s.Name, d, agentIx[s.Name])
		}
		a, err := os.ReadFile(filepath.Join(e.dataDir, "store", s.Name))
		b, _ := os.ReadFile(filepath.Join(dir, "store", s.Name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: segment %s is not the agent's, byte for byte (%v)", dir, s.Name, err)
		}
		same++
	}
	t.Logf("%s: %d records, %d compressed segments identical to the agent's (the agent has %d segments, the collector %d)",
		filepath.Base(dir), len(got), same, len(agentIx)+1, len(segs))
	for _, f := range []string{"genesis.json"} {
		a, _ := os.ReadFile(filepath.Join(e.dataDir, f))
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: %s differs from the agent's", dir, f)
		}
	}
	strip := func(path string) string { // the time of a line is the writer's
		b, _ := os.ReadFile(path)
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			i, j := strings.Index(l, `"time":`), strings.Index(l, `,"note":`)
			if i >= 0 && j > i {
				l = l[:i] + l[j+1:]
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	if a, b := strip(filepath.Join(e.dataDir, "checkpoints.jsonl")), strip(filepath.Join(dir, "checkpoints.jsonl")); a != b || a == "" {
		t.Errorf("%s: checkpoints.jsonl differs from the agent's:\n%s\nwant\n%s", dir, b, a)
	}
}

// Two real agents' stores published to JetStream while the collector,
// a real process, is killed with kill -9 again and again: in the end each
// collected origin is the agent's store byte for byte, segment for
// segment, and verifies with the agent's keys. One agent compresses with
// zstd: the collector (on the default, gzip) compresses that origin's
// segments as its agent did.
func TestCollectKill9(t *testing.T) { collectKill9(t, 9000, 6) }

// collectKill9 publishes two agents' stores of n source lines each in
// chunks, killing the collector with kill -9 once per chunk while it
// consumes, and holds the collected origins to the agents' stores.
func collectKill9(t *testing.T, n, chunks int) {
	srv := collecttest.StartServer(t)
	js := srv.Connect(t)
	collecttest.CreateStream(t, js, "TAILSEAL")
	origins := []string{"shop-0.eu", "shop-1"}
	agents := map[string]*env{}
	lines := map[string][][]byte{}
	for i, o := range origins {
		agents[o] = agentStore(t, o, n, "TAILSEAL_COMPRESSION="+[]string{"gzip", "zstd"}[i%2])
		lines[o] = agentLines(t, agents[o])
	}
	c := newEnv(t, "TAILSEAL_NATS_URL="+srv.URL, "TAILSEAL_COLLECT_BATCH=100", "TAILSEAL_LOG_LEVEL=info")
	kills, midway := 0, 0
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range chunks {
		for _, o := range origins {
			n := len(lines[o])
			collecttest.Publish(t, js, o, lines[o][i*n/chunks:(i+1)*n/chunks])
		}
		p := c.start("collect")
		// Kill it while it consumes: once it has stored something more.
		before := collectedSeq(c.dataDir, origins[0]) + collectedSeq(c.dataDir, origins[1])
		waitFor(t, "the collector to make progress", 30*time.Second, func() bool {
			return collectedSeq(c.dataDir, origins[0])+collectedSeq(c.dataDir, origins[1]) > before
		})
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		p.kill9(t)
		kills++
		published := uint64(0)
		for _, o := range origins {
			published += uint64((i + 1) * len(lines[o]) / chunks)
		}
		if collectedSeq(c.dataDir, origins[0])+collectedSeq(c.dataDir, origins[1]) < published {
			midway++ // killed with messages still to consume
		}
	}
	if midway < kills/2 {
		t.Errorf("only %d of %d kills came while messages were still to be consumed", midway, kills)
	}
	p := c.start("collect")
	for _, o := range origins {
		want := uint64(len(lines[o]))
		waitFor(t, "every record of "+o, 60*time.Second, func() bool { return collectedSeq(c.dataDir, o) == want })
		// and every segment the agent's index records split compressed,
		// so that all of them are held to the agent's.
		waitFor(t, "the segments of "+o+" compressed", 30*time.Second, func() bool {
			segs, err := store.List(filepath.Join(collectedDir(c.dataDir, o), "store"))
			if err != nil {
				return false
			}
			for _, s := range segs[:len(segs)-1] {
				if !s.Compressed {
					return false
				}
			}
			return true
		})
	}
	if _, err := p.stop(t); err != nil {
		t.Fatalf("collector: %v\n%s", err, p.stderr)
	}
	if s := p.stderr.String(); strings.Contains(s, "COLLECT:") {
		t.Errorf("findings in the collector's log:\n%s", s)
	}
	t.Logf("%d kill -9, %d of them with messages still to consume", kills, midway)
	for _, o := range origins {
		dir := collectedDir(c.dataDir, o)
		sameStore(t, dir, agents[o])
		if out, code := verifyWithAgentKeys(t, dir, agents[o]); code != 0 {
			t.Errorf("verify %s: exit %d\n%s", dir, code, out)
		}
	}
}

// labeled is the value of the series of name whose labels include want.
func labeled(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range f.Metric {
		n := 0
		for _, l := range m.Label {
			if want[l.GetName()] == l.GetValue() {
				n++
			}
		}
		if n == len(want) {
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return -1
}

// A record altered in the stream before collection (its real version
// never published): it still chains to the one before it, since the
// collector holds no signing key, and the next one does not chain to it.
// The collector reports a broken chain in its log and metrics and halts
// the origin: its store ends at the altered record, which verify, with
// the agent's keys, reports; the rest is in quarantine.jsonl.
func TestCollectTamperedRecord(t *testing.T) {
	srv := collecttest.StartServer(t)
	js := srv.Connect(t)
	collecttest.CreateStream(t, js, "TAILSEAL")
	agent := agentStore(t, "billing", 800)
	lines := agentLines(t, agent)
	const k = 400
	altered := bytes.Clone(lines[k-1])
	i := bytes.Index(altered, []byte(`"score":`))
	if i < 0 {
		t.Fatalf("record %d has no score: %s", k, altered)
	}
	altered[i+len(`"score":`)] ^= 1 // one digit changed
	published := append(append(append([][]byte{}, lines[:k-1]...), altered), lines[k:]...)
	collecttest.Publish(t, js, "billing", published)

	c := newEnv(t, "TAILSEAL_NATS_URL="+srv.URL, "TAILSEAL_LISTEN=127.0.0.1:0")
	p := c.start("collect")
	url := p.endpoint(t)
	waitFor(t, "every message handled", 30*time.Second, func() bool {
		cons, err := js.Consumer(context.Background(), "TAILSEAL", "tailseal-collect")
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.AckFloor.Stream == uint64(len(published))
	})
	fams := scrape(t, url)
	for name, want := range map[string]float64{"tailseal_collect_findings_total": 1, "tailseal_collect_halted": 1,
		"tailseal_collect_last_seq": k, "tailseal_collect_quarantined_total": float64(len(lines) - k)} {
		labels := map[string]string{"origin": "billing"}
		if name == "tailseal_collect_findings_total" {
			labels["kind"] = collect.FindingChain
		}
		if got := labeled(fams, name, labels); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	if s := p.stderr.String(); !strings.Contains(s, "COLLECT: chain in the stream of origin billing") || !strings.Contains(s, "ORIGIN HALTED") {
		t.Errorf("the collector's log does not report the broken chain:\n%s", tail(s, 4096))
	}
	dir := collectedDir(c.dataDir, "billing")
	got := collecttest.StoreLines(t, filepath.Join(dir, "store"))
	if len(got) != k || !bytes.Equal(got[k-1], altered) {
		t.Fatalf("the collected store has %d records, want %d ending with the altered one", len(got), k)
	}
	out, code := verifyWithAgentKeys(t, dir, agent)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("seq %d: bad signature", k)) {
		t.Errorf("verify: exit %d, want 1 naming seq %d:\n%s", code, k, out)
	}
	t.Logf("verify on the collected dir:\n%s", out)
	q, _ := os.ReadFile(filepath.Join(dir, collect.QuarantineFile))
	if n := bytes.Count(q, []byte("\n")); n != len(lines)-k {
		t.Errorf("quarantine.jsonl holds %d messages, want %d", n, len(lines)-k)
	}
}

// Two collector processes share three origins by partition: each origin
// is collected whole by one of them, into its own data dir only, and
// verifies there.
func TestCollectPartitions(t *testing.T) {
	srv := collecttest.StartServer(t)
	js := srv.Connect(t)
	collecttest.CreateStream(t, js, "TAILSEAL")
	// Origins that fall on both partitions of two.
	origins := []string{"api-0", "api-1", "api-2", "api-3", "api-4"}
	byPart := map[int][]string{}
	for _, o := range origins {
		k := collect.Partition(record.OriginToken(o), 2)
		byPart[k] = append(byPart[k], o)
	}
	if len(byPart[0]) == 0 || len(byPart[1]) == 0 {
		t.Fatalf("the origins all fall on one partition: %v", byPart)
	}
	picked := []string{byPart[0][0], byPart[1][0], byPart[0][len(byPart[0])-1]}
	if picked[2] == picked[0] {
		picked[2] = byPart[1][len(byPart[1])-1]
	}
	agents := map[string]*env{}
	for _, o := range picked {
		agents[o] = agentStore(t, o, 1500)
		collecttest.Publish(t, js, o, agentLines(t, agents[o]))
	}
	var colls [2]*env
	var procs [2]*proc
	for k := range 2 {
		colls[k] = newEnv(t, "TAILSEAL_NATS_URL="+srv.URL, "TAILSEAL_COLLECT_PARTITIONS=2", fmt.Sprintf("TAILSEAL_COLLECT_PARTITION=%d", k))
		procs[k] = colls[k].start("collect")
	}
	for _, o := range picked {
		k := collect.Partition(record.OriginToken(o), 2)
		want := uint64(len(agentLines(t, agents[o])))
		waitFor(t, o+" collected by collector "+fmt.Sprint(k), 60*time.Second, func() bool { return collectedSeq(colls[k].dataDir, o) == want })
	}
	for k := range 2 {
		if _, err := procs[k].stop(t); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range picked {
		k := collect.Partition(record.OriginToken(o), 2)
		if _, err := os.Stat(collectedDir(colls[1-k].dataDir, o)); err == nil {
			t.Errorf("origin %s is in both collectors' data dirs", o)
		}
		dir := collectedDir(colls[k].dataDir, o)
		sameStore(t, dir, agents[o])
		if out, code := verifyWithAgentKeys(t, dir, agents[o]); code != 0 {
			t.Errorf("verify %s: exit %d\n%s", dir, code, out)
		}
	}
	for k, name := range []string{"tailseal-collect-0-of-2", "tailseal-collect-1-of-2"} {
		if _, err := js.Consumer(context.Background(), "TAILSEAL", name); err != nil {
			t.Errorf("collector %d: consumer %s: %v", k, name, err)
		}
	}
}

// collect explains itself, needs a NATS server, and refuses a data dir
// an agent (or another collector) holds, with exit 2.
func TestCollectUsage(t *testing.T) {
	dir := t.TempDir()
	run := func(env []string, args ...string) (string, int) {
		cmd := exec.Command(binPath, append([]string{"collect"}, args...)...)
		cmd.Env = append(withoutTailsealEnv(), append([]string{"TAILSEAL_DATA_DIR=" + dir, "TAILSEAL_LISTEN="}, env...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if x, ok := err.(*exec.ExitError); ok {
			code = x.ExitCode()
		}
		return string(out), code
	}
	if out, code := run(nil, "--help"); code != 0 || !strings.Contains(out, "Usage: tailseal collect") || !strings.Contains(out, "quarantine.jsonl") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
	if out, code := run(nil); code != 2 || !strings.Contains(out, "TAILSEAL_NATS_URL must name the NATS servers") {
		t.Errorf("without TAILSEAL_NATS_URL: exit %d\n%s", code, out)
	}
	e := newEnv(t)
	p := e.start()
	waitFor(t, "the agent's lock and store", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.dataDir, "store"))
		return lock.Held(e.dataDir) && err == nil
	})
	dir = e.dataDir
	if out, code := run([]string{"TAILSEAL_NATS_URL=nats://127.0.0.1:1"}); code != 2 || !strings.Contains(out, "holds an agent's store") {
		t.Errorf("on an agent's data dir: exit %d\n%s", code, out)
	}
	p.stop(t)
	// A collector's data dir, held by a collector.
	dir = t.TempDir()
	srv := collecttest.StartServer(t)
	c := exec.Command(binPath, "collect")
	c.Env = append(withoutTailsealEnv(), "TAILSEAL_DATA_DIR="+dir, "TAILSEAL_LISTEN=", "TAILSEAL_NATS_URL="+srv.URL)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	waitFor(t, "the collector's lock", 10*time.Second, func() bool { return lock.Held(dir) })
	if out, code := run([]string{"TAILSEAL_NATS_URL=" + srv.URL}); code != 2 || !strings.Contains(out, "already running") {
		t.Errorf("on a collector's data dir: exit %d\n%s", code, out)
	}
}

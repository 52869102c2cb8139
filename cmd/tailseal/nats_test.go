package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/tailseal/tailseal/signer/record"
	natssink "github.com/tailseal/tailseal/sinks/nats"
	"github.com/tailseal/tailseal/sinks/nats/natstest"
)

// natsEnv is an agent that publishes to url under origin.
func natsEnv(t *testing.T, url, origin string, extra ...string) *env {
	return newEnv(t, append([]string{"TAILSEAL_ORIGIN=" + origin, "TAILSEAL_NATS_URL=" + url, "TAILSEAL_HTTP_TIMEOUT=2s",
		"TAILSEAL_SEGMENT_MAX_MB=2", "TAILSEAL_CHECKPOINT_EVERY=2000"}, extra...)...)
}

// checkStreamHoldsStore reads origin's subject with the nats.go client and
// holds it to the agent's store: every record once, in seq order, byte
// for byte, under its Nats-Msg-Id.
func checkStreamHoldsStore(t *testing.T, nc *nats.Conn, e *env, origin string) stored {
	t.Helper()
	s := readStore(t, e.dataDir)
	msgs := natstest.Messages(t, nc, "TAILSEAL", "tailseal.records."+record.OriginToken(origin))
	if len(msgs) != len(s.line) {
		t.Errorf("%s: the stream holds %d messages, the store %d records", origin, len(msgs), len(s.line))
	}
	for i, m := range msgs {
		if i >= len(s.line) {
			seq, _ := record.Seq(m.Data)
			t.Fatalf("%s: message %d holds record %d, past the store's end", origin, i+1, seq)
		}
		if !bytes.Equal(m.Data, s.line[i]) {
			seq, _ := record.Seq(m.Data)
			t.Fatalf("%s: message %d holds record %d, not the store's record %d byte for byte (lost, repeated or reordered)", origin, i+1, seq, s.meta[i].Seq)
		}
		if id := m.Header.Get("Nats-Msg-Id"); id != origin+":"+strconv.FormatUint(s.meta[i].Seq, 10) {
			t.Fatalf("%s: message %d has Nats-Msg-Id %q", origin, i+1, id)
		}
	}
	return s
}

// waitPublished waits until the stream holds n messages of origin.
func waitPublished(t *testing.T, nc *nats.Conn, origin string, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := jsStream(nc)
		if err == nil {
			if got := st[natssink.Subject(origin)]; got >= uint64(n) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the stream did not reach %d messages in 2 minutes (%v)", origin, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// jsStream is the message count per subject of the stream, from the
// server's stream info.
func jsStream(nc *nats.Conn) (map[string]uint64, error) {
	req, _ := json.Marshal(map[string]string{"subjects_filter": natssink.SubjectPrefix + ">"})
	resp, err := nc.Request("$JS.API.STREAM.INFO.TAILSEAL", req, 2*time.Second)
	if err != nil {
		return nil, err
	}
	var info struct {
		State struct {
			Subjects map[string]uint64 `json:"subjects"`
		} `json:"state"`
	}
	err = json.Unmarshal(resp.Data, &info)
	return info.State.Subjects, err
}

// Two agents with different origins publish into one stream; one is
// killed with kill -9 five times while it publishes. The stream then
// holds every record of each store exactly once, in seq order, byte for
// byte, read back with the nats.go client. 20,000 lines each here; the
// issue's 100,000 in TestEnduranceNATSTwoAgentsKill9.
func TestNATSTwoAgentsKill9(t *testing.T) { natsTwoAgentsKill9(t, 20000) }

func natsTwoAgentsKill9(t *testing.T, natsLines int) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	steady := natsEnv(t, srv.URL(), "web-0.example")
	killed := natsEnv(t, srv.URL(), "web-1")
	ps := steady.start()
	pk := killed.start()
	ws, wk := newWriter(t, steady.source), newWriter(t, killed.source)
	rng := rand.New(rand.NewPCG(15, 5))
	chunk := natsLines / 10
	kills, behind, resumedAhead := 0, 0, 0
	for i := range 10 {
		ws.write(chunk)
		wk.write(chunk)
		if i%2 == 1 { // five times, while the sink has a backlog to publish
			killed.waitStored(wk.next - chunk/2)
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
			pk.kill9(t)
			kills++
			if n, _ := jsStream(nc); n[natssink.Subject("web-1")] < uint64(len(readStore(t, killed.dataDir).line)) {
				behind++
			}
			if resumedPastCursor(pk.stderr.String()) {
				resumedAhead++
			}
			pk = killed.start()
		}
	}
	steady.waitStored(ws.next)
	killed.waitStored(wk.next)
	for _, p := range []*proc{ps, pk} {
		if _, err := p.stop(t); err != nil { // the stop record, delivered in the drain
			t.Errorf("SIGTERM: %v\n%s", err, tail(p.stderr.String(), 4096))
		}
	}
	a := checkStreamHoldsStore(t, nc, steady, "web-0.example")
	b := checkStreamHoldsStore(t, nc, killed, "web-1")
	steady.checkExactly(a, natsLines)
	killed.checkExactly(b, natsLines)
	if behind == 0 {
		t.Errorf("no kill -9 came while the stream was behind the store: the test did not kill a publishing agent")
	}
	t.Logf("%d kill -9, %d with records not yet published, %d restarts resumed past their cursor; %d and %d records, each once in the stream",
		kills, behind, resumedAhead, len(a.line), len(b.line))
}

// resumedPastCursor reports whether an agent's log shows its JetStream
// sink resuming after more than its cursor said: records published and
// acknowledged whose cursor save a kill -9 cut off.
func resumedPastCursor(stderr string) bool {
	for _, l := range strings.Split(stderr, "\n") {
		var e struct {
			Msg    string `json:"msg"`
			Cursor uint64 `json:"cursor"`
			Last   uint64 `json:"receiver_last_seq"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg == "sink resumes after what its receiver holds" && e.Last > e.Cursor {
			return true
		}
	}
	return false
}

// A short duplicate window (1s) cannot hide a duplicate: records stored
// while the server was down, the agent killed before it could publish
// them and started again after the window passed, are published once;
// and a cursor left behind what the stream acknowledged (as a kill -9
// between a publish and the cursor's save leaves it), with the window
// long past, sends nothing again.
func TestNATSDuplicateWindowPassed(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	e := natsEnv(t, srv.URL(), "dw-1", "TAILSEAL_NATS_DUPLICATE_WINDOW=1s")
	w := newWriter(t, e.source)
	p := e.start()
	w.write(3000)
	e.waitStored(3000)
	waitPublished(t, nc, "dw-1", 3000)

	srv.Stop() // unreachable: the agent stores and cannot publish
	w.write(3000)
	e.waitStored(6000)
	p.kill9(t)
	time.Sleep(1500 * time.Millisecond) // the duplicate window passes
	srv.Restart()
	p = e.start()
	w.write(1000)
	e.waitStored(7000)
	if _, err := p.stop(t); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	checkStreamHoldsStore(t, nc, e, "dw-1")

	// The cursor says 1; the stream holds everything.
	cursor := filepath.Join(e.dataDir, "state", "sink-nats.json")
	if err := os.WriteFile(cursor, []byte(`{"delivered":1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	p = e.start()
	w.write(500)
	e.waitStored(7500)
	if _, err := p.stop(t); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	s := checkStreamHoldsStore(t, nc, e, "dw-1")
	e.checkExactly(s, 7500)
	if !strings.Contains(p.stderr.String(), `"cursor":1,"receiver_last_seq"`) {
		t.Errorf("the agent did not resume from the stream past its cursor:\n%s", tail(p.stderr.String(), 4096))
	}
}

// A CA file that cannot be read stops the agent at start with exit 2,
// naming the variable; the token is never printed.
func TestNATSBadCAFileExit2(t *testing.T) {
	e := newEnv(t, "TAILSEAL_NATS_URL=tls://127.0.0.1:4222", "TAILSEAL_NATS_CA_FILE=/nonexistent/ca.pem", "TAILSEAL_NATS_TOKEN=sEcReT-tok")
	p := e.start()
	err := <-p.done
	p.done <- err
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit %v, want 2:\n%s", err, p.stderr)
	}
	if out := p.stderr.String(); !strings.Contains(out, "TAILSEAL_NATS_CA_FILE") || strings.Contains(out, "sEcReT-tok") {
		t.Errorf("stderr:\n%s", out)
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/sinks/sinkstest"
)

// drainReceiver is a webhook endpoint that takes its time over each
// request (slow), or refuses every one with a 503 (down).
type drainReceiver struct {
	srv   *httptest.Server
	delay time.Duration
	down  atomic.Bool
	mu    sync.Mutex
	calls int
	seqs  map[uint64]string // seq -> event type, as delivered
}

func newDrainReceiver(t *testing.T, delay time.Duration) *drainReceiver {
	r := &drainReceiver{delay: delay, seqs: map[uint64]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *drainReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil || int64(len(body)) != req.ContentLength {
		return // cut off: no request came
	}
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	if r.down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	select { // a slow receiver, as a busy SIEM is
	case <-time.After(r.delay):
	case <-req.Context().Done():
		return
	}
	var batch struct {
		Records []string `json:"records"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range batch.Records {
		m, err := record.ParseMeta([]byte(l))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.seqs[m.Seq] = m.EventType
	}
}

// missing lists the stored seqs the receiver has not got.
func (r *drainReceiver) missing(s stored) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, m := range s.meta {
		if _, ok := r.seqs[m.Seq]; !ok {
			out = append(out, m.Seq)
		}
	}
	return out
}

// counts are the requests and the distinct records received.
func (r *drainReceiver) counts() (calls, records int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, len(r.seqs)
}

// waitReady waits until the agent logs that recovery is over: its signal
// handler is in place and it reads the source.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, "the agent to be ready", 10*time.Second, func() bool {
		return strings.Contains(p.stderr.String(), `"msg":"ready"`)
	})
}

// logRecords are the agent's JSON log lines with message msg.
func logRecords(stderr, msg string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

const leftMsg = "sink left stored records undelivered; they are kept and delivered after the next start"

// The application writes and the agent is stopped at once; the webhook
// receiver takes 200 ms a request and batches are small, so delivering
// takes seconds. The agent stores every line, then waits for the sink to
// deliver every stored record, its stop record included, and exits 0 as
// soon as it has, long before TAILSEAL_DRAIN_TIMEOUT; Slack, with no
// alert to send, does not hold it.
func TestDrainDeliversEverythingOnStop(t *testing.T) {
	const lines = 200
	recv := newDrainReceiver(t, 200*time.Millisecond)
	slack := sinkstest.NewChat(t, false)
	e := newEnv(t, "TAILSEAL_WEBHOOK_URLS="+recv.srv.URL+"/hook", "TAILSEAL_WEBHOOK_BATCH=10",
		"TAILSEAL_WEBHOOK_BATCH_AGE=50ms", "TAILSEAL_DRAIN_TIMEOUT=60s", "TAILSEAL_SLACK_WEBHOOK="+slack.URL())
	p := e.start()
	p.waitReady(t)
	w := newWriter(t, e.source)
	w.write(lines)
	took, err := p.stop(t) // fails past 20 s: a third of the drain timeout
	if err != nil {
		t.Fatalf("exit: %v after %v, want 0", err, took)
	}
	s := readStore(t, e.dataDir)
	e.checkExactly(s, lines)
	if last := s.meta[len(s.meta)-1]; last.EventType != record.TypeStop {
		t.Fatalf("the store ends with %q, want the stop record", last.EventType)
	}
	if miss := recv.missing(s); len(miss) > 0 {
		t.Fatalf("exited with %d of %d stored records not delivered (first %d); stderr:\n%s",
			len(miss), len(s.meta), miss[0], tail(p.stderr.String(), 8<<10))
	}
	// 200 lines in batches of 10 at 200 ms each: at least 4 s of delivery
	// after the signal, or the test did not test the drain.
	calls, records := recv.counts()
	if took < 4*time.Second {
		t.Errorf("exited %v after SIGTERM: too soon for %d requests of 200 ms", took, calls)
	}
	if left := logRecords(p.stderr.String(), leftMsg); len(left) > 0 {
		t.Errorf("logged records left undelivered: %v", left)
	}
	t.Logf("exited %v after SIGTERM; %d requests delivered %d records", took.Round(time.Millisecond), calls, records)
}

// Errors written just before the stop reach the alert threshold: the
// alert engine evaluates them during the drain and Slack has the alert
// when the agent exits.
func TestDrainDeliversAlertOnStop(t *testing.T) {
	slack := sinkstest.NewChat(t, false)
	e := newEnv(t, "TAILSEAL_SLACK_WEBHOOK="+slack.URL(), "TAILSEAL_ALERT_THRESHOLD=3", "TAILSEAL_DRAIN_TIMEOUT=30s")
	p := e.start()
	p.waitReady(t)
	waitFor(t, "the alert engine to start", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.dataDir, "state", "sink-alerts.json"))
		return err == nil
	})
	appendLines(t, e.source, errorLine(0), errorLine(1), errorLine(2))
	took, err := p.stop(t)
	if err != nil {
		t.Fatalf("exit: %v after %v, want 0", err, took)
	}
	acc := slack.Accepted()
	if len(acc) != 1 || !strings.Contains(string(acc[0]), "firing") {
		t.Fatalf("exited %v after SIGTERM; Slack got %d messages, want the firing alert:\n%s", took, len(acc), acc)
	}
}

// The receiver is down (503 for everything). A stop stores every line,
// waits TAILSEAL_DRAIN_TIMEOUT (2 s) and no longer, exits 0 and logs what
// the sink left; its cursor still says nothing was delivered, so the next
// start delivers it all once the receiver is back.
func TestDrainTimeoutWithReceiverDown(t *testing.T) {
	const lines, drain = 50, 2 * time.Second
	recv := newDrainReceiver(t, 0)
	recv.down.Store(true)
	e := newEnv(t, "TAILSEAL_WEBHOOK_URLS="+recv.srv.URL+"/hook", "TAILSEAL_WEBHOOK_BATCH=10",
		"TAILSEAL_WEBHOOK_BATCH_AGE=50ms", "TAILSEAL_RETRY_MAX_WAIT=1s", fmt.Sprintf("TAILSEAL_DRAIN_TIMEOUT=%v", drain))
	p := e.start()
	p.waitReady(t)
	w := newWriter(t, e.source)
	w.write(lines)
	took, err := p.stop(t)
	if err != nil {
		t.Fatalf("exit: %v after %v, want 0", err, took)
	}
	if took < drain || took > drain+3*time.Second {
		t.Errorf("exited %v after SIGTERM, want about the drain timeout of %v", took, drain)
	}
	s := readStore(t, e.dataDir)
	e.checkExactly(s, lines)
	durable := s.meta[len(s.meta)-1].Seq
	left := logRecords(p.stderr.String(), leftMsg)
	if len(left) != 1 || left[0]["sink"] != "webhook-1" || left[0]["delivered_seq"] != 0.0 ||
		left[0]["durable_seq"] != float64(durable) || left[0]["records_left"] != float64(durable) {
		t.Fatalf("log of what was left: %v; want webhook-1, delivered 0, durable and left %d", left, durable)
	}
	if calls, _ := recv.counts(); calls == 0 {
		t.Fatal("the sink never tried to deliver: the test did not test a receiver that is down")
	}
	b, err := os.ReadFile(filepath.Join(e.dataDir, "state", "sink-webhook-1.json"))
	var cursor struct{ Delivered uint64 }
	if err != nil || json.Unmarshal(b, &cursor) != nil || cursor.Delivered != 0 {
		t.Fatalf("cursor %s (%v), want delivered 0", b, err)
	}

	recv.down.Store(false)
	p = e.start()
	waitFor(t, "every record of the first run at the receiver", 30*time.Second, func() bool {
		return len(recv.missing(s)) == 0
	})
	if _, err := p.stop(t); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if got := logRecords(p.stderr.String(), leftMsg); len(got) > 0 {
		t.Errorf("the second run left records: %v", got)
	}
}

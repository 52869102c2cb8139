package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/sinkstest"
	"github.com/tailseal/tailseal/sinks/webhook"
)

// logBuffer collects a logger's JSON lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count is how many log lines contain every one of parts.
func (l *logBuffer) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

func newSink(t *testing.T, url string) (*webhook.Sink, *logBuffer, string) {
	logs := &logBuffer{}
	state := t.TempDir()
	s := webhook.New(webhook.Options{Name: "hook", Origin: "web-1", URL: url, StateDir: state,
		HTTP: sinks.HTTPOptions{Timeout: 5 * time.Second, MinWait: time.Millisecond, MaxWait: 20 * time.Millisecond,
			Log: slog.New(slog.NewJSONHandler(logs, nil))}})
	return s, logs, state
}

func batch(first, n int) sinks.Batch {
	b := sinks.Batch{First: uint64(first), Last: uint64(first + n - 1)}
	for i := range n {
		b.Lines = append(b.Lines, fmt.Appendf(nil, `{"seq":%d,"event_type":"x","pad":%q}`, first+i, strings.Repeat("p", 100)))
	}
	return b
}

// A redirect is never a delivery: the POST is not followed as a GET to
// another host, it is retried and logged once, and the batch is delivered
// whole once the endpoint answers 2xx.
func TestRedirectIsNotADelivery(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	var posts atomic.Int32
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if posts.Add(1) <= 5 {
			http.Redirect(w, r, other.URL+"/secret-path?token=abc", http.StatusFound)
			return
		}
		got = body
	}))
	defer srv.Close()
	s, logs, _ := newSink(t, srv.URL)
	b := batch(1, 3)
	if err := s.Deliver(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if elsewhere.Load() != 0 {
		t.Errorf("the redirect was followed: %d requests elsewhere", elsewhere.Load())
	}
	if !bytes.Equal(got, webhook.Body("web-1", b)) {
		t.Errorf("delivered body %q", got)
	}
	if s.Retries().Redirect.Load() != 5 {
		t.Errorf("%d redirect retries, want 5", s.Retries().Redirect.Load())
	}
	if logs.count("delivery failing", "redirect") != 1 || logs.count("delivery works again") != 1 {
		t.Errorf("want one failing and one recovered line:\n%s", logs.b.String())
	}
	if logs.count("secret-path") > 0 || logs.count("token=abc") > 0 {
		t.Errorf("the log shows the redirect's path or query:\n%s", logs.b.String())
	}
}

// Connection refused is logged once when it starts and once when it
// clears, however many attempts it takes.
func TestNetworkFailureLoggedOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // refused until the server below listens there
	s, logs, _ := newSink(t, "http://"+addr+"/hook")
	done := make(chan error, 1)
	go func() { done <- s.Deliver(context.Background(), batch(1, 2)) }()
	for deadline := time.Now().Add(10 * time.Second); s.Retries().Network.Load() < 5; {
		if time.Now().After(deadline) {
			t.Fatal("fewer than 5 attempts in 10 s")
		}
		time.Sleep(time.Millisecond) // the attempt counter is the event; nothing else tells it
	}
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go srv.Serve(l2)
	defer srv.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if logs.count("delivery failing", "network") != 1 || logs.count("delivery works again", "network") != 1 {
		t.Errorf("want one failing and one recovered line after %d attempts:\n%s", s.Retries().Network.Load(), logs.b.String())
	}
}

// A 413 splits the batch in halves, each under its own id, down to single
// records; a record still too large goes to the dead-letter file, and the
// log says so.
func TestTooLargeSplitsTheBatch(t *testing.T) {
	ids := map[string]int{}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			First   uint64   `json:"first_seq"`
			Last    uint64   `json:"last_seq"`
			Records []string `json:"records"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		tooBig := len(body.Records) > 2 || strings.Contains(strings.Join(body.Records, ""), `"seq":7,`)
		if tooBig {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		mu.Lock()
		ids[r.Header.Get("webhook-id")] = len(body.Records)
		mu.Unlock()
	}))
	defer srv.Close()
	s, logs, state := newSink(t, srv.URL)
	if err := s.Deliver(context.Background(), batch(1, 8)); err != nil {
		t.Fatal(err)
	}
	// d2ViLTE is "web-1", unpadded base64url.
	want := map[string]int{"msg_d2ViLTE_1_2": 2, "msg_d2ViLTE_3_4": 2, "msg_d2ViLTE_5_6": 2, "msg_d2ViLTE_8_8": 1}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("delivered %v, want %v", ids, want)
	}
	dead, _ := os.ReadFile(filepath.Join(state, "deadletter-hook.jsonl"))
	if !strings.Contains(string(dead), `\"seq\":7,`) || strings.Count(string(dead), "\n") != 1 {
		t.Errorf("dead letters: %s", dead)
	}
	if logs.count("dead-letter file", `"first_seq":7`) != 1 || logs.count("413") < 1 {
		t.Errorf("the log does not say what was dead-lettered:\n%s", logs.b.String())
	}
}

// A batch refused for good whose dead-letter line cannot be written (a
// directory in the file's place: as a full disk) is not counted or logged
// as dead-lettered: Deliver fails, and the retry writes it once it can.
func TestDeadLetterWriteFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	s, logs, state := newSink(t, srv.URL)
	file := filepath.Join(state, "deadletter-hook.jsonl")
	if err := os.MkdirAll(filepath.Join(file, "blocked"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(context.Background(), batch(1, 3)); err == nil {
		t.Fatal("Deliver succeeded with the dead-letter file unwritable")
	}
	if n := s.DeadLetters.Load(); n != 0 || logs.count("written to the dead-letter file, delivery goes on") != 0 {
		t.Errorf("%d dead letters counted, log:\n%s", n, logs.b.String())
	}
	if logs.count("cannot be written to the dead-letter file") != 1 {
		t.Errorf("the log does not say the write failed:\n%s", logs.b.String())
	}
	os.RemoveAll(file)
	if err := s.Deliver(context.Background(), batch(1, 3)); err != nil {
		t.Fatal(err)
	}
	if dead, _ := os.ReadFile(file); strings.Count(string(dead), "\n") != 1 || s.DeadLetters.Load() != 1 {
		t.Errorf("after the retry: %d dead letters, file %s", s.DeadLetters.Load(), dead)
	}
}

// parseID is ID's inverse, written the way a receiver would: split at the
// last two "_", decode the origin. That it recovers every (origin, first,
// last) is what makes ID injective: equal ids parse to equal triples.
func parseID(id string) (origin string, first, last uint64, err error) {
	rest, ok := strings.CutPrefix(id, "msg_")
	i := strings.LastIndexByte(rest, '_')
	j := strings.LastIndexByte(rest[:max(i, 0)], '_')
	if !ok || i < 0 || j < 0 {
		return "", 0, 0, fmt.Errorf("id %q: want msg_<origin>_<first>_<last>", id)
	}
	o, err := base64.RawURLEncoding.Strict().DecodeString(rest[:j])
	if err != nil {
		return "", 0, 0, fmt.Errorf("id %q: origin: %w", id, err)
	}
	if first, err = strconv.ParseUint(rest[j+1:i], 10, 64); err != nil {
		return "", 0, 0, fmt.Errorf("id %q: first: %w", id, err)
	}
	if last, err = strconv.ParseUint(rest[i+1:], 10, 64); err != nil {
		return "", 0, 0, fmt.Errorf("id %q: last: %w", id, err)
	}
	return string(o), first, last, nil
}

var headerSafe = regexp.MustCompile(`^msg_[A-Za-z0-9_-]*_[0-9]+_[0-9]+$`)

// The webhook-id round-trips for origins that a plain join would confuse
// (underscores, digits, the empty string, bytes that are not UTF-8), is
// header-safe, and no two of them share an id.
func TestIDIsInjective(t *testing.T) {
	origins := []string{"", "_", "__", "a", "a_1", "a_1_2", "a-1", "1", "web-1", "web-1_", "é", "a/b c", "\xff\x00", strings.Repeat("pod-", 63)}
	batches := []sinks.Batch{{First: 1, Last: 1}, {First: 1, Last: 2}, {First: 12, Last: 3}, {First: 2, Last: 3}, {First: 1, Last: 23}, {First: 123, Last: 4567}}
	seen := map[string]string{}
	for _, o := range origins {
		for _, b := range batches {
			id := webhook.ID(o, b)
			what := fmt.Sprintf("origin %q, seqs %d..%d", o, b.First, b.Last)
			if prev, ok := seen[id]; ok {
				t.Errorf("%s and %s share the id %s", prev, what, id)
			}
			seen[id] = what
			if !headerSafe.MatchString(id) {
				t.Errorf("%s: id %q is not msg_ and base64url, digits and _", what, id)
			}
			po, pf, pl, err := parseID(id)
			if err != nil || po != o || pf != b.First || pl != b.Last {
				t.Errorf("%s: id %s parses to %q %d..%d (%v)", what, id, po, pf, pl, err)
			}
		}
	}
}

func FuzzIDRoundTrip(f *testing.F) {
	f.Add("a_1", uint64(2), uint64(3))
	f.Add("", uint64(0), uint64(0))
	f.Add("\xff_", uint64(18446744073709551615), uint64(1))
	f.Fuzz(func(t *testing.T, origin string, first, last uint64) {
		id := webhook.ID(origin, sinks.Batch{First: first, Last: last})
		po, pf, pl, err := parseID(id)
		if err != nil || po != origin || pf != first || pl != last {
			t.Fatalf("%q %d %d: id %s parses to %q %d %d (%v)", origin, first, last, id, po, pf, pl, err)
		}
	})
}

// agentStore holds n records of one agent, seqs 1..n like every other
// agent's: only the origin tells their batches apart. The actor names the
// agent, so the receiver knows the truth without trusting the body.
func agentStore(agentName string, n int) *sinkstest.Store {
	st := sinkstest.NewStore()
	for i := 1; i <= n; i++ {
		st.Append(fmt.Appendf(nil, `{"seq":%d,"timestamp":"2026-02-04T20:30:45Z","event_type":"x","actor":%q,"lead_id":"","workflow":"","details":{},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`,
			i, agentName))
	}
	return st
}

// fleetReceiver is one endpoint that many agents post to. It fails every
// third request with a 500, so that batches are retried.
type fleetReceiver struct {
	t      *testing.T
	want   int // records in all
	mu     sync.Mutex
	calls  int
	failed []string            // ids of the requests answered 500
	bodies map[string][]byte   // id -> body, for requests answered 200
	got    map[string][]uint64 // agent (from the records) -> seqs delivered
	n      int
	done   chan struct{}
}

func (f *fleetReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("webhook-id")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls++; f.calls%3 == 0 {
		f.failed = append(f.failed, id)
		if prev, ok := f.bodies[id]; ok && !bytes.Equal(prev, body) {
			f.t.Errorf("webhook-id %s came with two bodies:\n%s\n%s", id, prev, body)
		}
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	if prev, ok := f.bodies[id]; ok {
		if !bytes.Equal(prev, body) {
			f.t.Errorf("webhook-id %s came with two bodies:\n%s\n%s", id, prev, body)
		}
		return // a duplicate, deduplicated on the id
	}
	f.bodies[id] = body
	var b struct {
		Origin  *string  `json:"origin"`
		First   uint64   `json:"first_seq"`
		Last    uint64   `json:"last_seq"`
		Records []string `json:"records"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Origin == nil {
		f.t.Errorf("body without an origin (%v): %s", err, body)
		return
	}
	if o, first, last, err := parseID(id); err != nil || o != *b.Origin || first != b.First || last != b.Last {
		f.t.Errorf("id %s (%q %d..%d, %v) does not match the body's origin %q and seqs %d..%d", id, o, first, last, err, *b.Origin, b.First, b.Last)
	}
	for _, l := range b.Records {
		var rec struct {
			Seq   uint64 `json:"seq"`
			Actor string `json:"actor"`
		}
		json.Unmarshal([]byte(l), &rec)
		if rec.Actor != *b.Origin {
			f.t.Errorf("a record of %s came in a body naming origin %q (id %s)", rec.Actor, *b.Origin, id)
		}
		f.got[rec.Actor] = append(f.got[rec.Actor], rec.Seq)
		if f.n++; f.n == f.want {
			close(f.done)
		}
	}
}

// Two agents with different origins and the same seqs post to one
// receiver: every record arrives once, under an id that names its origin
// and no other agent's batch; every body names its origin; a retried
// request keeps its id and body.
func TestTwoOriginsOneReceiver(t *testing.T) {
	const n = 50
	agents := []string{"agent-a", "agent-b"}
	recv := &fleetReceiver{t: t, want: n * len(agents), bodies: map[string][]byte{}, got: map[string][]uint64{}, done: make(chan struct{})}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, a := range agents {
		state := t.TempDir()
		s := webhook.New(webhook.Options{Name: "webhook-1", Origin: a, URL: srv.URL, StateDir: state,
			HTTP: sinks.HTTPOptions{Timeout: 5 * time.Second, MinWait: time.Millisecond, MaxWait: 20 * time.Millisecond}})
		r, err := sinks.NewRunner(s, state, sinks.Limits{Count: 7, Bytes: 1 << 20, Age: time.Millisecond}, 1, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		st := agentStore(a, n)
		wg.Go(func() { r.Run(ctx, st) })
	}
	select {
	case <-recv.done:
	case <-time.After(20 * time.Second): // a guard against a hang
		recv.mu.Lock()
		defer recv.mu.Unlock()
		t.Fatalf("%d of %d records arrived: %v", recv.n, recv.want, recv.got)
	}
	cancel()
	wg.Wait()
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for _, a := range agents {
		var want []uint64
		for i := uint64(1); i <= n; i++ {
			want = append(want, i)
		}
		if fmt.Sprint(recv.got[a]) != fmt.Sprint(want) {
			t.Errorf("%s: seqs %v arrived, want 1..%d once each, in order", a, recv.got[a], n)
		}
	}
	if len(recv.failed) == 0 {
		t.Fatal("no request failed: retries were not tried")
	}
	for _, id := range recv.failed {
		if _, ok := recv.bodies[id]; !ok {
			t.Errorf("the failed request %s was not retried under the same id", id)
		}
	}
}

package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailseal/tailseal/sinks"
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
	s := webhook.New(webhook.Options{Name: "hook", URL: url, StateDir: state,
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
	if !bytes.Equal(got, webhook.Body(b)) {
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
	want := map[string]int{"msg_1_2": 2, "msg_3_4": 2, "msg_5_6": 2, "msg_8_8": 1}
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

package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/sinkstest"
	"github.com/tailseal/tailseal/sinks/webhook"
)

// storeWith holds n records that look like the agent's.
func storeWith(t *testing.T, n int) (*sinkstest.Store, string) {
	stateDir := t.TempDir()
	st := sinkstest.NewStore()
	for i := 1; i <= n; i++ {
		st.Append(fmt.Appendf(nil, `{"seq":%d,"timestamp":"2026-02-04T20:30:45Z","event_type":"%s","actor":"","lead_id":"","workflow":"","details":{},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`,
			i, []string{"lead_ingested", "error"}[i%2]))
	}
	return st, stateDir
}

// A 400 dead-letters the batch and delivery goes on; a 410 stops the sink
// where it is; the event-type filter passes records over.
func TestRunnerDeadLettersAndStops(t *testing.T) {
	st, stateDir := storeWith(t, 300)
	var mu sync.Mutex
	var got []string
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch {
		case calls == 2:
			http.Error(w, "schema mismatch", http.StatusBadRequest)
		case calls == 5:
			http.Error(w, "gone", http.StatusGone)
		default:
			got = append(got, r.Header.Get("webhook-id"))
		}
	}))
	defer srv.Close()
	sink := webhook.New(webhook.Options{Name: "webhook-1", Origin: "web-1", URL: srv.URL + "/x", Types: []string{"error"}, StateDir: stateDir, HTTP: fast})
	r, err := sinks.NewRunner(sink, stateDir, sinks.Limits{Count: 30, Bytes: 1 << 20, Age: 10 * time.Millisecond}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = r.Run(ctx, st)
	if !errors.Is(err, sinks.ErrStopped) || !r.Stats.Stopped.Load() {
		t.Fatalf("Run: %v, want the sink stopped by the 410", err)
	}
	// Odd seqs are errors: 30 per batch, cut at the 30th. Batches 1, (2:
	// 400), 3, 4, (5: 410).
	if want := []string{"msg_d2ViLTE_1_59", "msg_d2ViLTE_120_179", "msg_d2ViLTE_180_239"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	dl, err := os.ReadFile(filepath.Join(stateDir, "deadletter-webhook-1.jsonl"))
	if err != nil || !strings.Contains(string(dl), `"first_seq":60,"last_seq":119`) || !strings.Contains(string(dl), "schema mismatch") {
		t.Errorf("dead letter: %s (%v)", dl, err)
	}
	if r.Keep() != 240 {
		t.Errorf("cursor at %d after the 410, want 239: the refused batch stays", r.Keep()-1)
	}
}

// collect is a sink that keeps the first seq of every batch and stops
// after the batch that reaches last.
type collect struct {
	last   uint64
	firsts []uint64
}

func (c *collect) Name() string            { return "collect" }
func (c *collect) Accept(line []byte) bool { return true }
func (c *collect) Deliver(ctx context.Context, b sinks.Batch) error {
	c.firsts = append(c.firsts, b.First)
	if b.Last >= c.last {
		return sinks.ErrStopped
	}
	return nil
}

// Records deleted by hand before a sink delivered them (ErrGone) are
// skipped, loudly, and delivery goes on from the oldest one left.
func TestRunnerSkipsWhatIsGone(t *testing.T) {
	st, stateDir := storeWith(t, 100)
	st.Drop(41)
	sink := &collect{last: 100}
	r, err := sinks.NewRunner(sink, stateDir, sinks.Limits{Count: 30, Bytes: 1 << 20, Age: time.Millisecond}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background(), st); !errors.Is(err, sinks.ErrStopped) {
		t.Fatalf("Run: %v", err)
	}
	if want := []uint64{41, 71}; fmt.Sprint(sink.firsts) != fmt.Sprint(want) {
		t.Errorf("batches start at %v, want %v", sink.firsts, want)
	}
}

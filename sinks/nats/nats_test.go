package nats_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/sinks"
	natssink "github.com/tailseal/tailseal/sinks/nats"
	"github.com/tailseal/tailseal/sinks/nats/natstest"
	"github.com/tailseal/tailseal/sinks/sinkstest"
)

// line is a record like the agent's, seq n; tag tells two stores apart.
func line(n uint64, tag string) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"timestamp":"2026-02-04T20:30:45Z","event_type":"lead_ingested","actor":"","lead_id":"L-%d","workflow":"%s","details":{},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`,
		n, n, tag)
}

// storeOf holds records 1..n.
func storeOf(n uint64, tag string) *sinkstest.Store {
	st := sinkstest.NewStore()
	for i := uint64(1); i <= n; i++ {
		st.Append(line(i, tag))
	}
	return st
}

// logBuffer collects a logger's output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// agent is one sink with its runner, as `tailseal run` assembles them.
type agent struct {
	sink   *natssink.Sink
	runner *sinks.Runner
	logs   *logBuffer
	done   chan error
	cancel context.CancelFunc
}

func options(url, origin string) natssink.Options {
	return natssink.Options{Origin: origin, URLs: strings.Split(url, ","), Stream: "TAILSEAL", Replicas: 1,
		DuplicateWindow: 2 * time.Minute, Timeout: 5 * time.Second}
}

// run starts a sink over st, with its cursor in stateDir, until stop.
func run(t testing.TB, opt natssink.Options, st sinks.Store, stateDir string) *agent {
	t.Helper()
	a := &agent{logs: &logBuffer{}, done: make(chan error, 1)}
	opt.Log = slog.New(slog.NewJSONHandler(a.logs, nil))
	s, err := natssink.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sinks.NewRunner(s, stateDir, sinks.Limits{Count: natssink.MaxBatch, Bytes: 4 << 20, Age: 5 * time.Millisecond}, 1, opt.Log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.sink, a.runner, a.cancel = s, r, cancel
	go func() { a.done <- r.Run(ctx, st) }()
	t.Cleanup(func() { a.stop() })
	return a
}

// stop ends the runner and returns what Run returned.
func (a *agent) stop() error {
	a.cancel()
	err, ok := <-a.done
	if ok {
		close(a.done)
		a.sink.Close()
	}
	return err
}

// waitCursor waits until the runner has delivered up to seq.
func (a *agent) waitCursor(t *testing.T, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for a.runner.Keep() <= seq {
		select {
		case err := <-a.done:
			t.Fatalf("the sink ended at %d of %d: %v\n%s", a.runner.Keep()-1, seq, err, a.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink delivered up to %d, not %d, in 60s\n%s", a.runner.Keep()-1, seq, a.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkStream holds the stream to records 1..n of st, each once, in
// order, byte for byte, with their ids.
func checkStream(t *testing.T, nc *nats.Conn, origin string, st *sinkstest.Store, n uint64) {
	t.Helper()
	msgs := natstest.Messages(t, nc, "TAILSEAL", natssink.Subject(origin))
	if uint64(len(msgs)) != n {
		t.Errorf("the stream holds %d messages of %s, want %d", len(msgs), origin, n)
	}
	rd := st.Open(1)
	for i, m := range msgs {
		want, ok, err := rd.Next(st.Durable())
		if !ok || err != nil {
			t.Fatalf("message %d: the store has no record %d (%v)", i+1, i+1, err)
		}
		if !bytes.Equal(m.Data, want) {
			seq, _ := record.Seq(m.Data)
			t.Fatalf("message %d holds record %d (%.60s…), want record %d byte for byte", i+1, seq, m.Data, i+1)
		}
		if id := m.Header.Get("Nats-Msg-Id"); id != origin+":"+strconv.Itoa(i+1) {
			t.Fatalf("message %d: Nats-Msg-Id %q", i+1, id)
		}
	}
}

// Every record, published in atomic batches, arrives once, in order,
// byte for byte, with its id; records stored later follow.
func TestPublishesEveryRecord(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	st := storeOf(2500, "a")
	a := run(t, options(srv.URL(), "web-0.example"), st, t.TempDir())
	a.waitCursor(t, 2500)
	for i := uint64(2501); i <= 2600; i++ {
		st.Append(line(i, "a"))
	}
	a.waitCursor(t, 2600)
	checkStream(t, natstest.Connect(t, srv.URL()), "web-0.example", st, 2600)
	if got := natssink.Subject("web-0.example"); got != "tailseal.records.web-0%2Eexample" {
		t.Errorf("subject %q", got)
	}
	if b := a.runner.Stats.Batches.Load(); b < 3 {
		t.Errorf("%d batches for 2600 records: not batched by up to %d", b, natssink.MaxBatch)
	}
}

// What this sink relies on, checked against the server itself: an atomic
// batch whose first message expects another last subject sequence is
// refused whole (10071), as is one that repeats a message id inside the
// duplicate window (10201); a batch above 1000 messages is refused.
func TestAtomicBatchCarriesTheExpectation(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	opt := options(srv.URL(), "o")
	opt.DuplicateWindow = 300 * time.Millisecond
	if _, err := js.CreateStream(ctx, natssink.StreamConfig(opt)); err != nil {
		t.Fatal(err)
	}
	batch := func(from, n, expect uint64) error {
		msgs := make([]*nats.Msg, n)
		for i := range msgs {
			seq := from + uint64(i)
			msgs[i] = &nats.Msg{Subject: natssink.Subject("o"), Header: nats.Header{"Nats-Msg-Id": {natssink.MsgID("o", seq)}}, Data: line(seq, "a")}
		}
		msgs[0].Header.Set("Nats-Expected-Last-Subject-Sequence", strconv.FormatUint(expect, 10))
		_, err := jetstreamext.PublishMsgBatch(ctx, js, msgs)
		return err
	}
	code := func(err error) jetstream.ErrorCode {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			return apiErr.ErrorCode
		}
		return 0
	}
	if err := batch(1, 10, 0); err != nil {
		t.Fatal(err)
	}
	js.Publish(ctx, natssink.Subject("other"), []byte("x")) // stream seq 11
	if err := batch(11, 10, 9); code(err) != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Errorf("a wrong expectation: %v, want error 10071", err)
	}
	if err := batch(1, 10, 10); code(err) != jetstreamext.JSErrCodeBatchPublishDuplicateMsgID {
		t.Errorf("a batch sent again inside the duplicate window: %v, want error 10201", err)
	}
	time.Sleep(400 * time.Millisecond) // the window passes; only the expectation is left
	if err := batch(1, 10, 0); code(err) != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Errorf("a batch sent again after the duplicate window: %v, want error 10071", err)
	}
	if err := batch(11, 1001, 10); code(err) != jetstreamext.JSErrCodeBatchPublishExceedsLimit {
		t.Errorf("1001 messages: %v, want error 10199", err)
	}
	if err := batch(11, 1000, 10); err != nil {
		t.Errorf("1000 messages expecting the right last sequence: %v", err)
	}
	st, _ := js.Stream(ctx, "TAILSEAL")
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1011 {
		t.Errorf("the stream holds %d messages, want 1011: a refused batch left some", info.State.Msgs)
	}
}

// After a restart the sink resumes from the stream, not from its cursor:
// records acknowledged but not yet in the cursor, and a batch of ours
// whose answer was lost (published here by hand, after the duplicate
// window), are not sent again.
func TestResumesFromTheStream(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	opt := options(srv.URL(), "app-1")
	opt.DuplicateWindow = 200 * time.Millisecond
	st, stateDir := storeOf(300, "a"), t.TempDir()
	a := run(t, opt, st, stateDir)
	a.waitCursor(t, 300)
	a.stop()

	// The answer to 301..400 was lost: the stream has them, the sink does not know.
	js, _ := jetstream.New(nc)
	for i := uint64(301); i <= 400; i++ {
		st.Append(line(i, "a"))
		h := nats.Header{"Nats-Msg-Id": {natssink.MsgID("app-1", i)}}
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: natssink.Subject("app-1"), Header: h, Data: line(i, "a")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(401); i <= 500; i++ {
		st.Append(line(i, "a"))
	}
	time.Sleep(300 * time.Millisecond) // past the duplicate window: only the expectation is left
	b := run(t, opt, st, stateDir)
	b.waitCursor(t, 500)
	checkStream(t, nc, "app-1", st, 500)
	if !strings.Contains(b.logs.String(), `"receiver_last_seq":400`) {
		t.Errorf("the sink did not resume after 400:\n%s", b.logs)
	}
}

// A batch of ours whose answer was lost while the sink runs: the next one
// expects the old last message and is refused; the sink reads the stream
// again and goes on after what it holds.
func TestLostAnswerWhileRunning(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	st := storeOf(100, "a")
	a := run(t, options(srv.URL(), "app-2"), st, t.TempDir())
	a.waitCursor(t, 100)
	js, _ := jetstream.New(nc)
	for i := uint64(101); i <= 150; i++ { // stored and published as if by the sink, the answer lost
		h := nats.Header{"Nats-Msg-Id": {natssink.MsgID("app-2", i)}}
		if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: natssink.Subject("app-2"), Header: h, Data: line(i, "a")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := uint64(101); i <= 200; i++ {
		st.Append(line(i, "a"))
	}
	a.waitCursor(t, 200)
	checkStream(t, nc, "app-2", st, 200)
	if n := a.runner.Stats.Resumes.Load(); n < 1 {
		t.Errorf("%d resumes, want at least 1", n)
	}
}

// Two sinks over copies of one store (a stale agent beside its successor)
// publish at once: every record lands once, in order.
func TestConcurrentPublishersOfOneStore(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	st1, st2 := storeOf(0, "a"), storeOf(0, "a")
	a := run(t, options(srv.URL(), "twin"), st1, t.TempDir())
	b := run(t, options(srv.URL(), "twin"), st2, t.TempDir())
	for i := uint64(1); i <= 3000; i++ {
		st1.Append(line(i, "a"))
		st2.Append(line(i, "a"))
	}
	a.waitCursor(t, 3000)
	b.waitCursor(t, 3000)
	checkStream(t, nc, "twin", st1, 3000)
}

// A stream that holds more of this origin than the store, or other bytes
// under the same seq (another store with the same origin), stops the sink
// loudly; nothing is published over it.
func TestStopsOnAnotherStoreWithTheSameOrigin(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	first := storeOf(50, "first")
	a := run(t, options(srv.URL(), "dup"), first, t.TempDir())
	a.waitCursor(t, 50)
	a.stop()
	for _, c := range []struct {
		name string
		st   *sinkstest.Store
		log  string
	}{
		{"behind the stream", storeOf(20, "second"), "beyond this store's last one"},
		{"same seqs, other records", storeOf(80, "second"), "differs from this store's record"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := run(t, options(srv.URL(), "dup"), c.st, t.TempDir())
			if err := <-b.done; !errors.Is(err, sinks.ErrStopped) {
				t.Fatalf("Run: %v, want the sink stopped", err)
			}
			close(b.done)
			if !b.runner.Stats.Stopped.Load() || !strings.Contains(b.logs.String(), "NATS SINK STOPPED") || !strings.Contains(b.logs.String(), c.log) {
				t.Errorf("stopped %v; log:\n%s", b.runner.Stats.Stopped.Load(), b.logs)
			}
			checkStream(t, nc, "dup", first, 50)
		})
	}
}

// An existing stream with other settings stops the sink with what
// differs; it is left as it was.
func TestExistingStreamWithOtherSettings(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	other := jetstream.StreamConfig{Name: "TAILSEAL", Subjects: []string{"audit.>"}, Storage: jetstream.MemoryStorage}
	if _, err := js.CreateStream(ctx, other); err != nil {
		t.Fatal(err)
	}
	a := run(t, options(srv.URL(), "x"), storeOf(5, "a"), t.TempDir())
	if err := <-a.done; !errors.Is(err, sinks.ErrStopped) {
		t.Fatalf("Run: %v, want the sink stopped", err)
	}
	close(a.done)
	for _, want := range []string{`subjects [\"audit.>\"], want [\"tailseal.records.>\"]`, "storage Memory, want File", "atomic batch publish off", "TAILSEAL_NATS_STREAM"} {
		if !strings.Contains(a.logs.String(), want) {
			t.Errorf("the log does not say %s:\n%s", want, a.logs)
		}
	}
	st, _ := js.Stream(ctx, "TAILSEAL")
	if got := st.CachedInfo().Config; got.Subjects[0] != "audit.>" || got.Storage != jetstream.MemoryStorage || got.AllowAtomicPublish {
		t.Errorf("the stream was changed: %+v", got)
	}
}

// A stream that lost what it acknowledged (purged, or deleted and made
// again) is the truth: the records still stored are published again,
// though the cursor is past them, once the duplicate window no longer
// holds their ids.
func TestStreamBehindTheCursor(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	st, stateDir := storeOf(200, "a"), t.TempDir()
	opt := options(srv.URL(), "p")
	opt.DuplicateWindow = 200 * time.Millisecond
	a := run(t, opt, st, stateDir)
	a.waitCursor(t, 200)
	a.stop()
	js, _ := jetstream.New(nc)
	stream, _ := js.Stream(context.Background(), "TAILSEAL")
	if err := stream.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := run(t, opt, st, stateDir)
	b.waitCursor(t, 200)
	deadline := time.Now().Add(30 * time.Second)
	for len(natstest.Messages(t, nc, "TAILSEAL", natssink.Subject("p"))) < 200 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	checkStream(t, nc, "p", st, 200)
}

// A 3-node JetStream cluster with an R3 stream: the stream's leader is
// shut down while records are stored and published, and started again;
// nothing is lost and nothing comes twice.
func TestClusterLeaderRestart(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	urls := natstest.URLs(servers)
	nc := natstest.Connect(t, urls)
	opt := options(urls, "r3")
	opt.Replicas, opt.Timeout = 3, 2*time.Second // a lost answer is retried sooner
	st := sinkstest.NewStore()
	a := run(t, opt, st, t.TempDir())
	const n = 20000
	stored := make(chan struct{})
	go func() {
		defer close(stored)
		for i := uint64(1); i <= n; i++ {
			st.Append(line(i, "a"))
			if i%200 == 0 {
				time.Sleep(10 * time.Millisecond) // about 20,000 records a second
			}
		}
	}()
	a.waitCursor(t, 3000)
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(context.Background(), "TAILSEAL")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil || info.Config.Replicas != 3 || info.Cluster == nil {
		t.Fatalf("stream info %+v: %v", info, err)
	}
	var leader *natstest.Server
	for _, s := range servers {
		if s.Name() == info.Cluster.Leader {
			leader = s
		}
	}
	if leader == nil {
		t.Fatalf("no server is the stream's leader %q", info.Cluster.Leader)
	}
	at := a.runner.Keep() - 1
	leader.Stop()
	t.Logf("stopped the stream leader %s at seq %d", info.Cluster.Leader, at)
	a.waitCursor(t, at+2000)
	leader.Restart()
	<-stored
	a.waitCursor(t, n)
	checkStream(t, nc, "r3", st, n)
	t.Logf("retries %d network, %d server error; %d resumes", a.sink.Retries.Network.Load(), a.sink.Retries.ServerError.Load(), a.runner.Stats.Resumes.Load())
}

// A stream deleted while the sink runs is made again, and every record
// still stored goes into it.
func TestStreamDeletedWhileRunning(t *testing.T) {
	srv := natstest.Start(t, t.TempDir())
	nc := natstest.Connect(t, srv.URL())
	st := storeOf(100, "a")
	a := run(t, options(srv.URL(), "d"), st, t.TempDir())
	a.waitCursor(t, 100)
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(context.Background(), "TAILSEAL"); err != nil {
		t.Fatal(err)
	}
	for i := uint64(101); i <= 150; i++ {
		st.Append(line(i, "a"))
	}
	a.waitCursor(t, 150)
	checkStream(t, nc, "d", st, 150)
	if !strings.Contains(a.logs.String(), "created the JetStream stream") {
		t.Errorf("the stream was not made again:\n%s", a.logs)
	}
}

// Package collecttest runs a real NATS JetStream server in the test
// process and publishes stored lines to it the way the JetStream sink
// does (DESIGN.md, Fleet: one message per stored line, the body the line
// byte for byte, subject tailseal.records.<OriginToken(origin)>, header
// Nats-Msg-Id <origin>:<seq>), so that tests of tailseal collect do not
// depend on the sink.
package collecttest

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// Server is a JetStream server on a random loopback port.
type Server struct {
	*server.Server
	URL string
}

// StartServer starts a JetStream server with its store in a temporary
// directory; it stops when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(t.TempDir(), "js"),
		NoLog: true, NoSigs: true, DisableJetStreamBanner: true}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	return &Server{Server: s, URL: s.ClientURL()}
}

// Connect returns a JetStream client of the server, closed when the test
// ends.
func (s *Server) Connect(t testing.TB) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// CreateStream creates the stream the sink would: subjects
// tailseal.records.>, file storage.
func CreateStream(t testing.TB, js jetstream.JetStream, name string) jetstream.Stream {
	t.Helper()
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: []string{"tailseal.records.>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Subject is the subject of an origin's records.
func Subject(origin string) string { return "tailseal.records." + record.OriginToken(origin) }

// Publish publishes stored lines (without newlines) of an origin, in
// order, each acknowledged by the stream before the next batch goes.
func Publish(t testing.TB, js jetstream.JetStream, origin string, lines [][]byte) {
	t.Helper()
	const window = 256
	futures := make([]jetstream.PubAckFuture, 0, window)
	wait := func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publish: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("publish: no ack in 30s")
			}
		}
		futures = futures[:0]
	}
	for _, line := range lines {
		seq, ok := record.Seq(line)
		if !ok {
			seq = 0 // a test may publish a line that is not a record
		}
		m := nats.NewMsg(Subject(origin))
		m.Data = line
		m.Header.Set(jetstream.MsgIDHeader, origin+":"+strconv.FormatUint(seq, 10))
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		if futures = append(futures, f); len(futures) == window {
			wait()
		}
	}
	wait()
}

// StoreLines reads the stored lines of the store in dir (a data dir's
// store/), in seq order, each a copy.
func StoreLines(t testing.TB, dir string) [][]byte {
	t.Helper()
	var out [][]byte
	err := store.Scan(dir, func(_ store.Segment, _ int, line []byte) error {
		out = append(out, append([]byte(nil), line...))
		return nil
	})
	if err != nil {
		t.Fatalf("read store %s: %v", dir, err)
	}
	return out
}

// PublishAs publishes one line under the Nats-Msg-Id given, as a
// misbehaving publisher would.
func PublishAs(t testing.TB, js jetstream.JetStream, origin, msgID string, line []byte) {
	t.Helper()
	m := nats.NewMsg(Subject(origin))
	m.Data = line
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// Package natstest runs real NATS servers with JetStream inside a test's
// process (github.com/nats-io/nats-server/v2, embedded), alone or as a
// cluster, and reads streams back with the nats.go client, not with
// tailseal's own code. For tests only.
package natstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is one embedded server; Restart brings it back on the same port
// with the same store, as a restarted process would.
type Server struct {
	*server.Server
	t    testing.TB
	opts server.Options
}

// Start runs a JetStream server on a free loopback port, storing in dir,
// until the test ends.
func Start(t testing.TB, dir string) *Server {
	t.Helper()
	return StartWith(t, dir, nil)
}

// StartWith is Start with options changed by configure first
// (authorization, TLS).
func StartWith(t testing.TB, dir string, configure func(*server.Options)) *Server {
	t.Helper()
	opts := server.Options{Host: "127.0.0.1", Port: freePort(t), JetStream: true, StoreDir: dir, NoSigs: true}
	if configure != nil {
		configure(&opts)
	}
	return start(t, opts)
}

func start(t testing.TB, opts server.Options) *Server {
	t.Helper()
	o := opts // NewServer keeps and changes its options; Restart starts from these
	s, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server %s not ready", opts.ServerName)
	}
	srv := &Server{Server: s, t: t, opts: opts}
	t.Cleanup(func() { srv.Server.Shutdown(); srv.Server.WaitForShutdown() })
	return srv
}

// URL is the server's client URL (tls:// when it requires TLS).
func (s *Server) URL() string {
	scheme := "nats"
	if s.opts.TLSConfig != nil {
		scheme = "tls"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d", scheme, s.opts.Port)
}

// Stop shuts the server down and waits until it is gone.
func (s *Server) Stop() {
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
}

// Restart starts the server again after Stop, on the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	s.Server = start(s.t, s.opts).Server
}

// Cluster runs n JetStream servers routed to each other, each with its own
// store, and waits until JetStream has a meta leader.
func Cluster(t testing.TB, n int) []*Server {
	t.Helper()
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		ports[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i]))
	}
	servers := make([]*Server, n)
	for i := range servers {
		servers[i] = start(t, server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: freePort(t), NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "tailseal-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
	}
	nc := Connect(t, URLs(servers))
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster has no JetStream leader after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return servers
}

// URLs joins the servers' URLs with commas, as TAILSEAL_NATS_URL takes them.
func URLs(servers []*Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Connect is a client connection closed when the test ends.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Msg is a message as the stream holds it.
type Msg struct {
	StreamSeq uint64
	Header    nats.Header
	Data      []byte
}

// Messages reads every message on subject from the stream, in stream
// order, with an ordered consumer.
func Messages(t testing.TB, nc *nats.Conn, stream, subject string) []Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.State.Subjects[subject])
	var out []Msg
	if want == 0 {
		return out
	}
	// A cluster that just lost or regained a server can fail a fetch (no
	// responders while the consumer moves): start again after the last
	// message read, for a while.
	var c jetstream.Consumer
	for failures := 0; len(out) < want; {
		if c == nil {
			cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
			if len(out) > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, out[len(out)-1].StreamSeq+1
			}
			if c, err = st.OrderedConsumer(ctx, cfg); err != nil {
				t.Fatal(err)
			}
		}
		batch, err := c.Fetch(min(want-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err == nil {
			for m := range batch.Messages() {
				md, err := m.Metadata()
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, Msg{StreamSeq: md.Sequence.Stream, Header: m.Headers(), Data: m.Data()})
			}
			err = batch.Error()
		}
		if err != nil {
			if failures++; failures > 20 {
				t.Fatalf("fetch after %d of %d messages: %v", len(out), want, err)
			}
			c = nil
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

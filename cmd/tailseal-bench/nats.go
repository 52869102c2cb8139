package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// benchStream is the stream the +nats contender publishes into: deleted
// before each of its runs, since every run is a new store under the same
// origin (which the sink would rightly refuse to publish over).
const benchStream = "TAILSEAL_BENCH"

// natsTarget is the server of the +nats contender: one embedded in this
// process (on the same cores as the agent, as a server on the same
// machine would be) or an external one.
type natsTarget struct {
	url string
	srv *server.Server // when embedded
	nc  *nats.Conn
	js  jetstream.JetStream
}

// startNATS starts an embedded server ("embedded", storing under dir) or
// connects to the server at spec.
func startNATS(spec, dir string) (*natsTarget, error) {
	t := &natsTarget{url: spec}
	if spec == "embedded" {
		s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, NoSigs: true,
			StoreDir: filepath.Join(dir, "nats")})
		if err != nil {
			return nil, err
		}
		s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			return nil, errors.New("the embedded nats-server did not start")
		}
		t.url, t.srv = s.ClientURL(), s
	}
	nc, err := nats.Connect(t.url)
	if err != nil {
		t.close()
		return nil, fmt.Errorf("connect to NATS at %s: %w", t.url, err)
	}
	t.nc = nc
	t.js, err = jetstream.New(nc)
	return t, err
}

func (t *natsTarget) close() {
	if t.nc != nil {
		t.nc.Close()
	}
	if t.srv != nil {
		t.srv.Shutdown()
		t.srv.WaitForShutdown()
	}
}

// env is what the agent needs to publish to the target.
func (t *natsTarget) env() []string {
	return []string{"TAILSEAL_NATS_URL=" + t.url, "TAILSEAL_NATS_STREAM=" + benchStream, "TAILSEAL_ORIGIN=tailseal-bench"}
}

// reset deletes the bench stream, if there is one.
func (t *natsTarget) reset() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := t.js.DeleteStream(ctx, benchStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream %s: %w", benchStream, err)
	}
	return nil
}

// published is how many messages the bench stream holds.
func (t *natsTarget) published() uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := t.js.Stream(ctx, benchStream)
	if err != nil {
		return 0
	}
	return st.CachedInfo().State.Msgs
}

// waitPublished waits until the stream holds n messages, and says how
// long it took from start.
func (t *natsTarget) waitPublished(n uint64, start time.Time) (time.Duration, error) {
	deadline := time.Now().Add(10 * time.Minute)
	for t.published() < n {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the stream holds %d of %d records after 10 minutes", t.published(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), nil
}

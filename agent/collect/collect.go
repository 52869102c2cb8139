// Package collect owns `tailseal collect`, the central side of the fleet
// (DESIGN.md, Fleet): a durable JetStream pull consumer on
// tailseal.records.> whose messages, one stored line of an agent each, it
// appends verbatim to one store per origin in
// $TAILSEAL_DATA_DIR/origins/<record.OriginToken(origin)>/, in the agent's
// own layout (agent/store segments, index and retention, genesis.json,
// checkpoints.jsonl), so that `tailseal verify` checks a collected origin
// exactly as it checks the agent's data dir.
//
// On arrival it checks each origin's seq and prev continuity; a gap or a
// broken chain halts the origin (its store ends at the last record that
// chained, what follows goes to quarantine.jsonl), a fork is quarantined
// (origin.take has the rules). Messages are read in stream order (a
// consumer reset after a restart or a reordered delivery makes sure), and
// acknowledged, all at once (AckAll), only once their records are durable:
// batch, append, fsync, then ack, so that kill -9 loses nothing, and a
// redelivery is recognised by its bytes and skipped.
//
// Several collectors share a fleet by partition: collector k of n keeps the
// origins whose token hashes to k (Partition) in its own data dir, reading
// the whole stream through a consumer of its own; an origin is always
// collected by the same one, in one store.
//
// It imports agent/... and signer/... and the NATS client, no sinks/...
// or cmd/... (cmd/tailseal/imports_test.go).
package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/lock"
	"github.com/tailseal/tailseal/signer/record"
)

// Names in the stream and the data dir (DESIGN.md, Fleet).
const (
	SubjectPrefix  = "tailseal.records."
	SubjectFilter  = SubjectPrefix + ">"
	OriginsDir     = "origins"
	AssignmentFile = "collect.json" // the partition this data dir holds
)

// ErrAssignment means the data dir holds another partition of the fleet
// than the configuration names (its origins would be split over two
// dirs), or is an agent's.
var ErrAssignment = errors.New("the data dir holds another partition of the origins")

// Options configure a Collector.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// LagInterval is how often consumer info and each origin's last
	// message are asked for the lag metrics (default 15s).
	LagInterval time.Duration
	// Now is the clock of quarantine entries (default time.Now).
	Now func() time.Time
}

// Collector is one running `tailseal collect`.
type Collector struct {
	opt  Options
	cfg  *config.Config
	log  *slog.Logger
	m    *metrics
	lock *lock.Lock

	mu      sync.Mutex         // origins is read by the lag watcher
	origins map[string]*origin // by token
	top     *quarantine        // messages whose subject names no origin

	consumer         string
	lastStream       uint64 // stream seq of the last message handled
	resetUnsupported bool   // said once
	ready            atomic.Bool
	msgs             []jetstream.Msg
}

// New locks the data dir (one collector per data dir, and not an agent's)
// and checks that it holds the configured partition.
func New(opt Options) (*Collector, error) {
	cfg := opt.Config
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.LagInterval <= 0 {
		opt.LagInterval = 15 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, agent.StoreDir)); err == nil {
		return nil, fmt.Errorf("%w: %s holds an agent's store; give the collector a data dir of its own", ErrAssignment, cfg.DataDir)
	}
	l, err := lock.Acquire(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	c := &Collector{opt: opt, cfg: cfg, log: opt.Logger, m: newMetrics(), lock: l, origins: map[string]*origin{}, consumer: ConsumerName(cfg)}
	if err := c.checkAssignment(); err != nil {
		l.Release()
		return nil, err
	}
	if c.top, err = openQuarantine(filepath.Join(cfg.DataDir, "quarantine.jsonl")); err != nil {
		l.Release()
		return nil, err
	}
	return c, nil
}

// ConsumerName is the durable consumer of this collector:
// TAILSEAL_COLLECT_CONSUMER, with "-<k>-of-<n>" when the fleet is split
// over n collectors, so that each has its own.
func ConsumerName(cfg *config.Config) string {
	if cfg.CollectPartitions <= 1 {
		return cfg.CollectConsumer
	}
	return fmt.Sprintf("%s-%d-of-%d", cfg.CollectConsumer, cfg.CollectPartition, cfg.CollectPartitions)
}

// Partition is the partition, 0 to n-1, of an origin's token: FNV-1a of
// the token modulo n.
func Partition(tok string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(tok))
	return int(h.Sum32() % uint32(n))
}

type assignment struct {
	Partition  int `json:"partition"`
	Partitions int `json:"partitions"`
}

// checkAssignment records the partition in a new data dir and refuses
// another one in a used dir.
func (c *Collector) checkAssignment() error {
	path := filepath.Join(c.cfg.DataDir, AssignmentFile)
	want := assignment{Partition: c.cfg.CollectPartition, Partitions: max(c.cfg.CollectPartitions, 1)}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b, _ := json.Marshal(want)
		return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", AssignmentFile, err)
	}
	var have assignment
	if err := json.Unmarshal(b, &have); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if have != want {
		return fmt.Errorf("%w: %s holds partition %d of %d, and TAILSEAL_COLLECT_PARTITION/_PARTITIONS say %d of %d. "+
			"Another split moves origins between collectors, whose stores would then start in the middle: keep the old values, "+
			"or give the new split new data dirs", ErrAssignment, c.cfg.DataDir, have.Partition, have.Partitions, want.Partition, want.Partitions)
	}
	return nil
}

// Collectors returns the collector's metrics, to be registered once.
func (c *Collector) Collectors() []prometheus.Collector { return c.m.collectors() }

// Ready reports whether the collector is consuming.
func (c *Collector) Ready() bool { return c.ready.Load() }

// Run consumes until ctx is done, then makes what it appended durable and
// returns nil. Errors on the way (NATS down, a full disk) are logged and
// retried with backoff: a retry starts again from the first message not
// acknowledged, with every origin reopened from its store.
func (c *Collector) Run(ctx context.Context) error {
	defer c.close()
	nc, err := connect(c.cfg, c.log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	backoff := time.Second
	waiting := false
	for {
		progressed, err := c.session(ctx, js)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			backoff = time.Second
		}
		switch {
		case errors.Is(err, errReorder):
			backoff = reorderPause // a server without consumer reset redelivers after the ack wait
		case errors.Is(err, jetstream.ErrStreamNotFound):
			if !waiting {
				c.log.Warn("waiting for the stream: no agent has created it yet (the JetStream sink does), or TAILSEAL_NATS_STREAM names another", "stream", c.cfg.NATSStream)
			}
			waiting = true
		default:
			waiting = false
			c.log.Error("collect: consuming failed; starting again from the first message not acknowledged", "error", err, "retry_in", backoff)
			if cerr := c.closeOrigins(); cerr != nil {
				c.log.Error("collect: closing the origins' stores", "error", cerr)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		if errors.Is(err, errReorder) {
			backoff = time.Second
		} else if !waiting {
			backoff = min(2*backoff, 30*time.Second)
		}
	}
}

// handle routes one message to its origin.
func (c *Collector) handle(m jetstream.Msg, sseq uint64, now time.Time, touched map[*origin]bool) error {
	subject := m.Subject()
	in := msg{line: m.Data(), streamSeq: sseq, subject: subject}
	if h := m.Headers(); h != nil {
		in.msgID = h.Get(jetstream.MsgIDHeader)
	}
	tok, ok := strings.CutPrefix(subject, SubjectPrefix)
	name, err := record.ParseOriginToken(tok)
	if err == nil {
		err = config.CheckOrigin(name)
	}
	if err == nil && len(tok) > maxTokenBytes {
		err = fmt.Errorf("the origin token has %d bytes, more than a directory name may", len(tok))
	}
	if !ok || err != nil {
		c.m.findings.WithLabelValues("", FindingSubject).Inc()
		c.log.Error("COLLECT: a message whose subject names no origin; kept in quarantine.jsonl of the data dir", "subject", subject, "stream_seq", sseq)
		_, err := c.top.add(in, now, FindingSubject, "the subject is not "+SubjectPrefix+"<origin token>", false)
		return err
	}
	if Partition(tok, c.cfg.CollectPartitions) != c.cfg.CollectPartition {
		c.m.otherPartition.Inc()
		return nil
	}
	o, err := c.origin(name, tok)
	if err != nil {
		return err
	}
	touched[o] = true
	return o.take(in, now)
}

// maxTokenBytes is the longest directory name (NAME_MAX on Linux): an
// origin of 255 bytes can make a token of up to three times that.
const maxTokenBytes = 255

// origin returns the open store of an origin, opening it on its first
// message.
func (c *Collector) origin(name, tok string) (*origin, error) {
	c.mu.Lock()
	o := c.origins[tok]
	c.mu.Unlock()
	if o != nil {
		return o, nil
	}
	o, err := openOrigin(c.cfg.DataDir, name, tok, c.cfg.Retention(), c.log, c.m)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.origins[tok] = o
	c.mu.Unlock()
	return o, nil
}

// closeOrigins closes every origin's store; they reopen from disk.
func (c *Collector) closeOrigins() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for tok, o := range c.origins {
		err = errors.Join(err, o.close())
		delete(c.origins, tok)
	}
	return err
}

func (c *Collector) close() {
	if err := c.closeOrigins(); err != nil {
		c.log.Error("collect: closing the origins' stores", "error", err)
	}
	c.top.close()
	c.lock.Release()
}

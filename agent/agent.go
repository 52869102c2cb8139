// Package agent owns the ingest pipeline of `tailseal run`: it recovers the
// store, resumes the tailer right after the last stored line, and turns each
// source line into a signed record that is durable before it is counted.
package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/parse"
	"github.com/tailseal/tailseal/agent/record"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/agent/tailer"
	"github.com/tailseal/tailseal/signer"
)

// Layout of the data directory (fixed by DESIGN.md).
const (
	StoreDir = "store"
	KeysDir  = "keys"
	StateDir = "state"
	HMACKey  = "hmac.key"
)

// Agent is one running ingest pipeline.
type Agent struct {
	cfg    *config.Config
	log    *slog.Logger
	store  *store.Store
	tail   *tailer.Tailer
	chain  *signer.Chain
	now    func() time.Time
	buf    []byte
	Stats  Stats
	ready  atomic.Bool
	closed bool
}

// Stats are the agent's counters, exported as metrics.
type Stats struct {
	Stored, Malformed, AppendErrors atomic.Uint64
}

// New recovers the store and prepares the pipeline; Run starts it.
func New(cfg *config.Config, log *slog.Logger) (*Agent, error) {
	key, err := loadKey(cfg, log)
	if err != nil {
		return nil, err
	}
	// Creating the source directory lets the tailer watch it at once; if that
	// is not allowed the tailer polls until the application creates it.
	if err := os.MkdirAll(filepath.Dir(cfg.Source), 0o755); err != nil {
		log.Debug("cannot create the source directory", "error", err)
	}
	for _, d := range []string{StateDir, KeysDir} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	st, last, err := store.Open(store.Options{
		Dir:           filepath.Join(cfg.DataDir, StoreDir),
		SegmentMax:    cfg.SegmentMaxBytes(),
		SegmentMaxAge: cfg.SegmentMaxAge,
		Retention:     cfg.Retention(),
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	a := &Agent{cfg: cfg, log: log, store: st, now: time.Now}
	var pos tailer.Position
	var lastSeq uint64
	var prev [sha256.Size]byte
	if last != nil {
		m, err := record.ParseMeta(last.Line)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("read last record: %w", err)
		}
		lastSeq, prev = m.Seq, signer.LineHash(last.Line)
		if m.Source != nil {
			pos = tailer.Position{ID: m.Source.ID, Offset: m.Source.End()}
		}
		log.Info("resuming", "seq", lastSeq, "source_id", pos.ID, "source_offset", pos.Offset)
	}
	a.chain = signer.NewChain(signer.NewStaticKey(key), lastSeq, prev)
	a.tail = tailer.New(tailer.Options{
		Path:         cfg.Source,
		MaxLine:      cfg.MaxLineBytes,
		PollInterval: cfg.PollInterval,
		Start:        pos,
		Logger:       log,
	})
	return a, nil
}

// loadKey returns the configured signing key, or the generated one.
func loadKey(cfg *config.Config, log *slog.Logger) ([]byte, error) {
	if cfg.HMACKey != "" {
		key, err := signer.ParseHexKey(cfg.HMACKey)
		if err != nil {
			return nil, fmt.Errorf("%w: TAILSEAL_HMAC_KEY: %v", config.ErrInvalid, err)
		}
		return key, nil
	}
	path := filepath.Join(cfg.DataDir, KeysDir, HMACKey)
	key, created, err := signer.LoadOrCreateKey(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("generated a signing key on first start; production should provide one (TAILSEAL_HMAC_KEY or TAILSEAL_HMAC_KEY_FILE) and keep a copy off this host",
			"path", path)
	}
	return key, nil
}

// Store is the agent's store (for readers such as sinks and tests).
func (a *Agent) Store() *store.Store { return a.store }

// Tailer exposes the tailer's counters.
func (a *Agent) Tailer() *tailer.Tailer { return a.tail }

// Ready reports whether recovery is over and the source is being watched.
func (a *Agent) Ready() bool { return a.ready.Load() }

// Run ingests until ctx is done, then stores everything already read,
// fsyncs and returns nil. It returns an error only when it cannot go on.
func (a *Agent) Run(ctx context.Context) error {
	tctx, stopTail := context.WithCancel(context.Background())
	defer stopTail()
	tailErr := make(chan error, 1)
	go func() { tailErr <- a.tail.Run(tctx) }()
	go func() { <-ctx.Done(); stopTail() }()
	a.ready.Store(true)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var err error
	for err == nil {
		select {
		case b, ok := <-a.tail.Batches():
			if !ok {
				return errors.Join(<-tailErr, a.close())
			}
			err = a.ingest(ctx, b)
			a.tail.Release(b)
			// Group commit: fsync when caught up, or at least every interval
			// while batches keep coming.
			if len(a.tail.Batches()) == 0 {
				timer.Stop()
				err = errors.Join(err, a.commit(ctx))
			} else {
				timer.Reset(a.cfg.CommitInterval)
			}
		case <-timer.C:
			err = a.commit(ctx)
		}
	}
	stopTail()
	for b := range a.tail.Batches() {
		a.tail.Release(b)
	}
	<-tailErr
	return errors.Join(err, a.close())
}

// ingest turns one batch into signed records and appends them. A store
// error (disk full) pauses ingestion and retries the same batch, so nothing
// read is lost.
func (a *Agent) ingest(ctx context.Context, b *tailer.Batch) error {
	first := a.chain.Seq() + 1
	buf := a.buf[:0]
	malformed := 0
	now := a.now()
	for i := range b.Lines {
		l := &b.Lines[i]
		buf = a.chain.Begin(buf)
		var kind parse.Kind
		buf, kind = parse.Append(buf, parse.Line{Data: l.Data, Length: dataLength(l), Truncated: l.Truncated}, now)
		if kind == parse.Malformed {
			malformed++
		}
		buf = record.AppendSource(buf, l.File, l.ID, l.Offset, l.Length)
		buf = a.chain.Finish(buf)
	}
	a.buf = buf
	return a.retry(ctx, "append", func() error { return a.store.Append(buf, first, a.chain.Seq()) }, func() {
		a.Stats.Malformed.Add(uint64(malformed))
	})
}

// dataLength is the length of the line's text, without the newline.
func dataLength(l *tailer.Line) int64 {
	if l.Truncated || int64(len(l.Data)) < l.Length {
		return l.Length - 1
	}
	return l.Length
}

func (a *Agent) commit(ctx context.Context) error {
	before := a.store.Durable()
	return a.retry(ctx, "fsync", a.store.Commit, func() {
		a.Stats.Stored.Add(a.store.Durable() - before)
	})
}

// retry runs op until it succeeds, backing off on errors such as a full
// disk. It gives up only when ctx is done.
func (a *Agent) retry(ctx context.Context, what string, op func() error, done func()) error {
	backoff := 100 * time.Millisecond
	for {
		err := op()
		if err == nil {
			done()
			return nil
		}
		a.Stats.AppendErrors.Add(1)
		a.log.Error("store: "+what+" failed; ingestion paused, will retry", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("store %s: %w", what, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (a *Agent) close() error {
	if a.closed {
		return nil
	}
	a.closed = true
	err := a.store.Close()
	a.log.Info("stopped", "durable_seq", a.store.Durable())
	return err
}

// Package agent owns the ingest pipeline of `tailseal run`: it recovers the
// store, resumes the tailer right after the last stored line, and turns each
// source line into a signed record that is durable before it is counted.
//
// The agent produces; it knows nothing of who consumes. agent/... imports
// signer/... and agent/..., never sinks/... or cmd/...: cmd/tailseal builds
// the sinks (when New calls the build function of WithReaders), runs them
// beside the agent on its Store, and tells it what retention must keep
// for them (cmd/tailseal/imports_test.go keeps the rule true).
package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/lock"
	"github.com/tailseal/tailseal/agent/parse"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/agent/tailer"
	"github.com/tailseal/tailseal/agent/witness"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/pii"
	"github.com/tailseal/tailseal/signer/record"
)

// Agent is one running ingest pipeline.
type Agent struct {
	cfg   *config.Config
	log   *slog.Logger
	store *store.Store
	tail  *tailer.Tailer
	chain *signer.Chain
	clk   clock.Clock
	buf   []byte
	keys  *keys
	pii   *pii.Anonymizer
	sets  chan *bodySet // free body sets; see build
	Stats Stats
	// OnDurable, if set before Run, is called after every group commit with
	// how many source lines this run has made durable (benchmarks measure
	// write-to-fsync latency with it). It runs on the ingest goroutine, or
	// on the store's fsync goroutine for a commit that overlaps ingestion.
	OnDurable    func(lines uint64)
	appended     uint64        // source lines appended by this run
	durableSeen  atomic.Uint64 // the store's durable seq Stats.Stored counted up to
	groupCommits atomic.Uint64 // group commits started (for tests)
	fsync        prometheus.Histogram
	types        *eventTypes // tailseal_events_by_type_total
	// The readers of the store (see WithReaders).
	buildReaders func(origin string) error
	keep         func() uint64

	origin  string                  // of the store (see resolveOrigin)
	genesis atomic.Pointer[Genesis] // nil until a new store has one, and for an old store
	version string                  // written into a new store's genesis

	lastSrc        position // end of the last ingested line, for internal records
	lastCheckpoint uint64   // seq covered by (or of) the last checkpoint
	activeSeg      string
	closed         bool
	lock           *lock.Lock      // of the data dir, held from New to Close
	requests       chan recordReq  // records the store's background work asks for
	witness        *witness.Client // nil without TAILSEAL_WITNESS_URLS
	paused         atomic.Bool     // a store write fails and is being retried
	unsealed       uint64          // epochs the key must evolve by before Run signs (see unfinishedSeal)
	unwritten      []byte          // a checkpoints.jsonl line Run writes first (see unwrittenCheckpoint)
	// early holds the index records asked for before the ingest loop
	// ran (compressions left by a crash, redone as the store opens), for
	// the loop to write first; nil once it runs.
	early struct {
		sync.Mutex
		running bool // the ingest loop serves requests
		index   []recordReq
	}
}

// Stats are the agent's counters, exported as metrics.
type Stats struct {
	Stored, Malformed, AppendErrors, Seals, Checkpoints atomic.Uint64
}

// Option changes how New builds an Agent.
type Option func(*Agent)

// WithReaders tells the agent about the readers of its store (the sinks).
// New calls build, with the store's origin, once its own checks are done
// and the data directory is ready, just before the store opens: the
// readers are made there, so that
// retention, which starts with the store, already keeps what they need;
// an error from build stops New. keep returns the lowest seq the readers
// still need, which retention keeps; it is called from the store's
// background goroutine.
func WithReaders(build func(origin string) error, keep func() uint64) Option {
	return func(a *Agent) { a.buildReaders, a.keep = build, keep }
}

// WithVersion is the agent's version, which a new store's genesis record
// names (default "dev").
func WithVersion(v string) Option {
	return func(a *Agent) { a.version = v }
}

// WithClock makes the agent read the time and wait on c (default
// clock.Real): the group-commit, checkpoint, epoch and retry timers, the
// timestamps it writes, the epoch of a first start and segment age.
func WithClock(c clock.Clock) Option {
	return func(a *Agent) { a.clk = clock.Or(c) }
}

// Check makes the checks of the source and the data dir that New makes
// before it writes anything, and writes nothing: `tailseal config` tells
// what would stop the agent.
func Check(cfg *config.Config) []error {
	var errs []error
	if err := checkSource(cfg); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := resolveOrigin(cfg); err != nil {
		errs = append(errs, err)
	}
	return errs
}

func checkSource(cfg *config.Config) error {
	if err := tailer.CheckSource(cfg.Source); err != nil {
		return fmt.Errorf("%w: TAILSEAL_SOURCE: %w; tailseal reads a regular file that the application appends to "+
			"(it resumes at a byte offset after a restart, which a pipe cannot give back)", config.ErrInvalid, err)
	}
	return nil
}

// New recovers the store and prepares the pipeline; Run starts it.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Agent, error) {
	if err := checkSource(cfg); err != nil {
		return nil, err
	}
	// One agent per data dir, before anything in it is read or written: a
	// second one would generate keys over the first one's and store every
	// line twice.
	l, err := lock.Acquire(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	first, _ := newDataDir(cfg.DataDir)
	a, err := open(cfg, log, opts...)
	if (errors.Is(err, ErrStoreLost) || errors.Is(err, ErrKeysLost)) && cfg.NewStore {
		moved, merr := moveLostStore(cfg.DataDir, time.Now()) // the files' names, not a record: real time
		log.Warn("TAILSEAL_NEW_STORE is set and the store lost records: its files are moved aside and a new store starts at seq 1",
			"lost", err.Error(), "moved", moved)
		if err = merr; err == nil {
			a, err = open(cfg, log, opts...)
		}
	}
	if err != nil {
		if first {
			undoFirstStart(cfg.DataDir, log)
		}
		l.Release()
		return nil, err
	}
	a.lock = l
	return a, nil
}

// open recovers the store of a locked data dir and prepares the pipeline.
func open(cfg *config.Config, log *slog.Logger, opts ...Option) (*Agent, error) {
	a := &Agent{cfg: cfg, log: log, clk: clock.Real, requests: make(chan recordReq), version: "dev"}
	for _, o := range opts {
		o(a)
	}
	for _, d := range []string{StateDir, KeysDir} {
		if err := privateDir(filepath.Join(cfg.DataDir, d), log); err != nil {
			return nil, err
		}
	}
	origin, genesis, err := resolveOrigin(cfg)
	if err != nil {
		return nil, err
	}
	if genesis != nil && genesis.FirstUnreadable != nil {
		log.Warn("the store's first segment cannot be read: its origin and key come from "+GenesisFile+"; run tailseal verify",
			"error", genesis.FirstUnreadable)
	}
	a.origin = origin
	a.genesis.Store(genesis)
	if err := keepGenesisCopy(cfg.DataDir, genesis); err != nil {
		return nil, err
	}
	keys, err := loadKeys(cfg, log)
	if err != nil {
		return nil, err
	}
	a.keys = keys
	// Creating the source directory lets the tailer watch it at once; if that
	// is not allowed the tailer polls until the application creates it.
	if err := os.MkdirAll(filepath.Dir(cfg.Source), 0o755); err != nil {
		log.Debug("cannot create the source directory", "error", err)
	}
	if err := a.setupPII(); err != nil {
		return nil, err
	}
	a.fsync = newFsyncHistogram()
	a.types = newEventTypes(cfg.EventTypeLabels(), config.DefaultMetricTypes)
	if a.buildReaders != nil {
		if err := a.buildReaders(origin); err != nil {
			return nil, err
		}
	}
	st, last, err := store.Open(store.Options{
		Dir:           filepath.Join(cfg.DataDir, StoreDir),
		SegmentMax:    cfg.SegmentMaxBytes(),
		SegmentMaxAge: cfg.SegmentMaxAge,
		Retention:     cfg.Retention(),
		Compression:   store.Compression(cfg.StoreCompression()),
		Keep:          a.keep,
		OnSync:        func(d time.Duration) { a.fsync.Observe(d.Seconds()) },
		BeforeDelete:  a.beforeRetention,
		OnIndexed:     a.onIndexed,
		Logger:        log,
		Now:           a.clk.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	a.store = st
	a.durableSeen.Store(st.Durable())
	pos, lastSeq, prev, err := a.resume(last)
	if err == nil {
		err = checkNotLost(cfg.DataDir, lastSeq)
	}
	if err == nil {
		err = a.keyFor(lastSeq)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	a.chain = signer.NewChain(keys.sign, lastSeq, prev)
	a.lastCheckpoint = lastSeq
	if err := a.setupWitnesses(); err != nil {
		st.Close()
		return nil, err
	}
	seen, err := store.RecentSources(filepath.Join(cfg.DataDir, StoreDir), 256)
	if err != nil {
		log.Warn("cannot list the source files already read; a copytruncate copy made before this start may be read again", "error", err)
	}
	a.tail = tailer.New(tailer.Options{
		Path:         cfg.Source,
		MaxLine:      cfg.MaxLineBytes,
		PollInterval: cfg.PollInterval,
		Start:        pos,
		Seen:         seen,
		Logger:       log,
	})
	return a, nil
}

// privateDir makes dir, which holds keys or key state, and leaves it
// readable by its owner only: a directory that exists with wider
// permissions (made by hand, restored from a backup) is tightened to 0700,
// with a warning, rather than used as it is.
func privateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%s is open to others (%#o) and cannot be made private: %w", dir, perm, err)
		}
		log.Warn("a key directory was open to other users: made private (0700)", "dir", dir, "was", fmt.Sprintf("%#o", perm))
	}
	return nil
}

// resume takes up from the last durable record: where the chain and the
// source stand, and an epoch change a crash cut short.
func (a *Agent) resume(last *store.Last) (pos tailer.Position, lastSeq uint64, prev [sha256.Size]byte, err error) {
	if last == nil {
		return pos, 0, prev, nil
	}
	m, err := record.ParseMeta(last.Line)
	if err != nil {
		return pos, 0, prev, fmt.Errorf("read last record: %w", err)
	}
	lastSeq, prev = m.Seq, signer.LineHash(last.Line)
	if m.Source != nil {
		pos = tailer.Position{ID: m.Source.ID, Offset: m.Source.End()}
		file, _ := json.Marshal(m.Source.File)
		a.lastSrc = position{file: string(file), id: m.Source.ID, end: m.Source.End()}
	}
	a.log.Info("resuming", "seq", lastSeq, "source_id", pos.ID, "source_offset", pos.Offset)
	a.unsealed, err = a.keys.unfinishedSeal(m)
	a.unwritten = a.unwrittenCheckpoint(m)
	return pos, lastSeq, prev, err
}

func (a *Agent) setupPII() error {
	mode := a.cfg.PII()
	var key []byte
	if mode == pii.Hash {
		var err error
		if key, err = loadPIIKey(a.cfg, a.log); err != nil {
			return err
		}
	}
	a.pii = pii.New(pii.Options{Mode: mode, Key: key, Always: a.cfg.PIIFields, Never: a.cfg.PIIKeepFields, PhoneRegions: a.cfg.PhoneRegions()})
	a.sets = make(chan *bodySet, bodySets)
	for range bodySets {
		a.sets <- &bodySet{{pii: a.pii.Fork()}, {pii: a.pii.Fork()}}
	}
	return nil
}

// Origin is the store's origin.
func (a *Agent) Origin() string { return a.origin }

// Store is the agent's store, for its readers (sinks, tests): they may
// use Durable and Changed; Append and Commit are the agent's.
func (a *Agent) Store() *store.Store { return a.store }

// Tailer exposes the tailer's counters.
func (a *Agent) Tailer() *tailer.Tailer { return a.tail }

// Healthy reports whether the agent stores what it reads now: false while
// ingestion is paused on a store that cannot write (a full disk), and
// while the data dir has lost its keys or state (deleted under it).
func (a *Agent) Healthy() bool {
	if a.paused.Load() {
		return false
	}
	for _, d := range []string{KeysDir, StateDir} {
		if _, err := os.Stat(filepath.Join(a.cfg.DataDir, d)); err != nil {
			return false
		}
	}
	return true
}

// Ready is closed when recovery is over: the store is open and repaired,
// the pipeline runs, and the tailer has caught up with where the previous
// run stopped (including a file rotated while it was down).
func (a *Agent) Ready() <-chan struct{} { return a.tail.Resumed() }

// Run ingests until ctx is done, then stores every complete line the
// application wrote before (the tailer reads on to the end of the source,
// see tailer.Stop), signs a checkpoint and the stop record, fsyncs,
// closes the store and returns nil. It returns an error only when it
// cannot go on. The data directory stays locked until Close, so that the
// store's readers can deliver what it holds first.
func (a *Agent) Run(ctx context.Context) error {
	// The tailer's own context ends only when ingestion cannot go on; a
	// stop asks it to read to the end first.
	tctx, stopTail := context.WithCancel(context.Background())
	defer stopTail()
	tailErr := make(chan error, 1)
	go func() { tailErr <- a.tail.Run(tctx) }()
	go func() {
		select {
		case <-ctx.Done():
			a.tail.Stop()
		case <-tctx.Done():
		}
	}()
	ready := make(chan built, 1)
	go a.build(ready)

	commitTimer := a.clk.NewTimer(time.Hour)
	commitTimer.Stop()
	defer commitTimer.Stop()
	commitArmed := false
	checkpoints := a.clk.NewTicker(a.cfg.CheckpointInterval)
	defer checkpoints.Stop()
	attest := a.startServing()
	if a.witness != nil {
		// Witnesses are asked in the background, and stopped once the
		// store is closed: a last checkpoint waits for the next start.
		wctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { a.witness.Run(wctx); close(done) }()
		defer func() { cancel(); <-done }()
	}
	var err error
	if a.unwritten != nil {
		err = a.retry(ctx, CheckpointsFile+" append", func() error {
			return atomicfile.Append(filepath.Join(a.cfg.DataDir, CheckpointsFile), a.unwritten, 0o644)
		}, func() { a.unwritten = nil })
	}
	if err == nil && a.unsealed > 0 {
		err = a.retry(ctx, "epoch key state write", func() error { return a.keys.epoch.Advance(a.unsealed) }, func() { a.unsealed = 0 })
	}
	if err == nil && a.chain.Seq() == 0 {
		err = a.writeGenesis(ctx)
	}
	if err == nil {
		err = a.seal(ctx) // epochs that ended while the agent was down
	}
	for _, req := range attest {
		if err == nil {
			err = a.appendInternal(ctx, req.eventType, req.details)
		}
	}
	a.store.ApplyRetention()
	epochEnd := a.epochTimer()
	defer func() { epochEnd.Stop() }()
	for err == nil {
		select {
		case b, ok := <-ready:
			if !ok {
				err = errors.Join(<-tailErr, a.checkpoint(ctx))
				if err == nil {
					err = a.cleanStop(ctx)
				}
				return errors.Join(err, a.close())
			}
			err = a.ingest(ctx, b)
			a.done(b)
			// Group commit: fsync when caught up, or at least every interval
			// while batches keep coming (the timer is armed by the first
			// batch not yet durable, not pushed back by the next ones).
			if len(ready) == 0 && len(a.tail.Batches()) == 0 {
				commitTimer.Stop()
				commitArmed = false
				err = errors.Join(err, a.commitAsync(ctx))
			} else if !commitArmed {
				commitTimer.Reset(a.cfg.CommitInterval)
				commitArmed = true
			}
			if err == nil && (a.chain.Seq()-a.lastCheckpoint >= uint64(a.cfg.CheckpointEvery) || a.rotated()) {
				err = a.checkpoint(ctx)
			}
		case <-commitTimer.C():
			commitArmed = false
			err = a.commitAsync(ctx)
		case <-a.store.SyncDone():
			// The group commit's fsync ended: what came meanwhile goes
			// into the next one, started now.
			err = a.commitAsync(ctx)
		case <-checkpoints.C():
			err = a.checkpoint(ctx)
		case <-epochEnd.C():
			err = a.seal(ctx)
			epochEnd = a.epochTimer()
		case req := <-a.requests:
			req.done <- a.appendInternal(ctx, req.eventType, req.details)
		}
	}
	stopTail()
	for b := range ready {
		a.done(b)
	}
	<-tailErr
	return errors.Join(err, a.close())
}

// epochTimer fires when the current epoch ends; never with a static key.
func (a *Agent) epochTimer() clock.Timer {
	d := time.Duration(math.MaxInt64)
	if a.keys.epoch != nil {
		d = clock.Until(a.clk, a.keys.epoch.EndsAt())
	}
	return a.clk.NewTimer(d)
}

// built is a batch of lines turned into event bodies, ready to sign.
type built struct {
	batch *tailer.Batch
	set   *bodySet
	split int // set[0] holds lines[:split], set[1] the rest
}

// bodySet builds the two halves of a batch.
type bodySet [2]bodyBuilder

// bodySets is how many batches can be built at once: one being signed,
// one being built meanwhile.
const bodySets = 2

// build parses and anonymizes the tailer's batches, ahead of signing: the
// next batch is built (on both cores for a big batch) while this one is
// signed and written. It closes ready when the tailer stops.
func (a *Agent) build(ready chan<- built) {
	defer close(ready)
	for b := range a.tail.Batches() {
		set := <-a.sets
		now := a.clk.Now()
		lines := b.Lines
		split := len(lines)
		if len(lines) >= parallelLines {
			split = len(lines) / 2
		}
		var wg sync.WaitGroup
		if split < len(lines) {
			wg.Go(func() { set[1].build(lines[split:], now) })
		}
		set[0].build(lines[:split], now)
		wg.Wait()
		ready <- built{batch: b, set: set, split: split}
	}
}

// done gives a signed (or dropped) batch's buffers back.
func (a *Agent) done(b built) {
	a.tail.Release(b.batch)
	a.sets <- b.set
}

// ingest turns one batch into signed records and appends them. A store
// error (disk full) pauses ingestion and retries the same batch, so nothing
// read is lost.
func (a *Agent) ingest(ctx context.Context, b built) error {
	first := a.chain.Seq() + 1
	lines := b.batch.Lines
	split := b.split
	buf := a.buf[:0]
	malformed := 0
	var types [2]map[string]*uint64
	for k, part := range [2][]tailer.Line{lines[:split], lines[split:]} {
		if len(part) == 0 {
			continue // set[k] holds an older batch
		}
		w := &b.set[k]
		malformed += w.malformed
		types[k] = w.types
		start := 0
		for i := range part {
			l := &part[i]
			buf = a.chain.Begin(buf)
			buf = append(buf, w.buf[start:w.ends[i]]...)
			start = w.ends[i]
			buf = record.AppendSource(buf, l.File, l.ID, l.Offset, l.Length)
			buf = a.chain.Finish(buf)
		}
	}
	if n := len(lines); n > 0 {
		l := &lines[n-1]
		a.lastSrc = position{file: l.File, id: l.ID, end: l.Offset + l.Length}
	}
	a.buf = buf
	return a.retry(ctx, "append", func() error { return a.store.Append(buf, first, a.chain.Seq()) }, func() {
		a.Stats.Malformed.Add(uint64(malformed))
		a.types.add(types[0])
		a.types.add(types[1])
		a.appended += uint64(len(lines))
	})
}

// parallelLines is the smallest batch split over two goroutines.
const parallelLines = 64

// bodyBuilder turns lines into event bodies (parsed, then anonymized before
// signing, so that what is signed is what is stored), back to back in buf;
// ends[i] is where line i's body ends.
type bodyBuilder struct {
	pii       *pii.Anonymizer
	tmp, buf  []byte
	ends      []int
	malformed int
	types     map[string]*uint64 // events by type (raw JSON string content)
}

func (w *bodyBuilder) build(lines []tailer.Line, now time.Time) {
	w.buf, w.ends, w.malformed = w.buf[:0], w.ends[:0], 0
	if w.types == nil {
		w.types = map[string]*uint64{}
	}
	clear(w.types)
	for i := range lines {
		start := len(w.buf)
		l := &lines[i]
		line := parse.Line{Data: l.Data, Length: dataLength(l), Truncated: l.Truncated}
		var kind parse.Kind
		if w.pii.Mode() == pii.Off {
			w.buf, kind = parse.Append(w.buf, line, now)
		} else {
			w.tmp, kind = parse.Append(w.tmp[:0], line, now)
			w.buf = w.pii.AppendBody(w.buf, w.tmp)
		}
		if kind == parse.Malformed {
			w.malformed++
		}
		// A lookup by string(bytes) does not allocate; a new type does,
		// once per batch.
		typ := parse.EventType(w.buf[start:])
		if n := w.types[string(typ)]; n != nil {
			*n++
		} else {
			w.types[string(typ)] = new(uint64(1))
		}
		w.ends = append(w.ends, len(w.buf))
	}
}

// dataLength is the length of the line's text, without the newline.
func dataLength(l *tailer.Line) int64 {
	if l.Truncated || int64(len(l.Data)) < l.Length {
		return l.Length - 1
	}
	return l.Length
}

// commit makes everything appended durable before it returns: for the
// agent's own records (checkpoints, seals, a clean stop).
func (a *Agent) commit(ctx context.Context) error {
	return a.retry(ctx, "fsync", a.store.Commit, func() { a.madeDurable(a.appended) })
}

// commitAsync is the group commit of ingested batches: the fsync starts
// and runs while the next batches are signed and appended, so that the
// disk's latency does not hold up the one goroutine that signs. While an
// fsync runs nothing starts; when it ends (SyncDone, in Run) the next one
// takes what came meanwhile. What an fsync made durable is counted when
// it ends; one that failed shows in the next commit, which retries.
func (a *Agent) commitAsync(ctx context.Context) error {
	appended := a.appended
	a.groupCommits.Add(1)
	return a.retry(ctx, "fsync", func() error {
		return a.store.CommitAsync(func() { a.madeDurable(appended) })
	}, func() {})
}

// madeDurable counts the records the store has made durable since the
// last call, and tells OnDurable how many source lines are durable.
func (a *Agent) madeDurable(lines uint64) {
	cur := a.store.Durable()
	if prev := a.durableSeen.Swap(cur); cur > prev {
		a.Stats.Stored.Add(cur - prev)
	}
	if a.OnDurable != nil {
		a.OnDurable(lines)
	}
}

// retry runs op until it succeeds, backing off on errors such as a full
// disk. It gives up only when ctx is done.
func (a *Agent) retry(ctx context.Context, what string, op func() error, done func()) error {
	backoff := 100 * time.Millisecond
	for {
		err := op()
		if err == nil {
			a.paused.Store(false)
			done()
			return nil
		}
		a.paused.Store(true)
		a.Stats.AppendErrors.Add(1)
		a.log.Error("store: "+what+" failed; ingestion paused, will retry", "error", err, "retry_in", backoff)
		if clock.Wait(ctx, a.clk, backoff) != nil {
			return fmt.Errorf("store %s: %w", what, err)
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// close closes the store.
func (a *Agent) close() error {
	if a.closed {
		return nil
	}
	a.closed = true
	err := a.store.Close()
	a.log.Info("stopped", "durable_seq", a.store.Durable())
	return err
}

// Close lets go of the data directory, after Run (or instead of it: then
// it closes the store too). Call it once the store's readers are done:
// another agent may take the directory from then on.
func (a *Agent) Close() error {
	err := a.close()
	if a.lock != nil {
		err = errors.Join(err, a.lock.Release())
		a.lock = nil
	}
	return err
}

// Package witness owns getting the store's checkpoints cosigned by
// witnesses (C2SP tlog-witness): for each witness, the add-checkpoint
// request with a consistency proof from the size it cosigned last, what
// its answer means (a cosignature, the size it knows, a refused proof),
// the cosignatures kept in cosignatures.jsonl, and retrying in the
// background. A witness that is down or slow delays nothing: the agent
// hands it the newest checkpoint and moves on, and the lag shows in
// tailseal_witness_lag_records.
//
// A witness never cosigns a log that is not an extension of what it
// cosigned before: a store rolled back or forked gets 409 or 422, and
// this package says so loudly (tailseal_witness_refusals_total).
package witness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/merkle"
	"github.com/tailseal/tailseal/signer/record"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// CosignaturesFile, in the data dir, holds one line per cosignature
// obtained: {"size":N,"time":"…","witness":"<name+hash>","note":"<the
// checkpoint note with the witness's cosignature line>"}.
const CosignaturesFile = "cosignatures.jsonl"

// Witness is one witness: its submission prefix and its cosignature
// verifier key.
type Witness struct {
	URL string
	Key note.Verifier
}

// Checkpoint is a signed tree head to be cosigned.
type Checkpoint struct {
	Size uint64
	Root tlog.Hash
	Note string
}

// Options configure a Client.
type Options struct {
	DataDir   string // state/witness-*.json and CosignaturesFile go here
	Hashes    fs.FS  // the store's level files (store/hashes), for consistency proofs
	Witnesses []Witness
	HTTP      *http.Client
	Clock     clock.Clock
	Logger    *slog.Logger
}

// Client gets checkpoints cosigned. Checkpoint may be called from any
// goroutine; Run serves every witness until its context ends.
type Client struct {
	opt     Options
	log     *slog.Logger
	latest  atomic.Pointer[Checkpoint]
	ws      []*witness
	writeMu sync.Mutex // CosignaturesFile
}

// witness is one witness's state: what it cosigned last (persisted), and
// its counters.
type witness struct {
	Witness
	id                               string // name+hash, in files, logs and metrics
	path                             string // its state file
	nudge                            chan struct{}
	cosigned                         atomic.Pointer[state]
	failures, refusals, cosignatures atomic.Uint64
}

// state is a witness's state file: the size and root it cosigned last.
type state struct {
	Size uint64    `json:"size"`
	Root tlog.Hash `json:"root"`
}

// New loads each witness's state from the data dir.
func New(opt Options) (*Client, error) {
	opt.Clock = clock.Or(opt.Clock)
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{opt: opt, log: opt.Logger}
	for _, w := range opt.Witnesses {
		id := signer.KeyID(w.Key)
		ws := &witness{Witness: w, id: id, nudge: make(chan struct{}, 1),
			path: filepath.Join(opt.DataDir, "state", "witness-"+record.OriginToken(id)+".json")}
		st := &state{}
		if b, err := os.ReadFile(ws.path); err == nil {
			if err := json.Unmarshal(b, st); err != nil {
				return nil, fmt.Errorf("witness state %s: %w", ws.path, err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("witness state: %w", err)
		}
		ws.cosigned.Store(st)
		c.ws = append(c.ws, ws)
	}
	return c, nil
}

// Checkpoint hands the newest checkpoint to every witness, without
// waiting for any.
func (c *Client) Checkpoint(cp Checkpoint) {
	c.latest.Store(&cp)
	for _, w := range c.ws {
		select {
		case w.nudge <- struct{}{}:
		default:
		}
	}
}

// Run serves every witness until ctx ends.
func (c *Client) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range c.ws {
		wg.Go(func() { c.serve(ctx, w) })
	}
	wg.Wait()
}

// Retry waits: a witness that fails is asked again after retryMin,
// doubling up to retryMax.
const (
	retryMin = time.Second
	retryMax = 5 * time.Minute
)

func (c *Client) serve(ctx context.Context, w *witness) {
	backoff := retryMin
	for ctx.Err() == nil {
		cp := c.latest.Load()
		if cp == nil || cp.Size <= w.cosigned.Load().Size {
			select {
			case <-ctx.Done():
				return
			case <-w.nudge:
			}
			continue
		}
		err := c.submit(ctx, w, cp)
		var again errAgain
		switch {
		case err == nil:
			backoff = retryMin
			continue
		case errors.As(err, &again):
			continue // the witness told us where it stands: ask again now
		case ctx.Err() != nil:
			return
		case errors.Is(err, errRefused):
			w.refusals.Add(1)
			c.log.Error("WITNESS REFUSED THIS LOG: "+err.Error(), "witness", w.id, "size", cp.Size, "retry_in", backoff)
		default:
			w.failures.Add(1)
			c.log.Warn("witness: no cosignature yet; will retry", "witness", w.id, "size", cp.Size, "error", err, "retry_in", backoff)
		}
		if clock.Wait(ctx, c.opt.Clock, backoff) != nil {
			return
		}
		backoff = min(2*backoff, retryMax)
	}
}

var (
	// errRefused: the witness will not cosign this log (a rollback, a
	// fork, a log or key it does not know).
	errRefused = errors.New("refused")
)

// errAgain: the witness knows another size than ours; the state now
// says it, and the next request starts from there.
type errAgain struct{ size uint64 }

func (e errAgain) Error() string { return fmt.Sprintf("the witness has cosigned size %d", e.size) }

// submit sends cp to w with a consistency proof from the size w
// cosigned last, and keeps the cosignature.
func (c *Client) submit(ctx context.Context, w *witness, cp *Checkpoint) error {
	old := w.cosigned.Load()
	body, err := c.request(old, cp)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(w.URL, "/")+"/add-checkpoint", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.opt.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("add-checkpoint: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("add-checkpoint: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return c.cosigned(w, cp, answer)
	case http.StatusConflict:
		return c.conflict(w, old, cp, answer)
	case http.StatusUnprocessableEntity:
		return fmt.Errorf("%w: the witness does not accept the consistency proof from size %d to %d: what it cosigned at size %d is not this log's tree (the log was forked or rewritten)", errRefused, old.Size, cp.Size, old.Size)
	case http.StatusForbidden, http.StatusNotFound:
		return fmt.Errorf("%w: the witness does not know this log or its checkpoint key (HTTP %d %s); add the origin and TAILSEAL_VERIFIER's key to it", errRefused, resp.StatusCode, firstLine(answer))
	}
	return fmt.Errorf("add-checkpoint: HTTP %d %s", resp.StatusCode, firstLine(answer))
}

// request is the add-checkpoint body: old size, proof lines, a blank
// line, the checkpoint.
func (c *Client) request(old *state, cp *Checkpoint) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old.Size)
	if old.Size > 0 {
		p := merkle.NewProver(c.opt.Hashes)
		defer p.Close()
		proof, err := p.Consistency(cp.Size, old.Size, cp.Root, old.Root)
		if err != nil {
			return nil, fmt.Errorf("%w: the log at size %d, which the witness cosigned, is not a prefix of this one (%v)", errRefused, old.Size, err)
		}
		for _, h := range proof {
			b.WriteString(h.String() + "\n")
		}
	}
	b.WriteString("\n" + cp.Note)
	return b.Bytes(), nil
}

// conflict takes a 409: the witness's size, in its body. A size past
// ours means the witness saw more of this log than the store holds.
func (c *Client) conflict(w *witness, old *state, cp *Checkpoint, answer []byte) error {
	k, err := strconv.ParseUint(strings.TrimSpace(string(answer)), 10, 64)
	switch {
	case err != nil:
		return fmt.Errorf("add-checkpoint: HTTP 409 without a size: %s", firstLine(answer))
	case k > cp.Size:
		return fmt.Errorf("%w: the witness has cosigned this log at size %d, and the store's newest checkpoint is of size %d: the store was rolled back (or forked)", errRefused, k, cp.Size)
	case k == old.Size:
		return fmt.Errorf("%w: the witness cosigned another tree of size %d than this log's (a fork)", errRefused, k)
	}
	// Start from its size: the root there is ours, and the proof from it
	// holds only if the witness cosigned the same tree.
	root := merkle.EmptyRoot
	if k > 0 {
		p := merkle.NewProver(c.opt.Hashes)
		r, err := tlog.TreeHash(int64(k), p)
		p.Close()
		if err != nil {
			return fmt.Errorf("the root of size %d: %w", k, err)
		}
		root = r
	}
	if err := c.save(w, &state{Size: k, Root: root}); err != nil {
		return err
	}
	return errAgain{k}
}

// cosigned checks the witness's signature lines on the checkpoint, keeps
// them, and moves the witness's state on.
func (c *Client) cosigned(w *witness, cp *Checkpoint, sigs []byte) error {
	cosignedNote := cp.Note + string(sigs)
	n, err := note.Open([]byte(cosignedNote), note.VerifierList(w.Key))
	if err != nil || len(n.Sigs) == 0 {
		return fmt.Errorf("add-checkpoint: the answer holds no cosignature of %s that verifies: %v", w.id, err)
	}
	var lines strings.Builder
	for _, s := range n.Sigs {
		lines.WriteString("— " + s.Name + " " + s.Base64 + "\n")
	}
	line, _ := json.Marshal(struct {
		Size    uint64 `json:"size"`
		Time    string `json:"time"`
		Witness string `json:"witness"`
		Note    string `json:"note"`
	}{cp.Size, c.opt.Clock.Now().UTC().Format(time.RFC3339Nano), w.id, cp.Note + lines.String()})
	c.writeMu.Lock()
	err = atomicfile.Append(filepath.Join(c.opt.DataDir, CosignaturesFile), append(line, '\n'), 0o644)
	c.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("keep cosignature: %w", err)
	}
	w.cosignatures.Add(1)
	c.log.Info("checkpoint cosigned", "witness", w.id, "size", cp.Size)
	return c.save(w, &state{Size: cp.Size, Root: cp.Root})
}

func (c *Client) save(w *witness, st *state) error {
	b, _ := json.Marshal(st)
	if err := atomicfile.WriteFile(w.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("witness state: %w", err)
	}
	w.cosigned.Store(st)
	return nil
}

func firstLine(b []byte) string {
	l, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(l) > 200 {
		l = l[:200]
	}
	return l
}

// Collectors are the witnesses' metrics, labeled by witness (name+hash).
func (c *Client) Collectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, w := range c.ws {
		l := prometheus.Labels{"witness": w.id}
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tailseal_witness_cosigned_size", Help: "Size of the newest checkpoint the witness cosigned.", ConstLabels: l},
				func() float64 { return float64(w.cosigned.Load().Size) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tailseal_witness_lag_records", Help: "Records between the newest checkpoint and the newest one the witness cosigned.", ConstLabels: l},
				func() float64 {
					if cp := c.latest.Load(); cp != nil && cp.Size > w.cosigned.Load().Size {
						return float64(cp.Size - w.cosigned.Load().Size)
					}
					return 0
				}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tailseal_witness_cosignatures_total", Help: "Cosignatures obtained from the witness.", ConstLabels: l},
				func() float64 { return float64(w.cosignatures.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tailseal_witness_failures_total", Help: "Requests to the witness that failed and are retried (unreachable, an error).", ConstLabels: l},
				func() float64 { return float64(w.failures.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tailseal_witness_refusals_total", Help: "Checkpoints the witness refused: the store was rolled back or forked, or the witness does not know the log.", ConstLabels: l},
				func() float64 { return float64(w.refusals.Load()) }),
		)
	}
	return cs
}

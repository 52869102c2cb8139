// Package alert evaluates alert rules over the stored events and notifies
// channels (Slack, Discord, email, Alertmanager) at least once. It is a sink: it reads
// the store through its own cursor, and its state (the recent errors, what
// is firing, when it was last sent, the notifications not yet delivered)
// is one file written atomically, so a restart neither re-sends nor
// forgets an alert.
package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/sinks"
)

// Alert is one notification.
type Alert struct {
	ID string `json:"id"`
	// Origin names the store the alert is about, Host the machine (or
	// pod) of the agent that raised it; they may be equal, and every
	// channel shows both.
	Origin string `json:"origin"`
	Host   string `json:"host"`
	Rule   string `json:"rule"`   // RuleErrorThreshold or RulePerformance + the operation
	Status string `json:"status"` // firing, still firing, resolved
	Title  string `json:"title"`
	Text   string `json:"text"` // one paragraph: the counts and the window
	Count  int    `json:"count"`
	// AtLeast: Count is a lower bound (the engine keeps only the latest
	// errors, as many as the threshold).
	AtLeast bool   `json:"count_at_least,omitempty"`
	Window  string `json:"window"`
	// First and Last are the timestamps of the first and last event
	// counted; for a resolved alert, of the errors counted while it fired.
	First string `json:"first_event,omitempty"`
	Last  string `json:"last_event,omitempty"`
	// Since is when the rule began to fire (for a resolved alert too).
	Since time.Time `json:"since,omitzero"`
	// Link is Options.Link for this alert; "" when none is configured.
	Link   string    `json:"link,omitempty"`
	Recent []string  `json:"recent,omitempty"` // recent error messages, anonymized as stored
	Time   time.Time `json:"time"`
}

// Statuses.
const (
	Firing      = "firing"
	StillFiring = "still firing"
	Resolved    = "resolved"
)

// Notifier sends alerts to one channel. Notify returns nil once the alert
// is delivered; a *sinks.Permanent is dead-lettered; sinks.ErrStopped
// stops the channel; other errors are retried.
type Notifier interface {
	Name() string
	Notify(ctx context.Context, a Alert) error
}

// Refresher is a channel that forgets a firing alert it has not heard of
// for a while (Alertmanager resolves it after its resolve_timeout): every
// RefreshEvery while a rule fires, its last notification is queued again
// for that channel, in the same outbox.
type Refresher interface {
	RefreshEvery() time.Duration
}

// Options configure the rules.
type Options struct {
	// Origin and Host name the agent in every alert (see Alert); both are
	// required.
	Origin, Host string

	Threshold int           // errors within Window that fire
	Window    time.Duration // also the performance window
	Cooldown  time.Duration // between two notifications of one rule
	// PerfFactor: an operation's p95 over the window above PerfFactor × its
	// baseline p95 fires; 0 disables the rule.
	PerfFactor float64
	// Link, when set, goes into every alert (TAILSEAL_ALERT_LINK: a
	// dashboard, a runbook); {origin} in it is replaced by the origin,
	// query-escaped.
	Link     string
	StateDir string
	Log      *slog.Logger
	// Clock drives the rule tick, the delivery backoff and dead letters'
	// time; nil is clock.Real.
	Clock clock.Clock
	// Now is the time the rules are evaluated at; nil is Clock's Now.
	Now func() time.Time
}

// recentMessages is how many error messages an alert quotes.
const recentMessages = 5

// minPerfSamples is the fewest durations a window needs to be judged.
const minPerfSamples = 20

type errEvent struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Stamp   string    `json:"stamp"`
	Message string    `json:"message,omitempty"`
}

type ruleState struct {
	Firing   bool      `json:"firing"`
	Since    time.Time `json:"since,omitempty"`
	LastSent time.Time `json:"last_sent,omitempty"`
	// First and Last: timestamps of the first and the latest event counted
	// since it fired, for the resolved notice.
	First string `json:"first_event,omitempty"`
	Last  string `json:"last_event,omitempty"`
}

type perfOp struct {
	Baseline float64   `json:"baseline_p95"`
	Window   []float64 `json:"window"` // durations of the current window
	// WindowFirst and WindowLast: timestamps of the window's first and last sample.
	WindowFirst string `json:"window_first,omitempty"`
	WindowLast  string `json:"window_last,omitempty"`
	ruleState
}

type outboxEntry struct {
	Channel string `json:"channel"`
	Alert   Alert  `json:"alert"`
	Refresh bool   `json:"refresh,omitempty"` // queued again for a Refresher
}

// state is the file state/alerts.json.
type state struct {
	Seq       uint64             `json:"seq"` // the last record evaluated
	Errors    []errEvent         `json:"errors"`
	Errs      ruleState          `json:"error_threshold"`
	Perf      map[string]*perfOp `json:"performance"`
	WindowEnd time.Time          `json:"perf_window_end"`
	Outbox    []outboxEntry      `json:"outbox"`
	NextID    uint64             `json:"next_id"`
	// Active is the last notification of each rule that fires, and
	// Refreshed when each Refresher channel last had them queued again.
	Active    map[string]Alert     `json:"active,omitempty"`
	Refreshed map[string]time.Time `json:"refreshed,omitempty"`
}

// Engine is the alert sink.
type Engine struct {
	opt      Options
	path     string
	channels []Notifier
	mu       sync.Mutex
	st       state
	wake     chan struct{}
	finish   chan struct{} // closed by Finish
	finOnce  sync.Once
	// Fired counts notifications queued, by status.
	Fired   sync.Map // status -> *atomic.Uint64
	counts  map[string]*channelCounts
	stopped sync.Map // channel name -> bool
}

// channelCounts are one channel's notifications by result.
type channelCounts struct {
	Delivered, Refreshed, DeadLettered atomic.Uint64
}

// New loads the state from opt.StateDir.
func New(opt Options, channels []Notifier) (*Engine, error) {
	if opt.Origin == "" || opt.Host == "" {
		return nil, errors.New("alerts: the origin and the host name the agent in every alert; both are needed")
	}
	opt.Clock = clock.Or(opt.Clock)
	if opt.Now == nil {
		opt.Now = opt.Clock.Now
	}
	e := &Engine{opt: opt, path: filepath.Join(opt.StateDir, "alerts.json"), channels: channels, wake: make(chan struct{}, 1),
		finish: make(chan struct{}), counts: map[string]*channelCounts{}}
	for _, c := range channels {
		e.counts[c.Name()] = new(channelCounts)
	}
	b, err := os.ReadFile(e.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &e.st); err != nil {
			return nil, fmt.Errorf("%s: %w", e.path, err)
		}
	}
	if e.st.Perf == nil {
		e.st.Perf = map[string]*perfOp{}
	}
	if e.st.Active == nil {
		e.st.Active = map[string]Alert{}
	}
	if e.st.Refreshed == nil {
		e.st.Refreshed = map[string]time.Time{}
	}
	for i := range e.st.Outbox { // queued by an agent whose alerts did not name it
		if a := &e.st.Outbox[i].Alert; a.Origin == "" {
			a.Origin, a.Host = opt.Origin, opt.Host
		}
	}
	return e, nil
}

func (e *Engine) Name() string { return "alerts" }

// Accept passes only what the rules look at.
func (e *Engine) Accept(line []byte) bool {
	h, ok := record.ParseHead(line)
	return ok && (string(h.Type) == record.TypeError || string(h.Type) == record.TypePerformance && e.opt.PerfFactor > 0)
}

// Deliver evaluates a batch of records.
func (e *Engine) Deliver(_ context.Context, b sinks.Batch) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opt.Now()
	for _, line := range b.Lines {
		h, ok := record.ParseHead(line)
		if !ok || h.Seq <= e.st.Seq {
			continue // seen before a crash
		}
		t, ok := h.Time()
		if !ok {
			t = now
		}
		switch string(h.Type) {
		case record.TypeError:
			e.st.Errors = append(e.st.Errors, errEvent{Seq: h.Seq, Time: t, Stamp: record.Text(h.Timestamp),
				Message: record.FirstString(h.Details, record.MessageKeys)})
			if keep := max(e.opt.Threshold, recentMessages); len(e.st.Errors) > keep {
				e.st.Errors = slices.Delete(e.st.Errors, 0, len(e.st.Errors)-keep)
			}
		case record.TypePerformance:
			if d, ok := record.Duration(h.Details); ok {
				op := e.st.Perf[h.Operation()]
				if op == nil {
					op = &perfOp{}
					e.st.Perf[h.Operation()] = op
				}
				if len(op.Window) < 10_000 {
					op.Window = append(op.Window, d)
				}
				if op.WindowFirst == "" {
					op.WindowFirst = record.Text(h.Timestamp)
				}
				op.WindowLast = record.Text(h.Timestamp)
			}
		}
	}
	e.st.Seq = max(e.st.Seq, b.Last)
	e.evaluate(now)
	return e.save()
}

// Tick evaluates at now without new records: windows empty out, and a
// rule resolves when errors stop.
func (e *Engine) Tick() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	before := len(e.st.Outbox)
	now := e.opt.Now()
	changed := e.evaluate(now)
	changed = e.refresh(now) || changed
	if !changed && len(e.st.Outbox) == before {
		return nil
	}
	return e.save()
}

// evaluate applies the rules at now; it reports whether the state changed.
func (e *Engine) evaluate(now time.Time) bool {
	changed := false
	// Error threshold: the errors whose timestamps are within the window
	// that ends now.
	var in []errEvent
	for _, ev := range e.st.Errors {
		if !ev.Time.Before(now.Add(-e.opt.Window)) && !ev.Time.After(now.Add(time.Minute)) {
			in = append(in, ev)
		}
	}
	r := &e.st.Errs
	if r.Firing && len(in) > 0 {
		r.Last = in[len(in)-1].Stamp
	}
	switch {
	case len(in) >= e.opt.Threshold && !r.Firing:
		r.Firing, r.Since, r.LastSent = true, now, now
		r.First, r.Last = in[0].Stamp, in[len(in)-1].Stamp
		e.queue(now, e.errorAlert(Firing, in, now))
		changed = true
	case len(in) >= e.opt.Threshold && now.Sub(r.LastSent) >= e.opt.Cooldown:
		r.LastSent = now
		e.queue(now, e.errorAlert(StillFiring, in, now))
		changed = true
	case len(in) < e.opt.Threshold && r.Firing:
		r.Firing, r.LastSent = false, now
		e.queue(now, e.errorAlert(Resolved, in, now))
		changed = true
	}
	if e.opt.PerfFactor > 0 {
		changed = e.evaluatePerf(now) || changed
	}
	return changed
}

func (e *Engine) errorAlert(status string, in []errEvent, now time.Time) Alert {
	keep := max(e.opt.Threshold, recentMessages)
	a := Alert{Rule: RuleErrorThreshold, Status: status, Count: len(in), AtLeast: len(in) >= keep, Window: e.opt.Window.String(),
		Since: e.st.Errs.Since, Time: now}
	switch status {
	case Resolved:
		a.Title = "Resolved: errors are back under the threshold"
		a.Text = fmt.Sprintf("%d error events in the last %s, under the threshold of %d. It fired at %s.",
			len(in), e.opt.Window, e.opt.Threshold, e.st.Errs.Since.UTC().Format(time.RFC3339))
	default:
		a.Title = fmt.Sprintf("%d errors in %s (threshold %d)", len(in), e.opt.Window, e.opt.Threshold)
		if a.AtLeast {
			a.Title = fmt.Sprintf("At least %d errors in %s (threshold %d)", len(in), e.opt.Window, e.opt.Threshold)
		}
		a.Text = fmt.Sprintf("Rule error_threshold is %s: %d or more error events within %s (threshold %d). Next reminder after %s.",
			status, len(in), e.opt.Window, e.opt.Threshold, e.opt.Cooldown)
	}
	if status == Resolved {
		a.First, a.Last = e.st.Errs.First, e.st.Errs.Last
	} else if len(in) > 0 {
		a.First, a.Last = in[0].Stamp, in[len(in)-1].Stamp
	}
	if len(in) > 0 {
		for i := len(in) - 1; i >= 0 && len(a.Recent) < recentMessages; i-- {
			if in[i].Message != "" {
				a.Recent = append(a.Recent, in[i].Message)
			}
		}
	}
	return a
}

// evaluatePerf closes a window every Window: an operation with enough
// samples whose p95 exceeds PerfFactor × its baseline fires; otherwise
// its baseline learns the window's p95 (a moving average, 1/5 weight).
func (e *Engine) evaluatePerf(now time.Time) bool {
	if e.st.WindowEnd.IsZero() {
		e.st.WindowEnd = now.Add(e.opt.Window)
		return true
	}
	if now.Before(e.st.WindowEnd) {
		return false
	}
	e.st.WindowEnd = now.Add(e.opt.Window)
	for _, name := range slices.Sorted(maps.Keys(e.st.Perf)) {
		op := e.st.Perf[name]
		n := len(op.Window)
		first, last := op.WindowFirst, op.WindowLast
		op.WindowFirst, op.WindowLast = "", ""
		if n < minPerfSamples {
			op.Window = op.Window[:0]
			continue
		}
		p95 := record.Percentile(slices.Sorted(slices.Values(op.Window)), 95)
		op.Window = op.Window[:0]
		a := Alert{Rule: RulePerformance + name, Count: n, Window: e.opt.Window.String(), First: first, Last: last, Time: now}
		degraded := op.Baseline > 0 && p95 > e.opt.PerfFactor*op.Baseline
		switch {
		case op.Baseline == 0:
			op.Baseline = p95
		case degraded && (!op.Firing || now.Sub(op.LastSent) >= e.opt.Cooldown):
			a.Status = Firing
			if op.Firing {
				a.Status = StillFiring
			}
			op.Firing, op.LastSent = true, now
			if a.Status == Firing {
				op.Since = now
			}
			a.Since = op.Since
			a.Title = fmt.Sprintf("%s is slow: p95 %.1f ms, %.1f× its baseline", name, p95, p95/op.Baseline)
			a.Text = fmt.Sprintf("Over the last %s, %d %s operations had a p95 of %.1f ms against a baseline p95 of %.1f ms (threshold %.1f×).",
				e.opt.Window, n, name, p95, op.Baseline, e.opt.PerfFactor)
			e.queue(now, a)
		case !degraded:
			op.Baseline = 0.8*op.Baseline + 0.2*p95
			if op.Firing {
				op.Firing, op.LastSent = false, now
				a.Status, a.Since = Resolved, op.Since
				a.Title = fmt.Sprintf("Resolved: %s p95 is back to %.1f ms", name, p95)
				a.Text = fmt.Sprintf("Over the last %s, %d %s operations had a p95 of %.1f ms (baseline %.1f ms).", e.opt.Window, n, name, p95, op.Baseline)
				e.queue(now, a)
			}
		}
	}
	return true
}

// queue adds the alert to every channel's outbox, and keeps it as the
// rule's active alert while the rule fires.
func (e *Engine) queue(now time.Time, a Alert) {
	e.st.NextID++
	a.ID = fmt.Sprintf("alert-%d", e.st.NextID)
	a.Origin, a.Host, a.Time = e.opt.Origin, e.opt.Host, now
	if e.opt.Link != "" {
		a.Link = link(e.opt.Link, a.Origin)
	}
	for _, c := range e.channels {
		e.st.Outbox = append(e.st.Outbox, outboxEntry{Channel: c.Name(), Alert: a})
		if _, ok := c.(Refresher); ok {
			e.st.Refreshed[c.Name()] = now // it has just heard of it
		}
	}
	if a.Status == Resolved {
		delete(e.st.Active, a.Rule)
	} else {
		e.st.Active[a.Rule] = a
	}
	n, _ := e.Fired.LoadOrStore(a.Status, new(atomic.Uint64))
	n.(*atomic.Uint64).Add(1)
	e.opt.Log.Info("alert", "rule", a.Rule, "status", a.Status, "count", a.Count, "window", a.Window)
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// refresh queues the active alerts again for each Refresher channel whose
// RefreshEvery has passed, unless one of the rule's notifications is
// still pending for it (that one says the rule fires). It reports whether
// it queued anything.
func (e *Engine) refresh(now time.Time) bool {
	if len(e.st.Active) == 0 {
		return false
	}
	queued := false
	for _, c := range e.channels {
		r, ok := c.(Refresher)
		if !ok || now.Sub(e.st.Refreshed[c.Name()]) < r.RefreshEvery() {
			continue
		}
		e.st.Refreshed[c.Name()] = now
		for _, rule := range slices.Sorted(maps.Keys(e.st.Active)) {
			if slices.ContainsFunc(e.st.Outbox, func(o outboxEntry) bool { return o.Channel == c.Name() && o.Alert.Rule == rule }) {
				continue
			}
			e.st.Outbox = append(e.st.Outbox, outboxEntry{Channel: c.Name(), Alert: e.st.Active[rule], Refresh: true})
		}
		queued = true
	}
	if queued {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
	return queued
}

func (e *Engine) save() error {
	b, err := json.Marshal(&e.st)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(e.path, b, 0o600)
}

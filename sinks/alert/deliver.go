package alert

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/sinks"
)

// Finish tells Run that no record will come any more (the agent
// stopped, and the engine's Runner delivered it what was stored): Run
// stops evaluating and returns nil once every channel has delivered its
// outbox or stopped. A channel that keeps failing keeps Run retrying
// until ctx ends, so the caller bounds the wait with ctx.
func (e *Engine) Finish() { e.finOnce.Do(func() { close(e.finish) }) }

// Pending is how many notifications each channel has not delivered yet.
func (e *Engine) Pending() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := make(map[string]int, len(e.channels))
	for _, c := range e.channels {
		n[c.Name()] = 0
	}
	for _, o := range e.st.Outbox {
		n[o.Channel]++
	}
	return n
}

// Run delivers the outbox to the channels, one goroutine per channel, and
// ticks the rules, until ctx ends or, after Finish, the outbox is
// delivered.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wakes := make([]chan struct{}, len(e.channels))
	for i, c := range e.channels {
		wakes[i] = make(chan struct{}, 1)
		wakes[i] <- struct{}{} // deliver what a previous run left
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.deliverLoop(ctx, c, wakes[i])
		}()
	}
	tick := e.opt.Clock.NewTicker(tickEvery(e.opt.Window))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		case <-e.finish:
			wg.Wait()
			return ctx.Err() // nil unless ctx ended while a channel still had its outbox
		case <-tick.C():
			if err := e.Tick(); err != nil {
				e.opt.Log.Error("alerts: cannot save state", "error", err)
			}
		case <-e.wake:
		}
		for _, w := range wakes {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
}

// tickEvery is how often the rules are evaluated without new records: a
// twentieth of the window, so that a rule resolves soon after its window
// empties, but at least every 15 s, so that a Refresher hears of what
// fires in time whatever the window.
func tickEvery(window time.Duration) time.Duration {
	return min(max(window/20, 100*time.Millisecond), 15*time.Second)
}

// deliverLoop sends the channel's outbox entries in order.
func (e *Engine) deliverLoop(ctx context.Context, c Notifier, wake <-chan struct{}) {
	log := e.opt.Log.With("channel", c.Name())
	counts := e.counts[c.Name()]
	wait := time.Second
	for {
		e.mu.Lock()
		i := slices.IndexFunc(e.st.Outbox, func(o outboxEntry) bool { return o.Channel == c.Name() })
		var a Alert
		refresh := false
		if i >= 0 {
			a, refresh = e.st.Outbox[i].Alert, e.st.Outbox[i].Refresh
		}
		e.mu.Unlock()
		if i < 0 {
			select {
			case <-ctx.Done():
				return
			case <-wake:
				continue
			case <-e.finish:
				return // nothing pending: nothing to wait for
			}
		}
		err := c.Notify(ctx, a)
		var perm *sinks.Permanent
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, sinks.ErrStopped):
			e.stopped.Store(c.Name(), true)
			log.Error("ALERT CHANNEL STOPPED: it refuses for good; alerts for it are kept in state/alerts.json until it is fixed and the agent restarted", "error", err)
			return
		case errors.As(err, &perm):
			counts.DeadLettered.Add(1)
			body, _ := json.Marshal(a)
			if derr := sinks.DeadLetterAt(e.opt.Now(), e.opt.StateDir, "alerts-"+c.Name(), perm.Reason, sinks.Batch{Lines: [][]byte{body}}); derr != nil {
				log.Error("alerts: cannot write dead letter", "error", derr)
			}
			log.Error("alert refused; dead-lettered", "alert", a.ID, "reason", perm.Reason)
		case err != nil:
			log.Warn("alert delivery failed; will retry", "alert", a.ID, "error", err, "retry_in", wait)
			if clock.Wait(ctx, e.opt.Clock, wait) != nil {
				return
			}
			wait = min(2*wait, time.Minute)
			continue
		case refresh:
			counts.Refreshed.Add(1)
		default:
			counts.Delivered.Add(1)
		}
		wait = time.Second
		e.mu.Lock()
		if j := slices.IndexFunc(e.st.Outbox, func(o outboxEntry) bool { return o.Channel == c.Name() && o.Alert.ID == a.ID }); j >= 0 {
			e.st.Outbox = slices.Delete(e.st.Outbox, j, j+1)
		}
		if err := e.save(); err != nil {
			log.Error("alerts: cannot save state", "error", err)
		}
		e.mu.Unlock()
	}
}

// Notifications are a channel's notifications by result: delivered
// (refreshes not included), refreshed (see Refresher), and dead-lettered
// (refused for good).
func (e *Engine) Notifications(channel string) (delivered, refreshed, deadLettered uint64) {
	c := e.counts[channel]
	if c == nil {
		return 0, 0, 0
	}
	return c.Delivered.Load(), c.Refreshed.Load(), c.DeadLettered.Load()
}

// FiredCount is how many notifications of a status were raised.
func (e *Engine) FiredCount(status string) uint64 {
	if n, ok := e.Fired.Load(status); ok {
		return n.(*atomic.Uint64).Load()
	}
	return 0
}

// Channels names the channels.
func (e *Engine) Channels() []string {
	out := make([]string, len(e.channels))
	for i, c := range e.channels {
		out[i] = c.Name()
	}
	return out
}

// Stopped reports whether a channel stopped for good.
func (e *Engine) Stopped(channel string) bool {
	v, ok := e.stopped.Load(channel)
	return ok && v.(bool)
}

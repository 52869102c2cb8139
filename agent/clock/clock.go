// Package clock is the seam through which the agent and the sinks read the
// time and wait: Real in production, Fake in tests, so that a test steps
// time forward instead of sleeping. It holds only what that code needs.
package clock

import (
	"context"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
	NewTicker(d time.Duration) Ticker
}

// Timer is a time.Timer behind the seam. As with time.Timer since Go 1.23,
// no stale value is received after Stop or Reset returns.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker is a time.Ticker behind the seam.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// Real is the system clock.
var Real Clock = realClock{}

// Or returns c, or Real when c is nil: the default of every Clock option.
func Or(c Clock) Clock {
	if c == nil {
		return Real
	}
	return c
}

// Wait waits for d on c, or until ctx is done (then it returns ctx.Err()).
func Wait(ctx context.Context, c Clock, d time.Duration) error {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// Until is how long from c's now until t.
func Until(c Clock, t time.Time) time.Duration { return t.Sub(c.Now()) }

// Since is how long from t until c's now.
func Since(c Clock, t time.Time) time.Duration { return c.Now().Sub(t) }

type realClock struct{}

func (realClock) Now() time.Time                   { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer   { return realTimer{time.NewTimer(d)} }
func (realClock) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

package clock

import (
	"sync"
	"time"
)

// Fake is a Clock that moves only when a test calls Advance. Its timers
// hand a fired value over the way Go 1.23 timers do: the channel is
// unbuffered, Stop and Reset drop a value not yet received, and a ticker
// skips the ticks its reader missed. Armed and Settled let a test wait for
// the code under test instead of sleeping.
type Fake struct {
	mu       sync.Mutex
	now      time.Time
	timers   map[*fakeTimer]struct{} // armed
	inflight int                     // fired values neither received nor dropped
	waiters  []waiter
}

type waiter struct {
	ready func() bool
	done  chan struct{}
}

// NewFake returns a fake clock whose time is now.
func NewFake(now time.Time) *Fake {
	return &Fake{now: now, timers: map[*fakeTimer]struct{}{}}
}

// Now implements Clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer implements Clock.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time)}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.arm(d)
	return t
}

// NewTicker implements Clock.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker") // as time.NewTicker
	}
	t := &fakeTimer{f: f, c: make(chan time.Time), period: d}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.arm(d)
	return fakeTicker{t}
}

// fakeTicker is a fakeTimer with a period, behind Ticker's method set.
type fakeTicker struct{ t *fakeTimer }

func (k fakeTicker) C() <-chan time.Time { return k.t.c }
func (k fakeTicker) Stop()               { k.t.Stop() }

// Advance moves the time forward by d, firing the timers and ticks that
// fall due on the way, in time order; it returns how many fired.
func (f *Fake) Advance(d time.Duration) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	fired := 0
	for ; ; fired++ {
		var next *fakeTimer
		for t := range f.timers {
			if !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		if next.at.After(f.now) {
			f.now = next.at
		}
		next.fire()
	}
	f.now = end
	f.changed()
	return fired
}

// Armed returns a channel closed once a timer or ticker set for exactly d
// is armed: the code under test is waiting on it.
func (f *Fake) Armed(d time.Duration) <-chan struct{} {
	return f.when(func() bool {
		for t := range f.timers {
			if t.d == d {
				return true
			}
		}
		return false
	})
}

// Settled returns a channel closed once every value fired so far has been
// received (or dropped by Stop or Reset): the code under test has taken
// what Advance gave it.
func (f *Fake) Settled() <-chan struct{} {
	return f.when(func() bool { return f.inflight == 0 })
}

func (f *Fake) when(ready func() bool) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := waiter{ready: ready, done: make(chan struct{})}
	f.waiters = append(f.waiters, w)
	f.changed()
	return w.done
}

// changed wakes the waiters whose condition now holds; f.mu is held.
func (f *Fake) changed() {
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.ready() {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	clear(f.waiters[len(kept):])
	f.waiters = kept
}

// fakeTimer is a Fake's timer or (period > 0) ticker. Its fields are
// guarded by f.mu.
type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	d      time.Duration // as last set
	at     time.Time     // when it fires next, while armed
	period time.Duration
	armed  bool
	cancel chan struct{} // drops the value being handed over; nil if none
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.armed
	t.disarm()
	t.drop()
	t.f.changed()
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.armed
	t.drop()
	t.arm(d)
	return was
}

// arm sets the timer to fire d from now (at once if d <= 0).
func (t *fakeTimer) arm(d time.Duration) {
	t.d, t.at, t.armed = d, t.f.now.Add(d), true
	t.f.timers[t] = struct{}{}
	if d <= 0 {
		t.fire()
	}
	t.f.changed()
}

func (t *fakeTimer) disarm() {
	t.armed = false
	delete(t.f.timers, t)
}

// drop discards a fired value not yet received.
func (t *fakeTimer) drop() {
	if t.cancel != nil {
		close(t.cancel)
		t.cancel = nil
	}
}

// fire hands the current time over to the reader, without blocking the
// clock; a ticker then re-arms, a timer is done.
func (t *fakeTimer) fire() {
	if t.period > 0 {
		t.at = t.at.Add(t.period)
	} else {
		t.disarm()
	}
	if t.cancel != nil {
		return // a tick the reader has not taken yet: this one is skipped
	}
	f, v, cancel := t.f, t.f.now, make(chan struct{})
	t.cancel = cancel
	f.inflight++
	go func() {
		select {
		case t.c <- v:
		case <-cancel:
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if t.cancel == cancel {
			t.cancel = nil
		}
		f.inflight--
		f.changed()
	}()
}

package clock

import (
	"context"
	"testing"
	"time"
)

var t0 = time.Date(2026, 2, 4, 12, 0, 0, 0, time.UTC)

// recv takes a value that must already be on its way.
func recv(t *testing.T, c <-chan time.Time) time.Time {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second): // a guard, not a wait for the condition
		t.Fatal("no value fired")
		return time.Time{}
	}
}

// none checks that nothing was fired: every fired value is handed over
// before Settled closes.
func none(t *testing.T, f *Fake, c <-chan time.Time) {
	t.Helper()
	<-f.Settled()
	select {
	case v := <-c:
		t.Fatalf("fired at %v", v)
	default:
	}
}

func TestFakeTimer(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(time.Second)
	<-f.Armed(time.Second)
	if n := f.Advance(999 * time.Millisecond); n != 0 {
		t.Errorf("%d fired before the time", n)
	}
	none(t, f, tm.C())
	if n := f.Advance(time.Millisecond); n != 1 {
		t.Errorf("%d fired, want 1", n)
	}
	if v := recv(t, tm.C()); !v.Equal(t0.Add(time.Second)) {
		t.Errorf("fired with %v", v)
	}
	if tm.Stop() {
		t.Error("Stop of a fired timer reported it stopped")
	}
	tm.Reset(time.Minute)
	<-f.Armed(time.Minute)
	f.Advance(time.Minute)
	recv(t, tm.C())
}

func TestFakeStopDropsAValueNotReceived(t *testing.T) {
	f := NewFake(t0)
	tm := f.NewTimer(time.Second)
	f.Advance(time.Second)
	if tm.Stop() {
		t.Error("Stop after firing reported it stopped")
	}
	none(t, f, tm.C())
	if tm.Reset(-time.Second) {
		t.Error("Reset of a stopped timer reported it armed")
	}
	recv(t, tm.C()) // a non-positive duration fires at once
}

func TestFakeTickerSkipsMissedTicks(t *testing.T) {
	f := NewFake(t0)
	tk := f.NewTicker(time.Second)
	f.Advance(3500 * time.Millisecond)
	if v := recv(t, tk.C()); !v.Equal(t0.Add(time.Second)) {
		t.Errorf("first tick at %v, want the first one due", v)
	}
	none(t, f, tk.C()) // the ticks at 2 s and 3 s were missed
	f.Advance(500 * time.Millisecond)
	if v := recv(t, tk.C()); !v.Equal(t0.Add(4 * time.Second)) {
		t.Errorf("tick at %v", v)
	}
	tk.Stop()
	f.Advance(time.Hour)
	none(t, f, tk.C())
}

func TestWait(t *testing.T) {
	f := NewFake(t0)
	done := make(chan error)
	go func() { done <- Wait(context.Background(), f, time.Minute) }()
	<-f.Armed(time.Minute)
	f.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wait(ctx, f, time.Minute); err != context.Canceled {
		t.Fatalf("Wait after cancel: %v", err)
	}
	if Since(f, t0) != time.Minute || Until(f, t0) != -time.Minute {
		t.Error("Since or Until do not read the clock")
	}
}

package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tailseal/tailseal/sinks"
)

// recorder is a channel that keeps what it is sent.
type recorder struct {
	name string
	mu   sync.Mutex
	got  []Alert
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Notify(_ context.Context, a Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
	return nil
}
func (r *recorder) statuses() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.got {
		out = append(out, a.Status)
	}
	return out
}

// stepClock is the rules' time, moved by the test; the engine's timers run
// on the synctest bubble's clock, which moves only when every goroutine in
// the bubble is blocked (and not while the test waits for them). synctest
// suits this package: its channels are in memory, so synctest.Wait tells
// when delivery is done, without polling.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func line(seq uint64, t time.Time, typ, details string) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"timestamp":%q,"event_type":%q,"actor":"","lead_id":"L","workflow":"w","details":{%s},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`,
		seq, t.UTC().Format(time.RFC3339Nano), typ, details)
}

type rig struct {
	t     *testing.T
	dir   string
	clk   *stepClock
	e     *Engine
	chans []*recorder
	seq   uint64
	stop  context.CancelFunc
	done  chan struct{}
	opt   Options
}

func newRig(t *testing.T, opt Options) *rig {
	r := &rig{t: t, dir: t.TempDir(), clk: &stepClock{t: time.Date(2026, 2, 4, 12, 0, 0, 0, time.UTC)}, opt: opt}
	r.start()
	return r
}

// start (re)opens the engine from its state file, as after a restart.
func (r *rig) start() {
	r.opt.StateDir, r.opt.Now, r.opt.Log = r.dir, r.clk.now, slog.New(slog.DiscardHandler)
	r.opt.Origin, r.opt.Host = "web-1", "node-a"
	r.chans = []*recorder{{name: "slack"}, {name: "discord"}}
	var err error
	r.e, err = New(r.opt, []Notifier{r.chans[0], r.chans[1]})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	go func() { r.e.Run(ctx); close(r.done) }()
}

func (r *rig) restart() {
	r.stop()
	<-r.done
	r.start()
}

// errors stores n error events one every gap, delivered in one batch.
func (r *rig) errors(n int, gap time.Duration) {
	b := sinks.Batch{First: r.seq + 1}
	for range n {
		r.seq++
		b.Lines = append(b.Lines, line(r.seq, r.clk.now(), "error", `"message":"boom"`))
		r.clk.add(gap)
	}
	b.Last = r.seq
	if err := r.e.Deliver(context.Background(), b); err != nil {
		r.t.Fatal(err)
	}
}

// want checks, once the engine has delivered all it can (every goroutine
// of the synctest bubble is blocked), that every channel got exactly these
// statuses.
func (r *rig) want(statuses ...string) {
	r.t.Helper()
	synctest.Wait()
	for _, c := range r.chans {
		if fmt.Sprint(c.statuses()) != fmt.Sprint(statuses) {
			r.t.Fatalf("channels got %v and %v, want %v", r.chans[0].statuses(), r.chans[1].statuses(), statuses)
		}
	}
}

func TestErrorThresholdCooldownAndResolve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Options{Threshold: 10, Window: time.Minute, Cooldown: 5 * time.Minute})
		defer func() { r.stop(); <-r.done }()

		r.errors(25, 2*time.Second) // 25 errors in 50 s
		r.want(Firing)
		a := r.chans[0].got[0]
		if a.Count < 10 || a.First == "" || a.Last == "" || len(a.Recent) == 0 || a.Rule != "error_threshold" {
			t.Errorf("alert lacks its facts: %+v", a)
		}
		if a.Origin != "web-1" || a.Host != "node-a" {
			t.Errorf("alert from origin %q, host %q; want web-1, node-a", a.Origin, a.Host)
		}

		r.restart() // kill and restart inside the cooldown: no second alert
		r.errors(10, 2*time.Second)
		r.e.Tick()
		r.want()                   // the new channels (after restart) got nothing
		r.clk.add(5 * time.Minute) // past the cooldown, errors still coming
		r.errors(12, time.Second)
		r.want(StillFiring)
		r.clk.add(2 * time.Minute) // errors stop: the window empties
		if err := r.e.Tick(); err != nil {
			t.Fatal(err)
		}
		r.want(StillFiring, Resolved)
		r.e.Tick()
		r.want(StillFiring, Resolved)

		// A batch seen before a crash is not counted twice.
		before := len(r.e.st.Errors)
		r.e.Deliver(context.Background(), sinks.Batch{First: 1, Last: 3, Lines: [][]byte{line(1, r.clk.now(), "error", ""), line(2, r.clk.now(), "error", "")}})
		if len(r.e.st.Errors) != before {
			t.Errorf("replayed records were counted")
		}
	})
}

// An alert queued but not delivered before a crash is delivered after it.
func TestOutboxSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Options{Threshold: 3, Window: time.Minute, Cooldown: time.Hour})
		r.stop() // no delivery loop: the alert stays in the outbox
		<-r.done
		r.errors(3, time.Second)
		if len(r.e.st.Outbox) != 2 {
			t.Fatalf("outbox %d, want one entry per channel", len(r.e.st.Outbox))
		}
		r.start()
		defer func() { r.stop(); <-r.done }()
		r.want(Firing)
	})
}

// An alert left in the outbox by an agent whose alerts did not name it is
// delivered naming this agent; an engine without an origin or a host is
// refused.
func TestAlertsNameTheAgent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Options{Threshold: 3, Window: time.Minute, Cooldown: time.Hour})
		r.stop()
		<-r.done
		r.errors(3, time.Second)
		for i := range r.e.st.Outbox {
			r.e.st.Outbox[i].Alert.Origin, r.e.st.Outbox[i].Alert.Host = "", ""
		}
		if err := r.e.save(); err != nil {
			t.Fatal(err)
		}
		r.start()
		defer func() { r.stop(); <-r.done }()
		r.want(Firing)
		for _, c := range r.chans {
			if a := c.got[0]; a.Origin != "web-1" || a.Host != "node-a" {
				t.Errorf("%s: alert from origin %q, host %q; want web-1, node-a", c.name, a.Origin, a.Host)
			}
		}
	})
	for _, opt := range []Options{{Host: "node-a"}, {Origin: "web-1"}} {
		opt.StateDir = t.TempDir()
		if _, err := New(opt, nil); err == nil {
			t.Errorf("New(origin %q, host %q) accepted", opt.Origin, opt.Host)
		}
	}
}

func TestPerformanceDegradation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Options{Threshold: 1000, Window: time.Minute, Cooldown: time.Hour, PerfFactor: 2})
		defer func() { r.stop(); <-r.done }()
		window := func(ms float64) {
			b := sinks.Batch{First: r.seq + 1}
			for i := range 50 {
				r.seq++
				b.Lines = append(b.Lines, line(r.seq, r.clk.now(), "performance", fmt.Sprintf(`"operation":"crm_upsert","duration_ms":%g`, ms+float64(i%5))))
			}
			b.Last = r.seq
			if err := r.e.Deliver(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			r.clk.add(61 * time.Second)
			r.e.Tick()
		}
		r.e.Tick()  // opens the first window
		window(100) // baseline
		window(110)
		r.want()
		window(400) // p95 above 2x the baseline
		r.want(Firing)
		if a := r.chans[0].got[0]; a.Rule != "performance:crm_upsert" {
			t.Errorf("rule %q", a.Rule)
		}
		window(105)
		r.want(Firing, Resolved)
	})
}

// refusing is a channel that is down.
type refusing struct{ name string }

func (f refusing) Name() string { return f.name }
func (f refusing) Notify(context.Context, Alert) error {
	return fmt.Errorf("%s: 503 Service Unavailable", f.name)
}

// After Finish, Run returns at once when nothing is pending, and after the
// outbox is delivered otherwise; a channel that is down keeps it retrying
// (until ctx ends) with its alert pending, and the others are not held.
func TestFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Options{Threshold: 3, Window: time.Minute, Cooldown: time.Hour})
		r.want()
		r.e.Finish()
		synctest.Wait()
		select {
		case <-r.done:
		default:
			t.Fatal("Run goes on after Finish with nothing pending")
		}

		up := &recorder{name: "slack"}
		opt := r.opt // the rig's, with a state of its own
		opt.StateDir = t.TempDir()
		e, err := New(opt, []Notifier{up, refusing{"discord"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		b := sinks.Batch{First: 1, Last: 3}
		for i := range 3 {
			b.Lines = append(b.Lines, line(uint64(i+1), r.clk.now(), "error", `"message":"boom"`))
		}
		if err := e.Deliver(ctx, b); err != nil {
			t.Fatal(err)
		}
		e.Finish()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Run returned %v with discord's alert undelivered", err)
		default:
		}
		if got, pending := up.statuses(), e.Pending(); fmt.Sprint(got) != "[firing]" || pending["slack"] != 0 || pending["discord"] != 1 {
			t.Fatalf("slack got %v, pending %v; want [firing], slack 0 and discord 1", got, pending)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v, want context.Canceled", err)
		}
	})
}

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

// Every alert carries where and what: the firing one its count (a lower
// bound when capped), window, first and last event, when it began and the
// link with the origin filled in; the resolved one the first and last
// event of the errors it counted while it fired, and when it began.
func TestAlertFacts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, Options{Threshold: 10, Window: time.Minute, Cooldown: time.Hour, Link: "https://grafana.example.com/d/tailseal?var-origin={origin}&x=1"})
		defer func() { r.stop(); <-r.done }()
		start := r.clk.now()
		r.errors(25, time.Second)
		r.want(Firing)
		a := r.chans[0].got[0]
		stamp := func(d time.Duration) string { return start.Add(d).UTC().Format(time.RFC3339Nano) }
		if a.Count != 10 || !a.AtLeast || a.First != stamp(15*time.Second) || a.Last != stamp(24*time.Second) || a.Window != "1m0s" {
			t.Errorf("firing: count %d (at least %v), window %s, events %s … %s", a.Count, a.AtLeast, a.Window, a.First, a.Last)
		}
		if !a.Since.Equal(r.clk.now()) || a.Link != "https://grafana.example.com/d/tailseal?var-origin=web-1&x=1" || a.Severity() != SeverityCritical {
			t.Errorf("firing: since %v, link %q, severity %q", a.Since, a.Link, a.Severity())
		}
		var names []string
		for _, f := range a.Facts() {
			names = append(names, f.Name)
		}
		want := []string{FactOrigin, FactHost, FactRule, FactStatus, FactCount, FactWindow, FactFirst, FactLast, FactSince, FactLink}
		if fmt.Sprint(names) != fmt.Sprint(want) {
			t.Errorf("facts %v, want %v", names, want)
		}
		if f := a.Facts()[4]; f.Value != "at least 10" {
			t.Errorf("count fact %q", f.Value)
		}

		r.clk.add(30 * time.Second)
		r.errors(3, time.Second) // more errors while it fires: the last event moves on
		r.clk.add(2 * time.Minute)
		r.e.Tick()
		r.want(Firing, Resolved)
		res := r.chans[0].got[1]
		if res.First != stamp(15*time.Second) || res.Last != stamp(57*time.Second) || !res.Since.Equal(a.Since) || res.Link != a.Link {
			t.Errorf("resolved: events %s … %s, since %v, link %q; want %s … %s since %v", res.First, res.Last, res.Since, res.Link,
				stamp(15*time.Second), stamp(57*time.Second), a.Since)
		}
	})
}

// refresher is a recorder that wants firing alerts again every minute.
type refresher struct{ recorder }

func (*refresher) RefreshEvery() time.Duration { return time.Minute }

// A Refresher channel gets the firing alert again every RefreshEvery
// while it fires, also after a restart, and never after it resolved;
// other channels do not. Refreshes are counted apart.
func TestRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &stepClock{t: time.Date(2026, 2, 4, 12, 0, 0, 0, time.UTC)}
		dir := t.TempDir()
		var (
			am    *refresher
			slack *recorder
			e     *Engine
			stop  context.CancelFunc
			done  chan struct{}
		)
		start := func() {
			am, slack = &refresher{recorder{name: "alertmanager-1"}}, &recorder{name: "slack"}
			var err error
			e, err = New(Options{Origin: "web-1", Host: "node-a", Threshold: 3, Window: 10 * time.Minute, Cooldown: time.Hour,
				StateDir: dir, Now: clk.now, Log: slog.New(slog.DiscardHandler)}, []Notifier{am, slack})
			if err != nil {
				t.Fatal(err)
			}
			var ctx context.Context
			ctx, stop = context.WithCancel(context.Background())
			done = make(chan struct{})
			go func() { e.Run(ctx); close(done) }()
		}
		start()
		b := sinks.Batch{First: 1, Last: 3}
		for i := range 3 {
			b.Lines = append(b.Lines, line(uint64(i+1), clk.now(), "error", `"message":"boom"`))
		}
		if err := e.Deliver(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		clk.add(30 * time.Second)
		e.Tick() // not a minute yet
		synctest.Wait()
		if fmt.Sprint(am.statuses(), slack.statuses()) != "[firing] [firing]" {
			t.Fatalf("before a minute: alertmanager %v, slack %v", am.statuses(), slack.statuses())
		}
		clk.add(31 * time.Second)
		e.Tick()
		synctest.Wait()
		if fmt.Sprint(am.statuses(), slack.statuses()) != "[firing firing] [firing]" || am.got[1].ID != am.got[0].ID {
			t.Fatalf("after a minute: alertmanager %v, slack %v", am.statuses(), slack.statuses())
		}
		if d, r, _ := e.Notifications("alertmanager-1"); d != 1 || r != 1 {
			t.Errorf("alertmanager: %d delivered, %d refreshed; want 1 and 1", d, r)
		}

		stop() // a restart: the active alert is in the state file
		<-done
		start()
		clk.add(time.Minute)
		e.Tick()
		synctest.Wait()
		if len(am.got) != 1 || len(slack.got) != 0 {
			t.Fatalf("after a restart: alertmanager %v, slack %v", am.statuses(), slack.statuses())
		}

		clk.add(10 * time.Minute) // the window empties: resolved, and no refresh after it
		e.Tick()
		clk.add(2 * time.Minute)
		e.Tick()
		synctest.Wait()
		if fmt.Sprint(am.statuses(), slack.statuses()) != "[firing resolved] [resolved]" {
			t.Fatalf("after the resolve: alertmanager %v, slack %v", am.statuses(), slack.statuses())
		}
		stop()
		<-done
	})
}

// refusingRefresher is an Alertmanager that is down.
type refusingRefresher struct{ refusing }

func (refusingRefresher) RefreshEvery() time.Duration { return time.Minute }

// While a Refresher channel is down, its refreshes do not pile up: one
// notification of the rule pending says all there is to say.
func TestRefreshDoesNotPileUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &stepClock{t: time.Date(2026, 2, 4, 12, 0, 0, 0, time.UTC)}
		e, err := New(Options{Origin: "web-1", Host: "node-a", Threshold: 1, Window: time.Hour, Cooldown: time.Hour,
			StateDir: t.TempDir(), Now: clk.now, Log: slog.New(slog.DiscardHandler)}, []Notifier{refusingRefresher{refusing{"alertmanager-1"}}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.Run(ctx); close(done) }()
		if err := e.Deliver(ctx, sinks.Batch{First: 1, Last: 1, Lines: [][]byte{line(1, clk.now(), "error", "")}}); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			clk.add(time.Minute)
			e.Tick()
		}
		synctest.Wait()
		if n := e.Pending()["alertmanager-1"]; n != 1 {
			t.Errorf("%d notifications pending, want 1", n)
		}
		cancel()
		<-done
	})
}

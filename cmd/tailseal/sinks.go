package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/alert"
	"github.com/tailseal/tailseal/sinks/alertmanager"
	"github.com/tailseal/tailseal/sinks/discord"
	"github.com/tailseal/tailseal/sinks/email"
	natssink "github.com/tailseal/tailseal/sinks/nats"
	"github.com/tailseal/tailseal/sinks/slack"
	"github.com/tailseal/tailseal/sinks/webhook"
)

// sinkSet is what `tailseal run` delivers to: the configured webhooks and,
// with at least one alert channel, the alert engine. They run beside the
// agent and read its store.
type sinkSet struct {
	log     *slog.Logger
	origin  string
	runners []*sinks.Runner
	alerts  *alert.Engine
	// alertRunner feeds alerts; it is in runners too.
	alertRunner *sinks.Runner
	metrics     []prometheus.Collector // the sinks' and channels' own; the runners' need the store
	closers     []func()               // connections to close once the sinks ended
}

// newSinks builds the sinks from the configuration. It runs before the
// store opens, so that retention, which starts with it, already keeps what
// a sink needs (see keep), and after the agent made the data directory. A
// webhook seen for the first time starts at the oldest record in the store
// (a witness wants the whole history); the alert engine starts at the next
// record (no alert about the past). origin is the store's: every webhook
// body and id and every alert names it.
func newSinks(cfg *config.Config, origin string, log *slog.Logger) (*sinkSet, error) {
	set := &sinkSet{log: log, origin: origin}
	hopt := sinks.HTTPOptions{Timeout: cfg.HTTPTimeout, MinWait: 500 * time.Millisecond, MaxWait: cfg.RetryMaxWait, Log: log}
	stateDir := filepath.Join(cfg.DataDir, agent.StateDir)
	if err := set.addWebhooks(cfg, stateDir, hopt); err != nil {
		return nil, err
	}
	if err := set.addNATS(cfg, stateDir); err != nil {
		return nil, err
	}
	var channels []alert.Notifier
	if cfg.SlackWebhook != "" {
		n := slack.New(cfg.SlackWebhook, hopt)
		channels, set.metrics = append(channels, n), append(set.metrics, n.Collectors()...)
	}
	if cfg.DiscordWebhook != "" {
		n := discord.New(cfg.DiscordWebhook, hopt)
		channels, set.metrics = append(channels, n), append(set.metrics, n.Collectors()...)
	}
	if cfg.SMTPAddr != "" {
		n, err := email.New(emailOptions(cfg))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", config.ErrInvalid, err)
		}
		channels = append(channels, n)
	}
	for i, u := range cfg.AlertmanagerURLs {
		n := alertmanager.New(fmt.Sprintf("alertmanager-%d", i+1), u, hopt)
		log.Info("alertmanager", "channel", n.Name(), "endpoint", sinks.Describe(u))
		channels, set.metrics = append(channels, n), append(set.metrics, n.Collectors()...)
	}
	if len(channels) > 0 {
		if err := set.addAlerts(cfg, stateDir, channels); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// emailOptions are the email channel's, from cfg; tailseal config checks
// them with email.New too (the CA file).
func emailOptions(cfg *config.Config) email.Options {
	return email.Options{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, To: cfg.SMTPTo, Username: cfg.SMTPUsername,
		Password: cfg.SMTPPassword, TLS: cfg.SMTPTLS, CAFile: cfg.SMTPCAFile, Timeout: cfg.HTTPTimeout}
}

func (set *sinkSet) addWebhooks(cfg *config.Config, stateDir string, hopt sinks.HTTPOptions) error {
	var secret []byte
	if cfg.WebhookSecret != "" {
		var err error
		if secret, err = config.ParseWebhookSecret(cfg.WebhookSecret); err != nil { // checked by config.Validate
			return fmt.Errorf("%w: TAILSEAL_WEBHOOK_SECRET: %w", config.ErrInvalid, err)
		}
	}
	oldest := oldestStored(cfg)
	limits := sinks.Limits{Count: cfg.WebhookBatch, Bytes: cfg.WebhookBatchBytes, Age: cfg.WebhookBatchAge}
	for i, u := range cfg.WebhookURLs {
		s := webhook.New(webhook.Options{Name: fmt.Sprintf("webhook-%d", i+1), Origin: set.origin, URL: u, Secret: secret, Token: cfg.WebhookToken,
			Types: cfg.WebhookTypes, StateDir: stateDir, HTTP: hopt})
		r, err := sinks.NewRunner(s, stateDir, limits, oldest, set.log)
		if err != nil {
			return err
		}
		set.log.Info("webhook sink", "sink", s.Name(), "endpoint", webhook.Describe(u), "signed", secret != nil, "from_seq", r.Keep())
		set.runners, set.metrics = append(set.runners, r), append(set.metrics, s.Collectors()...)
	}
	return nil
}

// oldestStored is the first seq a sink seen for the first time starts
// at: the oldest record in the store (a witness wants the whole history).
func oldestStored(cfg *config.Config) uint64 {
	if o, err := oldestSeq(filepath.Join(cfg.DataDir, agent.StoreDir)); err == nil && o > 0 {
		return o
	}
	return 1
}

// natsLimits bound one delivery of the JetStream sink: one atomic batch.
// A batch waits Age for more records, so that a slow trickle is
// not one batch (and one server fsync) per record.
var natsLimits = sinks.Limits{Count: natssink.MaxBatch, Bytes: 8 << 20, Age: 20 * time.Millisecond, Share: 0.5}

// addNATS adds the JetStream sink when TAILSEAL_NATS_URL is set. Where it
// starts is the stream's to say (the sink is a Resumer); the cursor only
// keeps retention from deleting what the stream has not acknowledged.
func (set *sinkSet) addNATS(cfg *config.Config, stateDir string) error {
	servers := cfg.NATSServers()
	if len(servers) == 0 {
		return nil
	}
	s, err := natssink.New(natssink.Options{Origin: set.origin, URLs: servers, CredsFile: cfg.NATSCredsFile, NKeyFile: cfg.NATSNKeyFile,
		Token: cfg.NATSToken, CAFile: cfg.NATSCAFile, Stream: cfg.NATSStream, Replicas: cfg.NATSReplicas,
		DuplicateWindow: cfg.NATSDuplicateWindow, Timeout: cfg.HTTPTimeout, Log: set.log})
	if err != nil {
		return fmt.Errorf("%w: %v", config.ErrInvalid, err)
	}
	r, err := sinks.NewRunner(s, stateDir, natsLimits, oldestStored(cfg), set.log)
	if err != nil {
		return err
	}
	set.log.Info("NATS JetStream sink", "sink", s.Name(), "servers", servers, "stream", cfg.NATSStream,
		"subject", natssink.Subject(set.origin), "cursor", r.Keep()-1)
	set.runners, set.metrics = append(set.runners, r), append(set.metrics, s.Collectors()...)
	set.closers = append(set.closers, s.Close)
	return nil
}

func (set *sinkSet) addAlerts(cfg *config.Config, stateDir string, channels []alert.Notifier) error {
	host, err := os.Hostname()
	if err != nil || host == "" {
		set.log.Warn("alerts: the host name is unknown; alerts say so", "error", err)
		host = "unknown"
	}
	e, err := alert.New(alert.Options{Origin: set.origin, Host: host, Threshold: cfg.AlertThreshold, Window: cfg.AlertWindow, Cooldown: cfg.AlertCooldown,
		PerfFactor: cfg.PerfDegradationFactor, Link: cfg.AlertLink, StateDir: stateDir, Log: set.log, Now: time.Now}, channels)
	if err != nil {
		return err
	}
	r, err := sinks.NewRunner(e, stateDir, sinks.Limits{Count: 1000, Bytes: 1 << 20, Age: 100 * time.Millisecond}, sinks.FromEnd, set.log)
	if err != nil {
		return err
	}
	names := make([]string, len(channels))
	for i, c := range channels {
		names[i] = c.Name()
	}
	set.log.Info("alerts", "origin", set.origin, "host", host, "channels", names, "threshold", cfg.AlertThreshold, "window", cfg.AlertWindow.String(), "cooldown", cfg.AlertCooldown.String())
	set.runners, set.alerts, set.alertRunner = append(set.runners, r), e, r
	set.metrics = append(set.metrics, e.Collectors()...)
	return nil
}

// keep is the lowest seq a sink still needs: retention keeps it.
func (set *sinkSet) keep() uint64 {
	low := uint64(math.MaxUint64)
	for _, r := range set.runners {
		low = min(low, r.Keep())
	}
	return low
}

// collectors are the sinks' metrics.
func (set *sinkSet) collectors(st sinks.Source) []prometheus.Collector {
	cs := set.metrics
	for _, r := range set.runners {
		cs = append(cs, r.Collectors(st.Durable)...)
	}
	return cs
}

// running is the sinks as they run beside the agent.
type running struct {
	set        *sinkSet
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	done       map[*sinks.Runner]chan struct{} // closed when the runner's Run returns
	alertsDone chan struct{}                   // closed when the alert engine's Run returns
}

// run starts the sinks on st. They run on their own context, not the
// agent's: after a stop they still deliver what is stored (see stop).
func (set *sinkSet) run(st sinks.Store) *running {
	ctx, cancel := context.WithCancel(context.Background())
	rs := &running{set: set, cancel: cancel, done: map[*sinks.Runner]chan struct{}{}}
	run := func(name string, done chan struct{}, fn func(context.Context) error) {
		rs.wg.Go(func() {
			defer close(done)
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				set.log.Error("sink ended", "sink", name, "error", err)
			}
		})
	}
	for _, r := range set.runners {
		rs.done[r] = make(chan struct{})
		run(r.Name(), rs.done[r], func(ctx context.Context) error { return r.Run(ctx, st) })
	}
	if set.alerts != nil {
		rs.alertsDone = make(chan struct{})
		run("alerts", rs.alertsDone, set.alerts.Run)
	}
	return rs
}

// stop ends the sinks once the agent has stopped and the store ends at
// seq durable. With a timeout above 0 they first get that long to deliver
// it; stop returns as soon as they have. It logs what is left, which stays
// in the store and goes out after the next start.
func (rs *running) stop(durable uint64, timeout time.Duration) {
	if timeout > 0 && len(rs.done) > 0 {
		rs.drain(durable, timeout)
	}
	rs.cancel()
	rs.wg.Wait()
	for _, c := range rs.set.closers {
		c()
	}
	rs.report(durable)
}

// drain waits, up to timeout, for every sink to deliver through durable:
// each runner, and then the alert channels their outbox (the alert
// engine's runner first evaluates what is left, which may queue an alert).
// A sink that stopped for good counts as done.
func (rs *running) drain(durable uint64, timeout time.Duration) {
	start := time.Now()
	rs.set.log.Info("stopping: the sinks deliver what is stored", "durable_seq", durable, "drain_timeout", timeout.String())
	var all sync.WaitGroup
	for r, done := range rs.done {
		r.Finish(durable)
		if r != rs.set.alertRunner {
			all.Go(func() { <-done })
		}
	}
	if rs.set.alerts != nil {
		all.Go(func() {
			<-rs.done[rs.set.alertRunner]
			rs.set.alerts.Finish()
			<-rs.alertsDone
		})
	}
	caughtUp := make(chan struct{})
	go func() { all.Wait(); close(caughtUp) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-caughtUp:
		rs.set.log.Info("the sinks are done", "took", time.Since(start).Round(time.Millisecond).String())
	case <-t.C:
		rs.set.log.Warn("TAILSEAL_DRAIN_TIMEOUT passed before every sink delivered what is stored; stopping them", "drain_timeout", timeout.String())
	}
}

// report logs, per sink, what was not delivered.
func (rs *running) report(durable uint64) {
	for _, r := range rs.set.runners {
		delivered := r.Stats.Cursor.Load()
		if delivered >= durable { // or a new alert engine that never ran: it needs nothing
			continue
		}
		rs.set.log.Warn("sink left stored records undelivered; they are kept and delivered after the next start",
			"sink", r.Name(), "delivered_seq", delivered, "durable_seq", durable, "records_left", durable-delivered)
	}
	if rs.set.alerts == nil {
		return
	}
	pending := rs.set.alerts.Pending()
	for _, c := range rs.set.alerts.Channels() {
		if n := pending[c]; n > 0 {
			rs.set.log.Warn("alert channel left notifications undelivered; they are kept and sent after the next start",
				"channel", c, "alerts_left", n)
		}
	}
}

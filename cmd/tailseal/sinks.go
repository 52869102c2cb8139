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
	"github.com/tailseal/tailseal/sinks/discord"
	"github.com/tailseal/tailseal/sinks/email"
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
	metrics []prometheus.Collector // the sinks' and channels' own; the runners' need the store
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
		n, err := email.New(email.Options{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, To: cfg.SMTPTo, Username: cfg.SMTPUsername,
			Password: cfg.SMTPPassword, TLS: cfg.SMTPTLS, CAFile: cfg.SMTPCAFile, Timeout: cfg.HTTPTimeout})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", config.ErrInvalid, err)
		}
		channels = append(channels, n)
	}
	if len(channels) > 0 {
		if err := set.addAlerts(cfg, stateDir, channels); err != nil {
			return nil, err
		}
	}
	return set, nil
}

func (set *sinkSet) addWebhooks(cfg *config.Config, stateDir string, hopt sinks.HTTPOptions) error {
	var secret []byte
	if cfg.WebhookSecret != "" {
		var err error
		if secret, err = config.ParseWebhookSecret(cfg.WebhookSecret); err != nil { // checked by config.Validate
			return fmt.Errorf("%w: TAILSEAL_WEBHOOK_SECRET: %w", config.ErrInvalid, err)
		}
	}
	oldest := uint64(1)
	if o, err := oldestSeq(filepath.Join(cfg.DataDir, agent.StoreDir)); err == nil && o > 0 {
		oldest = o
	}
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

func (set *sinkSet) addAlerts(cfg *config.Config, stateDir string, channels []alert.Notifier) error {
	host, err := os.Hostname()
	if err != nil || host == "" {
		set.log.Warn("alerts: the host name is unknown; alerts say so", "error", err)
		host = "unknown"
	}
	e, err := alert.New(alert.Options{Origin: set.origin, Host: host, Threshold: cfg.AlertThreshold, Window: cfg.AlertWindow, Cooldown: cfg.AlertCooldown,
		PerfFactor: cfg.PerfDegradationFactor, StateDir: stateDir, Log: set.log, Now: time.Now}, channels)
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
	set.runners, set.alerts = append(set.runners, r), e
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

// run starts the sinks on st; the returned func waits for them after ctx
// ends.
func (set *sinkSet) run(ctx context.Context, st sinks.Store) (wait func()) {
	var wg sync.WaitGroup
	run := func(name string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				set.log.Error("sink ended", "sink", name, "error", err)
			}
		})
	}
	for _, r := range set.runners {
		run(r.Name(), func(ctx context.Context) error { return r.Run(ctx, st) })
	}
	if set.alerts != nil {
		run("alerts", set.alerts.Run)
	}
	return wg.Wait
}

package agent

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/alert"
	"github.com/tailseal/tailseal/sinks/discord"
	"github.com/tailseal/tailseal/sinks/email"
	"github.com/tailseal/tailseal/sinks/slack"
	"github.com/tailseal/tailseal/sinks/webhook"
)

// sinkSet is what the agent delivers to: the configured webhooks and, with
// at least one alert channel, the alert engine.
type sinkSet struct {
	runners []*sinks.Runner
	hooks   []*webhook.Sink
	alerts  *alert.Engine
	retries map[string]*sinks.RetryCounts // by sink or channel name
}

// setupSinks builds the sinks from the configuration. A webhook seen for
// the first time starts at the oldest record in the store (a witness wants
// the whole history); the alert engine starts at the next record (no alert
// about the past).
func (a *Agent) setupSinks(storeDir string) error {
	cfg := a.cfg
	set := &sinkSet{retries: map[string]*sinks.RetryCounts{}}
	hopt := sinks.HTTPOptions{Timeout: cfg.HTTPTimeout, MinWait: 500 * time.Millisecond, MaxWait: cfg.RetryMaxWait}
	stateDir := filepath.Join(cfg.DataDir, StateDir)
	oldest := uint64(1)
	if segs, err := store.List(storeDir); err == nil && len(segs) > 0 {
		oldest = segs[0].First
	}
	var secret []byte
	if cfg.WebhookSecret != "" {
		var err error
		if secret, err = webhook.ParseSecret(cfg.WebhookSecret); err != nil {
			return fmt.Errorf("%w: TAILSEAL_WEBHOOK_SECRET: %v", config.ErrInvalid, err)
		}
	}
	for i, u := range cfg.WebhookURLs {
		if !httpURL(u) {
			return fmt.Errorf("%w: TAILSEAL_WEBHOOK_URLS: entry %d is not an http or https URL", config.ErrInvalid, i+1)
		}
	}
	for name, u := range map[string]string{"TAILSEAL_SLACK_WEBHOOK": cfg.SlackWebhook, "TAILSEAL_DISCORD_WEBHOOK": cfg.DiscordWebhook} {
		if u != "" && !httpURL(u) {
			return fmt.Errorf("%w: %s is not an http or https URL", config.ErrInvalid, name) // the URL itself is a secret
		}
	}
	limits := sinks.Limits{Count: cfg.WebhookBatch, Bytes: cfg.WebhookBatchBytes, Age: cfg.WebhookBatchAge}
	for i, u := range cfg.WebhookURLs {
		s := webhook.New(webhook.Options{Name: fmt.Sprintf("webhook-%d", i+1), URL: u, Secret: secret, Token: cfg.WebhookToken,
			Types: cfg.WebhookTypes, StateDir: stateDir, HTTP: hopt})
		r, err := sinks.NewRunner(s, storeDir, stateDir, limits, oldest, a.log)
		if err != nil {
			return err
		}
		a.log.Info("webhook sink", "sink", s.Name(), "endpoint", webhook.Describe(u), "signed", secret != nil, "from_seq", r.Keep())
		set.runners, set.hooks = append(set.runners, r), append(set.hooks, s)
		set.retries[s.Name()] = s.Retries()
	}
	var channels []alert.Notifier
	if cfg.SlackWebhook != "" {
		n := slack.New(cfg.SlackWebhook, hopt)
		channels, set.retries["slack"] = append(channels, n), n.Retries()
	}
	if cfg.DiscordWebhook != "" {
		n := discord.New(cfg.DiscordWebhook, hopt)
		channels, set.retries["discord"] = append(channels, n), n.Retries()
	}
	if cfg.SMTPAddr != "" {
		n, err := email.New(email.Options{Addr: cfg.SMTPAddr, From: cfg.SMTPFrom, To: cfg.SMTPTo, Username: cfg.SMTPUsername,
			Password: cfg.SMTPPassword, TLS: cfg.SMTPTLS, CAFile: cfg.SMTPCAFile, Timeout: cfg.HTTPTimeout})
		if err != nil {
			return fmt.Errorf("%w: %v", config.ErrInvalid, err)
		}
		channels = append(channels, n)
	}
	if len(channels) > 0 {
		e, err := alert.New(alert.Options{Threshold: cfg.AlertThreshold, Window: cfg.AlertWindow, Cooldown: cfg.AlertCooldown,
			PerfFactor: cfg.PerfDegradationFactor, StateDir: stateDir, Log: a.log, Now: time.Now}, channels)
		if err != nil {
			return err
		}
		r, err := sinks.NewRunner(e, storeDir, stateDir, sinks.Limits{Count: 1000, Bytes: 1 << 20, Age: 100 * time.Millisecond}, sinks.FromEnd, a.log)
		if err != nil {
			return err
		}
		names := make([]string, len(channels))
		for i, c := range channels {
			names[i] = c.Name()
		}
		a.log.Info("alerts", "channels", names, "threshold", cfg.AlertThreshold, "window", cfg.AlertWindow.String(), "cooldown", cfg.AlertCooldown.String())
		set.runners, set.alerts = append(set.runners, r), e
	}
	a.sinks = set
	return nil
}

func httpURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// keep is the lowest seq a sink still needs: retention keeps it.
func (a *Agent) keep() uint64 {
	low := uint64(math.MaxUint64)
	for _, r := range a.sinks.runners {
		low = min(low, r.Keep())
	}
	return low
}

// runSinks starts the sinks; the returned func waits for them after ctx
// ends.
func (a *Agent) runSinks(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("sink ended", "sink", name, "error", err)
			}
		}()
	}
	for _, r := range a.sinks.runners {
		run(r.Name(), func(ctx context.Context) error { return r.Run(ctx, a.store) })
	}
	if a.sinks.alerts != nil {
		run("alerts", a.sinks.alerts.Run)
	}
	return wg.Wait
}

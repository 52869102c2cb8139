package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/httpapi"
	"github.com/tailseal/tailseal/agent/lock"
	"golang.org/x/term"
)

// gcPercent is the agent's GOGC unless the environment sets one.
const gcPercent = 25

func runAgent(ctx context.Context, args []string) error {
	// SIGHUP's default action ends the process; a daemon is asked to
	// reload with it (systemctl reload, kill -HUP). It is caught from the
	// start and answered once the log is set up (hangup).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var flags config.Flags
	dataDirFlag(fs, &flags)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tailseal run [--data-dir DIR]

Tails $TAILSEAL_SOURCE (default ./logs/audit.log), anonymizes and signs every
line, and appends it to the store in $TAILSEAL_DATA_DIR (default ./data).
Stops cleanly on SIGTERM or SIGINT; SIGHUP does not stop it (it logs that
a restart applies a configuration change). All settings are environment variables;
tailseal config shows them. It warns about TAILSEAL_ variables it does not
read (a misspelled name), naming the closest one it knows.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tailseal run: unexpected argument %q; see tailseal run --help\n", fs.Arg(0))
		return errUsage
	}
	if os.Getenv("GOGC") == "" {
		// The live heap is small (read and write buffers, a few MiB), so
		// collecting at a quarter of the default growth costs no CPU we
		// could measure and keeps the peak resident size, which a sidecar's
		// memory limit sees, low: 22.4-23.0 MiB against 26.6 with the
		// default, in the 1M-line benchmark.
		debug.SetGCPercent(gcPercent)
	}
	cfg, err := loadConfig(flags)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	for _, w := range config.Warnings() {
		log.Warn(w.Message, "variable", w.Variable, "did_you_mean", w.Closest)
	}
	go hangup(ctx, hup, log)

	// The endpoint starts before recovery, so that /readyz says 503 during it.
	reg := prometheus.NewRegistry()
	var ready atomic.Pointer[agent.Agent]
	if cfg.Listen != "" {
		shutdown, err := listen(cfg.Listen, reg, &ready, log)
		if err != nil {
			return err
		}
		defer shutdown()
	}

	a, set, err := assemble(cfg, log)
	if err != nil {
		log.Error("cannot start", "error", err)
		if errors.Is(err, config.ErrInvalid) || errors.Is(err, lock.ErrHeld) || errors.Is(err, agent.ErrStoreLost) ||
			errors.Is(err, agent.ErrOriginChanged) || errors.Is(err, agent.ErrKeysLost) {
			return errUsage
		}
		return err
	}
	st := sinkStore{Store: a.Store(), dir: filepath.Join(cfg.DataDir, agent.StoreDir)}
	reg.MustRegister(a.Collectors()...)
	reg.MustRegister(buildInfo(a.Origin()))
	reg.MustRegister(set.collectors(st)...)
	ready.Store(a)
	go notifyReady(ctx, a, log)
	log.Info("started", "origin", a.Origin(), "version", version, "source", cfg.Source, "data_dir", cfg.DataDir)
	delivering := set.run(st)
	// A stop: the agent stores everything the application wrote and
	// closes the store; then the sinks get TAILSEAL_DRAIN_TIMEOUT to
	// deliver it, and only then is the data dir (their cursors) let go.
	err = a.Run(ctx)
	delivering.stop(a.Store().Durable(), cfg.DrainTimeout)
	err = errors.Join(err, a.Close())
	if err != nil {
		log.Error("stopped with an error", "error", err)
		return err
	}
	return nil
}

// hangup answers SIGHUP until ctx ends (a stop; later ones are ignored).
// The configuration is read once, at start, and there is nothing to
// reopen: the source is followed by its path across rotation, the log is
// stderr. So the agent goes on, and says what applies a change.
func hangup(ctx context.Context, hup <-chan os.Signal, log *slog.Logger) {
	for {
		select {
		case <-hup:
			log.Warn("SIGHUP: the agent goes on with the configuration it started with; restart it to apply a change (tailseal config shows the new one)")
		case <-ctx.Done():
			return
		}
	}
}

// listen serves the HTTP endpoint; it is ready once an agent is stored in
// ready and has recovered.
func listen(addr string, reg *prometheus.Registry, ready *atomic.Pointer[agent.Agent], log *slog.Logger) (shutdown func() error, err error) {
	srv, err := httpapi.Start(addr, reg, func() bool {
		a := ready.Load()
		if a == nil {
			return false
		}
		select {
		case <-a.Ready():
			return a.Healthy()
		default:
			return false
		}
	}, log)
	if err != nil {
		log.Error("cannot listen", "addr", addr, "error", err)
		return nil, fmt.Errorf("%w: TAILSEAL_LISTEN %s: %w", errUsage, addr, err)
	}
	return srv.Shutdown, nil
}

// notifyReady tells systemd when the agent has recovered, and when a stop
// begins (storing the backlog and the drain can take a while).
func notifyReady(ctx context.Context, a *agent.Agent, log *slog.Logger) {
	select {
	case <-a.Ready():
		log.Info("ready")
		if err := sdNotify("READY=1"); err != nil {
			log.Warn("sd_notify", "error", err)
		}
	case <-ctx.Done():
	}
	<-ctx.Done()
	sdNotify("STOPPING=1")
}

// assemble builds the agent and the sinks. The sinks are built after the
// agent's own checks and before its store opens, so that retention, which
// starts with the store, already keeps what a sink needs.
func assemble(cfg *config.Config, log *slog.Logger) (*agent.Agent, *sinkSet, error) {
	var set *sinkSet
	build := func(origin string) (err error) {
		set, err = newSinks(cfg, origin, log)
		return err
	}
	a, err := agent.New(cfg, log, agent.WithReaders(build, func() uint64 { return set.keep() }), agent.WithVersion(version))
	if err != nil {
		return nil, nil, err
	}
	return a, set, nil
}

// newLogger logs JSON to stderr, or text when stderr is a terminal.
func newLogger(level string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lv}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

// buildInfo is tailseal_build_info{version,origin} 1: which agent, which
// store, for joining with the other series.
func buildInfo(origin string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailseal_build_info", Help: "Always 1; the labels name the agent's version and its store's origin.",
		ConstLabels: prometheus.Labels{"version": version, "origin": origin}})
	g.Set(1)
	return g
}

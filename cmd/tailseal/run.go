package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
	"golang.org/x/term"
)

func runAgent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tailseal run

Tails $TAILSEAL_SOURCE (default ./logs/audit.log), anonymizes and signs every
line, and appends it to the store in $TAILSEAL_DATA_DIR (default ./data).
Stops cleanly on SIGTERM or SIGINT. All settings are environment variables.
`)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailseal:", err)
		return errUsage
	}
	log := newLogger(cfg.LogLevel)
	a, err := agent.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "error", err)
		if errors.Is(err, config.ErrInvalid) {
			return errUsage
		}
		return err
	}
	log.Info("started", "source", cfg.Source, "data_dir", cfg.DataDir)
	if err := a.Run(ctx); err != nil {
		log.Error("stopped with an error", "error", err)
		return err
	}
	return nil
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

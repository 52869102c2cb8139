package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent/collect"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/httpapi"
	"github.com/tailseal/tailseal/agent/lock"
)

func runCollect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	var flags config.Flags
	dataDirFlag(fs, &flags)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tailseal collect [--data-dir DIR]

The central side of the fleet. Consumes the records that agents publish to
NATS JetStream (TAILSEAL_NATS_URL, stream TAILSEAL_NATS_STREAM, subjects
tailseal.records.<origin>) through the durable pull consumer
TAILSEAL_COLLECT_CONSUMER (default tailseal-collect), and appends each
origin's records, byte for byte, to
$TAILSEAL_DATA_DIR/origins/<origin token>/ in the agent's own layout, with
the agent's segments, genesis.json and checkpoints.jsonl: run
  TAILSEAL_DATA_DIR=$TAILSEAL_DATA_DIR/origins/<token> tailseal verify
with that agent's keys to verify it.

Every origin's seq and prev chain is checked on arrival. A gap or a record
that does not chain halts that origin: its store ends at the last record
that chained, and that message and every later one of the origin go to
origins/<token>/quarantine.jsonl; a record stored before with other bytes
(a fork) goes there too. Findings are logged and counted
(tailseal_collect_findings_total). Messages are acknowledged only once
their records are fsynced; after kill -9 a redelivered record that is
stored byte for byte is skipped.

Several collectors share a fleet with TAILSEAL_COLLECT_PARTITIONS=n and
TAILSEAL_COLLECT_PARTITION=k (0..n-1): each keeps the origins that hash to
its k, in its own data dir, with its own consumer (<consumer>-<k>-of-<n>).

Metrics on TAILSEAL_LISTEN (/metrics, /healthz, /readyz). One collector per
data dir. Stops cleanly on SIGTERM or SIGINT. See README.md, "Collect".
`)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tailseal collect: unexpected argument %q; see tailseal collect --help\n", fs.Arg(0))
		return errUsage
	}
	cfg, err := loadConfig(flags)
	if err != nil {
		return err
	}
	if err := cfg.CheckCollect(); err != nil {
		fmt.Fprintln(os.Stderr, "tailseal:", err)
		return errUsage
	}
	log := newLogger(cfg.LogLevel)
	c, err := collect.New(collect.Options{Config: cfg, Logger: log})
	if err != nil {
		log.Error("cannot start", "error", err)
		if errors.Is(err, lock.ErrHeld) || errors.Is(err, collect.ErrAssignment) || errors.Is(err, config.ErrInvalid) {
			return errUsage
		}
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collectors()...)
	reg.MustRegister(buildInfo(""))
	if cfg.Listen != "" {
		srv, err := httpapi.Start(cfg.Listen, reg, c.Ready, log)
		if err != nil {
			log.Error("cannot listen", "addr", cfg.Listen, "error", err)
			return fmt.Errorf("%w: TAILSEAL_LISTEN %s: %w", errUsage, cfg.Listen, err)
		}
		defer srv.Shutdown()
	}
	log.Info("collect started", "version", version, "data_dir", cfg.DataDir, "stream", cfg.NATSStream, "consumer", collect.ConsumerName(cfg),
		"partition", cfg.CollectPartition, "partitions", cfg.CollectPartitions)
	if err := c.Run(ctx); err != nil {
		log.Error("collect stopped with an error", "error", err)
		if errors.Is(err, config.ErrInvalid) {
			return errUsage
		}
		return err
	}
	log.Info("collect stopped")
	return nil
}

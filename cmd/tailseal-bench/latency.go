package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/config"
)

// latency runs the agent in this process with its default settings, has a
// writer append rate lines a second for d, one write() per line, and times
// each line from just before its write() to the end of the group commit
// (fsync) that made it durable, reported by the agent's OnDurable hook.
func latency(rate int, d time.Duration) error {
	dir, err := os.MkdirTemp("", "tailseal-latency")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Setenv("TAILSEAL_SOURCE", filepath.Join(dir, "logs", "audit.log"))
	os.Setenv("TAILSEAL_DATA_DIR", filepath.Join(dir, "data"))
	os.Setenv("TAILSEAL_LISTEN", "")
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	a, err := agent.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer a.Close()
	n := int(float64(rate) * d.Seconds())
	written := make([]atomic.Int64, n) // UnixNano just before write()
	lat := make([]time.Duration, n)
	var done uint64
	allDone := make(chan struct{})
	a.OnDurable = func(lines uint64) {
		now := time.Now().UnixNano()
		for ; done < lines && done < uint64(n); done++ {
			lat[done] = time.Duration(now - written[done].Load())
		}
		if done == uint64(n) {
			select {
			case <-allDone:
			default:
				close(allDone)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	<-a.Ready()

	f, err := os.OpenFile(cfg.Source, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	wrote, err := writeAtRate(f, written, rate)
	f.Close()
	if err != nil {
		return err
	}
	select {
	case <-allDone:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("only %d of %d lines became durable", done, n)
	}
	cancel()
	if err := <-runErr; err != nil {
		return err
	}
	printLatency(lat, wrote)
	return nil
}

// writeAtRate appends len(written) benchmark lines to f at rate lines a
// second, evenly, one write() per line, noting when each was written.
func writeAtRate(f *os.File, written []atomic.Int64, rate int) (time.Duration, error) {
	n := len(written)
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = []byte(benchdata.Line(i) + "\n")
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	perTick := max(rate/1000, 1)
	for i := 0; i < n; {
		<-tick.C
		// Catch up to the schedule: rate lines a second, evenly.
		due := min(int(float64(rate)*time.Since(start).Seconds())+perTick, n)
		for ; i < due; i++ {
			written[i].Store(time.Now().UnixNano())
			if _, err := f.Write(lines[i]); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}

// printLatency prints the percentiles of lat, the lines' latencies.
func printLatency(lat []time.Duration, wrote time.Duration) {
	n := len(lat)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(int(p/100*float64(n)), n-1)] }
	fmt.Printf("latency: %d lines in %.1fs (%.0f lines/s), one write() each; write() to fsync of the group commit:\n",
		n, wrote.Seconds(), float64(n)/wrote.Seconds())
	fmt.Printf("  p50 %.2f ms   p99 %.2f ms   p99.9 %.2f ms   max %.2f ms\n",
		ms(pct(50)), ms(pct(99)), ms(pct(99.9)), ms(lat[n-1]))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

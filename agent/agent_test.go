package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/signer/pii"
)

// BenchmarkIngest runs the whole pipeline in-process (tail, parse, sign,
// store with fsync) over a pre-written file, until every line is durable.
func BenchmarkIngest(b *testing.B) {
	const n = 200000
	dir := b.TempDir()
	src := filepath.Join(dir, "audit.log")
	// Streamed to the file: 100 MB built in memory would be most of the
	// profile (its copies, and the GC waiting to preempt them).
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		w.WriteString(benchdata.Line(i))
		w.WriteByte('\n')
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"hash", "off"} {
		b.Run("pii="+mode, func(b *testing.B) {
			b.SetBytes(st.Size())
			for i := 0; b.Loop(); i++ {
				cfg := &config.Config{Source: src, DataDir: filepath.Join(dir, fmt.Sprint("data-", mode, i)), SegmentMaxMB: 50,
					SegmentMaxAge: time.Hour, CommitInterval: 5 * time.Millisecond, MaxLineBytes: 1 << 20, PollInterval: time.Second,
					Epoch: time.Hour, CheckpointEvery: 10000, CheckpointInterval: time.Minute, Origin: "bench", LogLevel: "error",
					PIIMode: mode, PIIFields: pii.DefaultAlways, PIIKeepFields: pii.DefaultNever}
				a, err := New(cfg, slog.New(slog.DiscardHandler))
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- a.Run(ctx) }()
				for a.Store().Durable() < n {
					<-a.Store().Changed()
				}
				cancel()
				if err := errors.Join(<-done, a.Close()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

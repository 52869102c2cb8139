package collect

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tailseal/tailseal/agent/collect/collecttest"
	"github.com/tailseal/tailseal/agent/config"
)

// BenchmarkCollect measures the collector's throughput: 4 origins of
// 50,000 records each (about 250 bytes) already in the stream, consumed
// into their stores by one collector in this process with the default
// batch (1000), each batch fsynced before it is acknowledged. The server
// is embedded, so it shares the machine's cores. Run:
//
//	go test -run '^$' -bench Collect -benchtime 3x ./agent/collect
func BenchmarkCollect(b *testing.B) {
	const origins, perOrigin = 4, 50000
	lines := map[string][][]byte{}
	for i := range origins {
		o := fmt.Sprintf("bench-%d", i)
		lines[o] = chain(o, perOrigin)
	}
	var total time.Duration
	for range b.N {
		b.StopTimer()
		srv := collecttest.StartServer(b)
		js := srv.Connect(b)
		collecttest.CreateStream(b, js, "TAILSEAL")
		for o, l := range lines {
			collecttest.Publish(b, js, o, l)
		}
		cfg := &config.Config{NATSURL: srv.URL, NATSStream: "TAILSEAL", DataDir: b.TempDir(), CollectConsumer: "bench", CollectBatch: 1000,
			CollectAckWait: time.Minute, CollectPartitions: 1}
		c, err := New(Options{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- c.Run(ctx) }()
		for o := range lines {
			for testutil.ToFloat64(c.m.lastSeq.WithLabelValues(o)) < perOrigin {
				time.Sleep(5 * time.Millisecond)
			}
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(origins*perOrigin*b.N)/total.Seconds(), "records/s")
}

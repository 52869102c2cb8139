package nats_test

import (
	"testing"
	"time"

	"github.com/tailseal/tailseal/sinks/nats/natstest"
)

// BenchmarkPublish publishes b.N stored records through the runner and
// the sink into embedded servers (their CPU is in the figures too): one
// server with an R1 stream, and a 3-node cluster with an R3 stream.
//
//	go test -run '^$' -bench Publish -benchtime 200000x ./sinks/nats
func BenchmarkPublish(b *testing.B) {
	b.Run("R1", func(b *testing.B) {
		benchPublish(b, natstest.Start(b, b.TempDir()).URL(), 1)
	})
	b.Run("R3", func(b *testing.B) {
		benchPublish(b, natstest.URLs(natstest.Cluster(b, 3)), 3)
	})
}

func benchPublish(b *testing.B, url string, replicas int) {
	st := storeOf(0, "a")
	for i := uint64(1); i <= uint64(b.N); i++ {
		st.Append(line(i, "a"))
	}
	opt := options(url, "bench")
	opt.Replicas = replicas
	b.ResetTimer()
	start := time.Now()
	a := run(b, opt, st, b.TempDir())
	for a.runner.Keep() <= uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

package nats_test

import (
	"testing"
	"time"

	"github.com/tailseal/tailseal/sinks/nats/natstest"
)

// BenchmarkPublish publishes b.N stored records through the runner and
// the sink into an embedded server (its CPU is in the profile too).
func BenchmarkPublish(b *testing.B) {
	srv := natstest.Start(b, b.TempDir())
	st := storeOf(0, "a")
	for i := uint64(1); i <= uint64(b.N); i++ {
		st.Append(line(i, "a"))
	}
	b.ResetTimer()
	start := time.Now()
	a := run(b, options(srv.URL(), "bench"), st, b.TempDir())
	for a.runner.Keep() <= uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

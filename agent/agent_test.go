package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/signer/pii"
)

var benchTypes = []string{"lead_ingested", "crm_write", "email_sent", "workflow_started", "performance", "error"}

// benchLine is the n-th line: like cmd/tailseal-bench, personal data in half.
func benchLine(n int) string {
	details := fmt.Sprintf(`"source":"web_form","campaign":"spring_2026","duration_ms":%d,"status":"ok"`, n%900+20)
	if n%2 == 0 {
		details = fmt.Sprintf(`"source":"web_form","email":"lead%d@example.com","phone":"+1 555 %03d %04d","ip":"203.0.%d.%d","duration_ms":%d`,
			n%50000, n%1000, n%10000, n%256, (n/256)%256, n%900+20)
	}
	return fmt.Sprintf(`{"timestamp":"2026-02-04T20:%02d:%02d.%06dZ","event_type":"%s","actor":"system","lead_id":"LEAD-%07d","workflow":"sales_lead_management","details":{%s}}`,
		n/60000%60, n/1000%60, n%1000000, benchTypes[n%len(benchTypes)], n, details)
}

// BenchmarkIngest runs the whole pipeline in-process (tail, parse, sign,
// store with fsync) over a pre-written file, until every line is durable.
func BenchmarkIngest(b *testing.B) {
	const n = 200000
	dir := b.TempDir()
	src := filepath.Join(dir, "audit.log")
	var sb strings.Builder
	for i := range n {
		sb.WriteString(benchLine(i) + "\n")
	}
	os.WriteFile(src, []byte(sb.String()), 0o644)
	for _, mode := range []string{"hash", "off"} {
		b.Run("pii="+mode, func(b *testing.B) {
			b.SetBytes(int64(sb.Len()))
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
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

package agent

import (
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/pii"
)

// collector exports the agent's counters at scrape time, read from the
// same atomics the pipeline updates, so nothing is counted twice.
type collector struct {
	a     *Agent
	descs map[string]*prometheus.Desc
	pii   *prometheus.Desc
	fsync prometheus.Histogram
}

var metricHelp = map[string]string{
	"tailseal_source_lines_read_total":       "Complete lines read from the source.",
	"tailseal_source_bytes_read_total":       "Bytes read from the source, newlines included.",
	"tailseal_source_rotations_total":        "Source rotations followed (rename or re-creation).",
	"tailseal_source_truncations_total":      "Source truncations detected (copytruncate or truncate).",
	"tailseal_source_notify_overflows_total": "File notification queue overflows (a rescan follows).",
	"tailseal_source_lag_bytes":              "Bytes in the source not yet read.",
	"tailseal_source_lag_seconds":            "Seconds since the reader was last caught up with the source (0 when caught up).",
	"tailseal_events_stored_total":           "Records made durable in the store.",
	"tailseal_events_malformed_total":        "Source lines stored as malformed events.",
	"tailseal_store_append_errors_total":     "Failed store writes or fsyncs (ingestion paused and retried).",
	"tailseal_seals_total":                   "Epoch seal records written.",
	"tailseal_checkpoints_total":             "Signed checkpoints written.",
	"tailseal_store_durable_seq":             "Seq of the last durable record.",
	"tailseal_store_segments":                "Segment files in the store.",
	"tailseal_store_bytes":                   "Bytes of all segment files on disk.",
	"tailseal_pii_fields_replaced_total":     "Field values replaced whole by a PII field rule.",
}

func newCollector(a *Agent) *collector {
	c := &collector{a: a, descs: map[string]*prometheus.Desc{}}
	for name, help := range metricHelp {
		c.descs[name] = prometheus.NewDesc(name, help, nil, nil)
	}
	c.pii = prometheus.NewDesc("tailseal_pii_replacements_total", "Personal data values replaced, by detector (never the values).", []string{"detector"}, nil)
	c.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tailseal_store_fsync_duration_seconds",
		Help:    "Time one group commit (fsync of the active segment) takes.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	return c
}

// Collector returns the agent's Prometheus collector.
func (a *Agent) Collector() prometheus.Collector { return a.metrics }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.pii
	c.fsync.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	t := &a.tail.Stats
	counter := func(name string, v uint64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v))
	}
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v)
	}
	counter("tailseal_source_lines_read_total", t.Lines.Load())
	counter("tailseal_source_bytes_read_total", t.Bytes.Load())
	counter("tailseal_source_rotations_total", t.Rotations.Load())
	counter("tailseal_source_truncations_total", t.Truncations.Load())
	counter("tailseal_source_notify_overflows_total", t.Overflows.Load())
	lagBytes, behindSince := a.tail.Lag()
	gauge("tailseal_source_lag_bytes", float64(lagBytes))
	lagSeconds := 0.0
	if lagBytes > 0 && !behindSince.IsZero() {
		lagSeconds = time.Since(behindSince).Seconds()
	}
	gauge("tailseal_source_lag_seconds", lagSeconds)
	counter("tailseal_events_stored_total", a.Stats.Stored.Load())
	counter("tailseal_events_malformed_total", a.Stats.Malformed.Load())
	counter("tailseal_store_append_errors_total", a.Stats.AppendErrors.Load())
	counter("tailseal_seals_total", a.Stats.Seals.Load())
	counter("tailseal_checkpoints_total", a.Stats.Checkpoints.Load())
	gauge("tailseal_store_durable_seq", float64(a.store.Durable()))
	dir := filepath.Join(a.cfg.DataDir, StoreDir)
	segs, _ := store.List(dir)
	var size int64
	for _, s := range segs {
		if fi, err := os.Stat(filepath.Join(dir, s.Name)); err == nil {
			size += fi.Size()
		}
	}
	gauge("tailseal_store_segments", float64(len(segs)))
	gauge("tailseal_store_bytes", float64(size))
	for k, name := range pii.Detectors {
		ch <- prometheus.MustNewConstMetric(c.pii, prometheus.CounterValue, float64(a.pii.Replaced[k].Load()), name)
	}
	counter("tailseal_pii_fields_replaced_total", a.pii.Fields.Load())
	c.fsync.Collect(ch)
}

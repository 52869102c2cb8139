package agent

import (
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/pii"
	"github.com/tailseal/tailseal/sinks/alert"
)

// collector exports the agent's counters at scrape time, read from the
// same atomics the pipeline updates, so nothing is counted twice.
type collector struct {
	a     *Agent
	descs map[string]*prometheus.Desc
	pii   *prometheus.Desc
	fsync prometheus.Histogram
	sink  map[string]*prometheus.Desc // labelled by sink (and reason, status)
}

var sinkHelp = map[string]struct {
	help   string
	labels []string
}{
	"tailseal_sink_delivered_records_total": {"Records delivered (or dead-lettered) by a sink.", []string{"sink"}},
	"tailseal_sink_batches_total":           {"Batches a sink delivered.", []string{"sink"}},
	"tailseal_sink_retries_total":           {"Retried attempts of a sink or alert channel, by reason (network, rate_limited, server_error).", []string{"sink", "reason"}},
	"tailseal_sink_dead_letters_total":      {"Payloads refused for good and written to state/deadletter-*.jsonl.", []string{"sink"}},
	"tailseal_sink_cursor_lag_records":      {"Stored records a sink has not delivered yet.", []string{"sink"}},
	"tailseal_sink_stopped":                 {"1 when a sink or alert channel stopped on 401, 403, 404 or 410 (or a mail server without TLS).", []string{"sink"}},
	"tailseal_alerts_total":                 {"Alert notifications raised, by status (firing, still firing, resolved).", []string{"status"}},
	"tailseal_alert_notifications_total":    {"Alert notifications handed to a channel, by result (delivered, dead_lettered).", []string{"result"}},
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
	c.sink = map[string]*prometheus.Desc{}
	for name, h := range sinkHelp {
		c.sink[name] = prometheus.NewDesc(name, h.help, h.labels, nil)
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
	for _, d := range c.sink {
		ch <- d
	}
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
	c.collectSinks(ch)
	c.fsync.Collect(ch)
}

func (c *collector) collectSinks(ch chan<- prometheus.Metric) {
	set := c.a.sinks
	metric := func(name string, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.sink[name], t, v, labels...)
	}
	durable := c.a.store.Durable()
	for _, r := range set.runners {
		name := r.Name()
		metric("tailseal_sink_delivered_records_total", prometheus.CounterValue, float64(r.Stats.Delivered.Load()), name)
		metric("tailseal_sink_batches_total", prometheus.CounterValue, float64(r.Stats.Batches.Load()), name)
		lag := 0.0
		if cur := r.Stats.Cursor.Load(); cur < durable {
			lag = float64(durable - cur)
		}
		metric("tailseal_sink_cursor_lag_records", prometheus.GaugeValue, lag, name)
		metric("tailseal_sink_stopped", prometheus.GaugeValue, boolValue(r.Stats.Stopped.Load()), name)
	}
	for _, h := range set.hooks {
		metric("tailseal_sink_dead_letters_total", prometheus.CounterValue, float64(h.DeadLetters.Load()), h.Name())
	}
	for name, rc := range set.retries {
		metric("tailseal_sink_retries_total", prometheus.CounterValue, float64(rc.Network.Load()), name, "network")
		metric("tailseal_sink_retries_total", prometheus.CounterValue, float64(rc.RateLimited.Load()), name, "rate_limited")
		metric("tailseal_sink_retries_total", prometheus.CounterValue, float64(rc.ServerError.Load()), name, "server_error")
	}
	if e := set.alerts; e != nil {
		for _, status := range []string{alert.Firing, alert.StillFiring, alert.Resolved} {
			metric("tailseal_alerts_total", prometheus.CounterValue, float64(e.FiredCount(status)), status)
		}
		metric("tailseal_alert_notifications_total", prometheus.CounterValue, float64(e.Delivered.Load()), "delivered")
		metric("tailseal_alert_notifications_total", prometheus.CounterValue, float64(e.DeadLetters.Load()), "dead_lettered")
		metric("tailseal_sink_dead_letters_total", prometheus.CounterValue, float64(e.DeadLetters.Load()), "alerts")
		for _, ch := range e.Channels() {
			metric("tailseal_sink_stopped", prometheus.GaugeValue, boolValue(e.Stopped(ch)), "alerts-"+ch)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

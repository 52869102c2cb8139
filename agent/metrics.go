package agent

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/signer/pii"
	"golang.org/x/sys/unix"
)

// The agent's metrics are typed collectors: the fsync histogram, observed
// at each group commit, and the rest read at scrape time from the counters
// the pipeline keeps anyway (Stats, the tailer's, the store's, the
// anonymizer's), so nothing is counted twice. The program registers them.

func newFsyncHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tailseal_store_fsync_duration_seconds",
		Help:    "Time one group commit (fsync of the active segment) takes.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
}

func counter(name, help string, v func() uint64) prometheus.CounterFunc {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
}

func gauge(name, help string, v func() float64) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v)
}

// Collectors returns the agent's metrics, to be registered once.
func (a *Agent) Collectors() []prometheus.Collector {
	cs := append(append(a.sourceCollectors(), a.storeCollectors()...), a.piiCollectors()...)
	if a.witness != nil {
		cs = append(cs, a.witness.Collectors()...)
	}
	return cs
}

func (a *Agent) sourceCollectors() []prometheus.Collector {
	t := &a.tail.Stats
	return []prometheus.Collector{
		counter("tailseal_source_lines_read_total", "Complete lines read from the source.", t.Lines.Load),
		counter("tailseal_source_bytes_read_total", "Bytes read from the source, newlines included.", t.Bytes.Load),
		counter("tailseal_source_rotations_total", "Source rotations followed (rename or re-creation).", t.Rotations.Load),
		counter("tailseal_source_truncations_total", "Source truncations detected (copytruncate or truncate).", t.Truncations.Load),
		counter("tailseal_source_notify_overflows_total", "File notification queue overflows (a rescan follows).", t.Overflows.Load),
		gauge("tailseal_source_lag_bytes", "Bytes in the source not yet read.", func() float64 {
			lagBytes, _ := a.tail.Lag()
			return float64(lagBytes)
		}),
		gauge("tailseal_source_lag_seconds", "Seconds since the reader was last caught up with the source (0 when caught up).", func() float64 {
			lagBytes, behindSince := a.tail.Lag()
			if lagBytes > 0 && !behindSince.IsZero() {
				return time.Since(behindSince).Seconds()
			}
			return 0
		}),
	}
}

func (a *Agent) storeCollectors() []prometheus.Collector {
	s := &a.Stats
	return []prometheus.Collector{
		counter("tailseal_events_stored_total", "Records made durable in the store.", s.Stored.Load),
		counter("tailseal_events_malformed_total", "Source lines stored as malformed events.", s.Malformed.Load),
		counter("tailseal_store_append_errors_total", "Failed store writes or fsyncs (ingestion paused and retried).", s.AppendErrors.Load),
		counter("tailseal_seals_total", "Epoch seal records written.", s.Seals.Load),
		counter("tailseal_checkpoints_total", "Signed checkpoints written.", s.Checkpoints.Load),
		gauge("tailseal_store_durable_seq", "Seq of the last durable record.", func() float64 { return float64(a.store.Durable()) }),
		gauge("tailseal_store_segments", "Segment files in the store.", func() float64 { return float64(a.store.Segments()) }),
		gauge("tailseal_store_bytes", "Bytes of all segment files on disk.", func() float64 { return float64(a.store.Bytes()) }),
		counter("tailseal_store_restored_total", "Active segments deleted under the agent and written back from the open file.", a.store.Restored.Load),
		gauge("tailseal_store_paused", "1 while ingestion is paused because the store cannot write (a full disk).", func() float64 {
			if a.paused.Load() {
				return 1
			}
			return 0
		}),
		a.fsync,
		a.types,
		gauge("tailseal_data_dir_available_bytes", "Bytes free for the agent on the data dir's filesystem (statfs); the store pauses when it is full.",
			func() float64 { free, _ := diskSpace(a.cfg.DataDir); return free }),
		gauge("tailseal_data_dir_capacity_bytes", "Size of the data dir's filesystem (statfs).",
			func() float64 { _, size := diskSpace(a.cfg.DataDir); return size }),
	}
}

// diskSpace is what statfs says of dir's filesystem: the bytes an
// unprivileged writer may still use, and its size; NaN when it cannot
// tell (the directory is gone).
func diskSpace(dir string) (free, size float64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return math.NaN(), math.NaN()
	}
	return float64(st.Bavail) * float64(st.Bsize), float64(st.Blocks) * float64(st.Bsize)
}

func (a *Agent) piiCollectors() []prometheus.Collector {
	cs := []prometheus.Collector{
		counter("tailseal_pii_fields_replaced_total", "Field values replaced whole by a PII field rule.", a.pii.Fields.Load),
	}
	if a.pii.Mode() == pii.Hash {
		configured := 0.0
		if a.cfg.PIIKey != "" { // TAILSEAL_PII_KEY or _FILE
			configured = 1
		}
		cs = append(cs, gauge("tailseal_pii_key_configured",
			"1 when the pseudonymization key comes from TAILSEAL_PII_KEY or _FILE; 0 when the agent uses keys/pii.key, made on this host "+
				"on first start (lost with the data dir, and another on every pod). Only in TAILSEAL_PII_MODE=hash.",
			func() float64 { return configured }))
	}
	for k, name := range pii.Detectors {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tailseal_pii_replacements_total",
			Help:        "Personal data values replaced, by detector (never the values).",
			ConstLabels: prometheus.Labels{"detector": name},
		}, func() float64 { return float64(a.pii.Replaced[k].Load()) }))
	}
	return cs
}

package sinks

import "github.com/prometheus/client_golang/prometheus"

// Metrics of sinks, read at scrape time from the atomics the runner and
// the HTTP client update, so nothing is counted twice. Every metric is
// labelled with the sink it counts; the program registers them.

// Collectors are the runner's metrics. durable is the store's last
// durable seq, for the cursor lag.
func (r *Runner) Collectors(durable func() uint64) []prometheus.Collector {
	sink := prometheus.Labels{"sink": r.Name()}
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tailseal_sink_delivered_records_total",
			Help:        "Records delivered (or dead-lettered) by a sink.",
			ConstLabels: sink,
		}, func() float64 { return float64(r.Stats.Delivered.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tailseal_sink_batches_total",
			Help:        "Batches a sink delivered.",
			ConstLabels: sink,
		}, func() float64 { return float64(r.Stats.Batches.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tailseal_sink_cursor_lag_records",
			Help:        "Stored records a sink has not delivered yet.",
			ConstLabels: sink,
		}, func() float64 {
			if d, cur := durable(), r.Stats.Cursor.Load(); cur < d {
				return float64(d - cur)
			}
			return 0
		}),
		StoppedGauge(r.Name(), r.Stats.Stopped.Load),
	}
	if _, ok := r.sink.(Resumer); ok {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tailseal_sink_resumes_total",
			Help:        "Deliveries refused because the receiver held other records than expected, or seemed changed (JetStream: wrong last sequence, duplicate, no stream answering), after which the sink read again what the receiver holds.",
			ConstLabels: sink,
		}, func() float64 { return float64(r.Stats.Resumes.Load()) }))
	}
	return cs
}

// StoppedGauge is tailseal_sink_stopped for one sink or alert channel.
func StoppedGauge(sink string, stopped func() bool) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "tailseal_sink_stopped",
		Help:        "1 when a sink or alert channel stopped on 401, 403, 404 or 410 (or a mail server without TLS).",
		ConstLabels: prometheus.Labels{"sink": sink},
	}, func() float64 {
		if stopped() {
			return 1
		}
		return 0
	})
}

// DeadLettersCounter is tailseal_sink_dead_letters_total for one sink.
func DeadLettersCounter(sink string, n func() uint64) prometheus.CounterFunc {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        "tailseal_sink_dead_letters_total",
		Help:        "Payloads refused for good and written to state/deadletter-*.jsonl.",
		ConstLabels: prometheus.Labels{"sink": sink},
	}, func() float64 { return float64(n()) })
}

// Collectors are the retried attempts of a sink or alert channel, by
// reason.
func (rc *RetryCounts) Collectors(sink string) []prometheus.Collector {
	counter := func(reason string, n func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tailseal_sink_retries_total",
			Help:        "Retried attempts of a sink or alert channel, by reason (network, rate_limited, server_error, redirect).",
			ConstLabels: prometheus.Labels{"sink": sink, "reason": reason},
		}, func() float64 { return float64(n()) })
	}
	return []prometheus.Collector{
		counter("network", rc.Network.Load),
		counter("rate_limited", rc.RateLimited.Load),
		counter("server_error", rc.ServerError.Load),
		counter("redirect", rc.Redirect.Load),
	}
}

package alert

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/sinks"
)

// Collectors are the engine's metrics (its runner has the others), read
// at scrape time from the engine's counters.
func (e *Engine) Collectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, status := range []string{Firing, StillFiring, Resolved} {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tailseal_alerts_total",
			Help:        "Alert notifications raised, by status (firing, still firing, resolved).",
			ConstLabels: prometheus.Labels{"status": status},
		}, func() float64 { return float64(e.FiredCount(status)) }))
	}
	var deadLetters []func() uint64
	for _, ch := range e.Channels() {
		n := e.counts[ch]
		for result, v := range map[string]*atomic.Uint64{"delivered": &n.Delivered, "refreshed": &n.Refreshed, "dead_lettered": &n.DeadLettered} {
			cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "tailseal_alert_notifications_total",
				Help: "Alert notifications handed to a channel, by channel and result (delivered; refreshed: a firing alert " +
					"sent again to Alertmanager so that it does not resolve it; dead_lettered).",
				ConstLabels: prometheus.Labels{"channel": ch, "result": result},
			}, func() float64 { return float64(v.Load()) }))
		}
		deadLetters = append(deadLetters, n.DeadLettered.Load)
		cs = append(cs, sinks.StoppedGauge("alerts-"+ch, func() bool { return e.Stopped(ch) }))
	}
	cs = append(cs, sinks.DeadLettersCounter(e.Name(), func() uint64 {
		var total uint64
		for _, n := range deadLetters {
			total += n()
		}
		return total
	}))
	return cs
}

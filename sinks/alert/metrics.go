package alert

import (
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
	for result, n := range map[string]func() uint64{"delivered": e.Delivered.Load, "dead_lettered": e.DeadLetters.Load} {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tailseal_alert_notifications_total",
			Help:        "Alert notifications handed to a channel, by result (delivered, dead_lettered).",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 { return float64(n()) }))
	}
	cs = append(cs, sinks.DeadLettersCounter(e.Name(), e.DeadLetters.Load))
	for _, ch := range e.Channels() {
		cs = append(cs, sinks.StoppedGauge("alerts-"+ch, func() bool { return e.Stopped(ch) }))
	}
	return cs
}

package agent

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/signer/record"
)

// Labels of tailseal_events_by_type_total besides the types'.
const (
	OtherType = "other"   // the types counted together
	NoType    = "(empty)" // events without a type
	// maxTypeBytes is the longest type with a label of its own.
	maxTypeBytes = 128
)

// eventTypes counts the stored events by type, for
// tailseal_events_by_type_total, in a bounded number of series: the
// configured types (TAILSEAL_METRIC_TYPES), or else the first max types
// seen, each under its own label; every other type under OtherType. An
// application controls its types, and a series per type without a bound
// would let it grow the metrics without end.
type eventTypes struct {
	mu     sync.Mutex
	fixed  bool // only the configured types have a label of their own
	max    int
	counts map[string]uint64 // by label
	desc   *prometheus.Desc
}

func newEventTypes(configured []string, max int) *eventTypes {
	e := &eventTypes{fixed: len(configured) > 0, max: max, counts: map[string]uint64{OtherType: 0},
		desc: prometheus.NewDesc("tailseal_events_by_type_total",
			"Source events stored, by event type: the types of TAILSEAL_METRIC_TYPES, or else the first 20 seen; the rest as other.",
			[]string{"type"}, nil)}
	for _, t := range configured {
		e.counts[t] = 0 // a series from the start, for dashboards and rates
	}
	return e
}

// add counts what one batch stored: n events of each type, by the type's
// raw JSON string content.
func (e *eventTypes) add(batch map[string]*uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, raw := range slices.Sorted(maps.Keys(batch)) { // which new type takes the last label must not be chance
		n := batch[raw]
		t := strings.ToValidUTF8(record.Text([]byte(raw)), "\uFFFD")
		if t == "" {
			t = NoType
		}
		if _, ok := e.counts[t]; !ok && (e.fixed || len(e.counts) > e.max || len(t) > maxTypeBytes) { // OtherType is one of counts
			t = OtherType
		}
		e.counts[t] += *n
	}
}

// Describe and Collect make it a prometheus.Collector.
func (e *eventTypes) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

func (e *eventTypes) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range slices.Sorted(maps.Keys(e.counts)) {
		if m, err := prometheus.NewConstMetric(e.desc, prometheus.CounterValue, float64(e.counts[t]), t); err == nil {
			ch <- m
		}
	}
}

// Count is what was counted under a label, for tests.
func (e *eventTypes) Count(label string) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[label]
}

package collect

import "github.com/prometheus/client_golang/prometheus"

// Kinds of findings: what arrived that the collector will not store as a
// continuation of an origin's chain (see origin.take).
const (
	FindingGap       = "gap"       // a seq after the next one: records are missing
	FindingChain     = "chain"     // the next seq, but its prev is not the hash of the stored record before it
	FindingFork      = "fork"      // a seq already stored, with other bytes
	FindingMalformed = "malformed" // not one stored line of the record layout
	FindingOrigin    = "origin"    // a genesis naming another origin than its subject
	FindingSubject   = "subject"   // a subject that names no origin
	FindingMsgID     = "msg_id"    // a Nats-Msg-Id that is not <origin>:<seq> of its body
)

// metrics are the collector's counters and gauges, labelled by origin
// where they are per origin. The program registers them (Collectors).
type metrics struct {
	records, duplicates, quarantined, unindexed *prometheus.CounterVec
	findings                                    *prometheus.CounterVec
	lastSeq, firstSeq, lag, halted              *prometheus.GaugeVec
	pending, ackPending                         prometheus.Gauge
	batches, otherPartition, redelivered        prometheus.Counter
	resets                                      prometheus.Counter
	batchSeconds                                prometheus.Histogram
}

func newMetrics() *metrics {
	perOrigin := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"origin"})
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"origin"})
	}
	return &metrics{
		records:     perOrigin("tailseal_collect_records_total", "Records appended to an origin's collected store."),
		duplicates:  perOrigin("tailseal_collect_duplicates_total", "Messages whose record the origin's store already holds, byte for byte (redeliveries): acknowledged and skipped."),
		quarantined: perOrigin("tailseal_collect_quarantined_total", "Messages written to an origin's quarantine.jsonl instead of its store."),
		unindexed:   perOrigin("tailseal_collect_unindexed_segments_total", "Collected segments kept out of store/index because they differ from the segment the agent's index record attests."),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tailseal_collect_findings_total",
			Help: "Continuity findings on arrival, by kind: gap, chain, fork, malformed, origin, subject, msg_id."}, []string{"origin", "kind"}),
		lastSeq:  gauge("tailseal_collect_last_seq", "Seq of the last durable record of an origin's collected store."),
		firstSeq: gauge("tailseal_collect_first_seq", "Seq the origin's collected store starts at (above 1 when the agent's retention came before the stream)."),
		lag:      gauge("tailseal_collect_lag_records", "Records of an origin in the stream after the last one collected."),
		halted:   gauge("tailseal_collect_halted", "1 while an origin's records go to quarantine after a gap or a broken chain."),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailseal_collect_consumer_pending_messages",
			Help: "Messages of the stream the durable consumer has not delivered yet (num_pending)."}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tailseal_collect_consumer_ack_pending_messages",
			Help: "Messages delivered to the collector and not acknowledged yet."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "tailseal_collect_batches_total", Help: "Group commits: messages appended, fsynced, then acknowledged."}),
		otherPartition: prometheus.NewCounter(prometheus.CounterOpts{Name: "tailseal_collect_other_partition_total",
			Help: "Messages of origins another collector keeps (TAILSEAL_COLLECT_PARTITION), acknowledged unread."}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "tailseal_collect_redelivered_total",
			Help: "Messages delivered again after the collector had handled them (skipped)."}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{Name: "tailseal_collect_consumer_resets_total",
			Help: "Times the consumer was reset to its first unacknowledged message, to be read in stream order again."}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tailseal_collect_batch_duration_seconds",
			Help: "Time one group commit takes, from the first message to the acknowledgement.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.records, m.duplicates, m.quarantined, m.unindexed, m.findings, m.lastSeq, m.firstSeq, m.lag, m.halted,
		m.pending, m.ackPending, m.batches, m.otherPartition, m.redelivered, m.resets, m.batchSeconds}
}

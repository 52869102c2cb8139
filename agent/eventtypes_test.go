package agent

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/tailseal/tailseal/signer/record"
)

// Without a configured list the first max types get a series each and
// the rest share "other"; with one, only the configured types do, from
// the start. No type, however long or odd, makes a series of its own
// past the bound.
func TestEventTypesBounded(t *testing.T) {
	batch := func(types ...string) map[string]*uint64 {
		m := map[string]*uint64{}
		for _, typ := range types {
			if m[typ] == nil {
				m[typ] = new(uint64)
			}
			*m[typ]++
		}
		return m
	}
	e := newEventTypes(nil, 3)
	e.add(batch("error", "error", "lead_ingested"))
	e.add(batch("", "signup", "caf\\u00e9", strings.Repeat("x", 200)))
	e.add(batch("error", "signup"))
	want := map[string]uint64{"error": 3, "lead_ingested": 1, NoType: 1, OtherType: 4}
	if got := collected(t, e); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first types seen: %v, want %v", got, want)
	}

	e = newEventTypes([]string{"error", "café"}, 20)
	if got := collected(t, e); fmt.Sprint(got) != fmt.Sprint(map[string]uint64{"error": 0, "café": 0, OtherType: 0}) {
		t.Errorf("configured, before any event: %v", got)
	}
	e.add(batch("error", "caf\\u00e9", "lead_ingested", ""))
	if got := collected(t, e); fmt.Sprint(got) != fmt.Sprint(map[string]uint64{"error": 1, "café": 1, OtherType: 2}) {
		t.Errorf("configured: %v", got)
	}
}

// collected is what e exports, by type label.
func collected(t *testing.T, c prometheus.Collector) map[string]uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	return family(t, reg, "tailseal_events_by_type_total", "type")
}

// family is a gathered metric's values by one label's value.
func family(t *testing.T, reg *prometheus.Registry, name, label string) map[string]uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelValue(m, label)] = uint64(value(m))
		}
	}
	return out
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// The running agent counts what it stores by type, after anonymization,
// with the configured types; says whether the pseudonymization key is
// configured or made on this host; and how full the data dir's disk is.
func TestEventsByTypePIIKeyAndDiskMetrics(t *testing.T) {
	for _, configured := range []bool{true, false} {
		r := newRig(t, "")
		r.cfg.PIIMode, r.cfg.MetricTypes = "hash", []string{"error", "lead_ingested"}
		if configured {
			r.cfg.PIIKey = strings.Repeat("5a", 32)
		}
		r.start()
		lines := `{"event_type":"error","details":{"message":"boom for ann@example.com"}}
{"event_type":"error"}
{"event_type":"lead_ingested","details":{"email":"ann@example.com"}}
{"event_type":"signup"}
not json
`
		if err := os.WriteFile(r.cfg.Source, []byte(lines), 0o644); err != nil {
			t.Fatal(err)
		}
		for {
			changed := r.a.Store().Changed()
			n := 0
			for _, m := range r.records(r.a.Store().Durable()) {
				if !record.Internal([]byte(m.EventType)) {
					n++
				}
			}
			if n == 5 {
				break
			}
			r.wait(changed, "5 events stored")
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(r.a.Collectors()...)
		want := map[string]uint64{"error": 2, "lead_ingested": 1, OtherType: 2}
		if got := family(t, reg, "tailseal_events_by_type_total", "type"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("events by type %v, want %v", got, want)
		}
		wantKey := map[string]uint64{"": 0}
		if configured {
			wantKey[""] = 1
		}
		if got := family(t, reg, "tailseal_pii_key_configured", ""); fmt.Sprint(got) != fmt.Sprint(wantKey) {
			t.Errorf("key configured %v: tailseal_pii_key_configured %v", configured, got)
		}
		free, size := family(t, reg, "tailseal_data_dir_available_bytes", "")[""], family(t, reg, "tailseal_data_dir_capacity_bytes", "")[""]
		if free == 0 || size < free {
			t.Errorf("data dir: %d bytes available of %d", free, size)
		}
		r.stop()
	}
}

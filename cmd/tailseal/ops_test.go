package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
)

var listenRe = regexp.MustCompile(`"msg":"http endpoint listening","addr":"([^"]+)"`)

// endpoint returns the agent's HTTP address, read from its log.
func (p *proc) endpoint(t *testing.T) string {
	t.Helper()
	var addr string
	waitFor(t, "the http endpoint", 10*time.Second, func() bool {
		m := listenRe.FindStringSubmatch(p.stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return "http://" + addr
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func value(fams map[string]*dto.MetricFamily, name string) float64 {
	f, ok := fams[name]
	if !ok || len(f.Metric) == 0 {
		return -1
	}
	m := f.Metric[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestMetricsMove(t *testing.T) {
	e := newEnv(t, "TAILSEAL_LISTEN=127.0.0.1:0")
	p := e.start()
	url := p.endpoint(t)
	if status(url+"/healthz") != 200 {
		t.Fatal("/healthz is not 200")
	}
	w := newWriter(t, e.source)
	w.write(100)
	f, _ := os.OpenFile(e.source, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("not json\n")
	f.Close()
	waitFor(t, "101 events in the metrics", 10*time.Second, func() bool {
		return value(scrape(t, url), "tailseal_events_stored_total") >= 101
	})
	w.rename()
	w.write(10)
	waitFor(t, "the rotation in the metrics", 10*time.Second, func() bool {
		return value(scrape(t, url), "tailseal_source_rotations_total") == 1
	})
	fams := scrape(t, url)
	for name, want := range map[string]float64{
		"tailseal_source_lines_read_total": 111,
		"tailseal_events_malformed_total":  1,
		"tailseal_store_segments":          1,
	} {
		if got := value(fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"tailseal_store_fsync_duration_seconds", "tailseal_store_bytes", "tailseal_source_lag_bytes"} {
		if value(fams, name) < 0 {
			t.Errorf("%s missing", name)
		}
	}
	if value(fams, "tailseal_store_fsync_duration_seconds") < 1 {
		t.Error("no fsync observed")
	}
}

// /readyz is 503 while the agent recovers (here: reads the rest of a large
// file rotated while it was down) and 200 once it has caught up.
func TestReadyzDuringRecovery(t *testing.T) {
	e := newEnv(t, "TAILSEAL_LISTEN=127.0.0.1:0")
	p := e.start()
	w := newWriter(t, e.source)
	e.following(w)
	p.stop(t)
	behind := 300000
	if raceEnabled {
		behind = 30000
	}
	for range behind / 10000 {
		w.write(10000) // lines behind, in a file that is then rotated
	}
	w.rename()
	w.write(1)
	p = e.start()
	url := p.endpoint(t)
	saw503 := false
	waitFor(t, "/readyz 200", 60*time.Second, func() bool {
		code := status(url + "/readyz")
		saw503 = saw503 || code == 503
		return code == 200
	})
	if !saw503 {
		t.Error("/readyz never said 503 during recovery")
	}
	if got := len(readStore(t, e.dataDir).events()); got < behind+1 {
		t.Errorf("ready with %d events stored: the rotated file was not read first", got)
	}
	e.checkExactly(e.waitStored(w.next), w.next)
}

// SIGTERM while the agent is far behind stores the whole backlog the
// application wrote before it, ends the store with the stop record, and
// exits 0.
func TestSigtermDuringHeavyIngest(t *testing.T) {
	e := newEnv(t, "TAILSEAL_LISTEN=127.0.0.1:0")
	w := newWriter(t, e.source)
	total := 500000
	if raceEnabled {
		total = 50000
	}
	for range total / 10000 {
		w.write(10000)
	}
	p := e.start()
	url := p.endpoint(t)
	waitFor(t, "a tenth of the backlog stored", 30*time.Second, func() bool {
		return value(scrape(t, url), "tailseal_store_durable_seq") >= float64(total/10)
	})
	took, err := p.stop(t)
	if err != nil {
		t.Fatalf("SIGTERM during ingest: exit %v after %v, want 0", err, took)
	}
	s := readStore(t, e.dataDir)
	t.Logf("stopped after %v with %d of %d lines stored", took.Round(time.Millisecond), len(s.events()), w.next)
	e.checkExactly(s, w.next)
	if last := s.meta[len(s.meta)-1].EventType; last != record.TypeStop {
		t.Errorf("the store ends with a %q record, want %q", last, record.TypeStop)
	}
}

// No key material appears in the agent's log, whatever path it takes.
func TestNoSecretsInLogs(t *testing.T) {
	skey, _, err := signer.GenerateNoteKey("tailseal")
	if err != nil {
		t.Fatal(err)
	}
	hmacKey := strings.Repeat("5a", 32)
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"static key and checkpoint key from env", []string{"TAILSEAL_HMAC_KEY=" + hmacKey, "TAILSEAL_CHECKPOINT_KEY=" + skey}},
		{"generated keys", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.env...)
			p := e.start()
			w := newWriter(t, e.source)
			w.write(50)
			e.waitStored(50)
			p.stop(t)
			secrets := map[string]string{"static HMAC key": hmacKey, "checkpoint signer key": skey,
				"checkpoint signer key body": strings.TrimPrefix(skey, "PRIVATE+KEY+")}
			if k0, err := os.ReadFile(filepath.Join(e.dataDir, "keys", "verify.key")); err == nil {
				secrets["K0"] = strings.TrimSpace(string(k0))
			}
			if st, err := os.ReadFile(filepath.Join(e.dataDir, "state", "seal.json")); err == nil {
				var s struct{ Key string }
				json.Unmarshal(st, &s)
				secrets["current epoch key"] = s.Key
			}
			if pk, err := os.ReadFile(filepath.Join(e.dataDir, "keys", "pii.key")); err == nil {
				secrets["pseudonymization key"] = strings.TrimSpace(string(pk))
			}
			log := p.stderr.String()
			for name, s := range secrets {
				if i := strings.Index(log, s); s != "" && i >= 0 {
					// Name it and show where, without the secret itself.
					line := log[strings.LastIndexByte(log[:i], '\n')+1 : i]
					t.Errorf("the %s appears in the agent's stderr, in a line starting %.120q", name, line)
				}
			}
		})
	}
}

// Sink metrics: deliveries, retries by reason and cursor lag, per sink.
func TestSinkMetrics(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	e := newEnv(t, "TAILSEAL_LISTEN=127.0.0.1:0", "TAILSEAL_WEBHOOK_URLS="+srv.URL+"/hook", "TAILSEAL_RETRY_MAX_WAIT=1s")
	p := e.start()
	url := p.endpoint(t)
	newWriter(t, e.source).write(100)
	sink := func(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
		for _, m := range fams[name].GetMetric() {
			match := true
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				match = match && found
			}
			if match {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return -1
	}
	waitFor(t, "100 records delivered in the metrics", 20*time.Second, func() bool {
		return sink(scrape(t, url), "tailseal_sink_delivered_records_total", "sink", "webhook-1") >= 100
	})
	fams := scrape(t, url)
	if got := sink(fams, "tailseal_sink_retries_total", "sink", "webhook-1", "reason", "server_error"); got != 1 {
		t.Errorf("server_error retries = %v, want 1", got)
	}
	if got := sink(fams, "tailseal_sink_stopped", "sink", "webhook-1"); got != 0 {
		t.Errorf("stopped = %v", got)
	}
	if got := sink(fams, "tailseal_sink_cursor_lag_records", "sink", "webhook-1"); got < 0 || got > 2 {
		t.Errorf("cursor lag = %v after delivery (a checkpoint may still be on its way)", got)
	}
}

package main

import (
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/sinks/sinkstest"
)

// End to end with the real binary and a real Alertmanager: the agent
// raises the alert while Alertmanager is still down and delivers it once
// it is up (nothing lost); Alertmanager shows it under the labels that
// name it, with the link; a kill -9 and a restart while it fires neither
// duplicate nor resolve it; when the errors stop, the agent resolves it
// and Alertmanager notifies it resolved, ended in the past. The URL's
// credentials never reach the agent's stderr.
func TestAlertmanagerThroughKill9(t *testing.T) {
	port := sinkstest.FreePort(t)
	amURL := "http://tailseal:aM-pAsS-41@127.0.0.1:" + strconv.Itoa(port)
	e := newEnv(t, "TAILSEAL_ORIGIN=web-7", "TAILSEAL_ALERTMANAGER_URL="+amURL,
		"TAILSEAL_ALERT_LINK=https://grafana.example.com/d/tailseal?var-origin={origin}",
		"TAILSEAL_ALERT_THRESHOLD=10", "TAILSEAL_ALERT_WINDOW=4s", "TAILSEAL_ALERT_COOLDOWN=8s", "TAILSEAL_RETRY_MAX_WAIT=1s")
	var stderr []string
	p := e.start()
	waitFor(t, "the alert engine to start", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.dataDir, "state", "sink-alerts.json"))
		return err == nil
	})
	var lines []string
	for i := range 25 {
		lines = append(lines, errorLine(i))
	}
	appendLines(t, e.source, lines...)
	waitFor(t, "the alert queued for Alertmanager, which is down", 20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(e.dataDir, "state", "alerts.json"))
		return strings.Contains(string(b), `"channel":"alertmanager-1"`)
	})

	am := sinkstest.NewAlertmanager(t, sinkstest.AlertmanagerOptions{Port: port})
	host, _ := os.Hostname()
	want := map[string]string{"alertname": "error_threshold", "origin": "web-7", "severity": "critical", "instance": host}
	var got sinkstest.AMAlert
	waitFor(t, "the alert in Alertmanager once it is up", 30*time.Second, func() bool {
		alerts := am.Alerts()
		if len(alerts) == 1 {
			got = alerts[0]
		}
		return len(alerts) > 0
	})
	if !maps.Equal(got.Labels, want) {
		t.Errorf("labels %v, want %v", got.Labels, want)
	}
	if got.GeneratorURL != "https://grafana.example.com/d/tailseal?var-origin=web-7" || !strings.Contains(got.Annotations["summary"], "errors in 4s") ||
		!strings.Contains(got.Annotations["description"], "CRM timeout") || got.Annotations["first_event"] == "" || got.State() != "active" {
		t.Errorf("generatorURL %q, annotations %v, state %q", got.GeneratorURL, got.Annotations, got.State())
	}

	// kill -9 and a restart while it fires, errors still coming: one alert.
	p.kill9(t)
	stderr = append(stderr, p.stderr.String())
	p = e.start()
	appendLines(t, e.source, errorLine(100), errorLine(101))
	waitFor(t, "the alert engine to evaluate the new errors", 20*time.Second, func() bool {
		s := readStore(t, e.dataDir)
		return len(s.meta) > 0 && alertCursor(t, e.dataDir) >= s.meta[len(s.meta)-1].Seq
	})
	if alerts := am.Alerts(); len(alerts) != 1 || !alerts[0].StartsAt.Equal(got.StartsAt) {
		t.Fatalf("after kill -9 and restart: %+v, want the one alert, started %v", alerts, got.StartsAt)
	}

	// The errors stop: the window empties and the alert resolves.
	waitFor(t, "the alert resolved in Alertmanager", 30*time.Second, func() bool { return len(am.Alerts()) == 0 })
	var resolved *sinkstest.AMAlert
	waitFor(t, "Alertmanager's resolved notification", 20*time.Second, func() bool {
		for _, a := range am.Notified() {
			if a.NotifiedStatus() == "resolved" {
				resolved = &a
				return true
			}
		}
		return false
	})
	// The API gives times in milliseconds, notifications in nanoseconds.
	if !maps.Equal(resolved.Labels, want) || !resolved.EndsAt.Before(time.Now()) || !resolved.EndsAt.After(got.StartsAt) ||
		resolved.StartsAt.Sub(got.StartsAt).Abs() >= time.Millisecond {
		t.Errorf("resolved: labels %v, startsAt %v, endsAt %v", resolved.Labels, resolved.StartsAt, resolved.EndsAt)
	}
	if _, err := p.stop(t); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	stderr = append(stderr, p.stderr.String())
	for _, out := range stderr {
		if strings.Contains(out, "aM-pAsS-41") {
			t.Errorf("stderr contains the Alertmanager URL's password")
		}
	}
}

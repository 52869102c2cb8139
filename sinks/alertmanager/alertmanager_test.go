package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/alert"
	"github.com/tailseal/tailseal/sinks/sinkstest"
)

var fast = sinks.HTTPOptions{Timeout: 5 * time.Second, MinWait: 10 * time.Millisecond, MaxWait: time.Second}

func sample(origin, status string) alert.Alert {
	since := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	return alert.Alert{ID: "alert-3", Origin: origin, Host: "node-a", Rule: alert.RuleErrorThreshold, Status: status,
		Title: "At least 10 errors in 5m0s (threshold 10)", Text: "Rule error_threshold is " + status + ".", Count: 10, AtLeast: true,
		Window: "5m0s", First: "2026-02-04T20:30:45Z", Last: "2026-02-04T20:31:40Z", Since: since,
		Link: "https://grafana.example.com/d/tailseal?var-origin=" + origin, Recent: []string{"CRM timeout for <email:3f9a1c0b2d4e>"},
		Time: since.Add(30 * time.Second)}
}

// poll waits, up to 20 s, for cond: Alertmanager is another process, and
// its API the only way to see what it holds.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// find is the alert of origin that am holds as firing.
func find(am *sinkstest.Alertmanager, origin string) (sinkstest.AMAlert, bool) {
	for _, a := range am.Alerts() {
		if a.Labels["origin"] == origin {
			return a, true
		}
	}
	return sinkstest.AMAlert{}, false
}

// A firing alert shows in a real Alertmanager's API under the labels that
// name it, with its annotations, start and link; once resolved it is gone
// from the firing alerts, and Alertmanager notifies it resolved, ended
// when it resolved.
func TestFiringThenResolvedInAlertmanager(t *testing.T) {
	am := sinkstest.NewAlertmanager(t, sinkstest.AlertmanagerOptions{})
	n := New("alertmanager-1", am.URL+"/", fast) // a trailing slash is fine
	ctx := context.Background()
	firing := sample("web-1", alert.Firing)
	if err := n.Notify(ctx, firing); err != nil {
		t.Fatal(err)
	}
	var got sinkstest.AMAlert
	poll(t, "the alert in GET /api/v2/alerts", func() (ok bool) { got, ok = find(am, "web-1"); return ok })
	wantLabels := map[string]string{"alertname": "error_threshold", "origin": "web-1", "severity": "critical", "instance": "node-a"}
	if !maps.Equal(got.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", got.Labels, wantLabels)
	}
	if got.Annotations["summary"] != firing.Title || got.Annotations["count"] != "at least 10" || got.Annotations["window"] != "5m0s" ||
		got.Annotations["first_event"] != firing.First || got.Annotations["last_event"] != firing.Last {
		t.Errorf("annotations %v", got.Annotations)
	}
	for _, s := range []string{firing.Text, "Origin: web-1", "Host: node-a", "Rule: error_threshold", "Count: at least 10", "Window: 5m0s",
		"First event: " + firing.First, "Last event: " + firing.Last, "Started: " + firing.Since.Format(time.RFC3339), firing.Recent[0]} {
		if !strings.Contains(got.Annotations["description"], s) {
			t.Errorf("the description lacks %q:\n%s", s, got.Annotations["description"])
		}
	}
	if !got.StartsAt.Equal(firing.Since) || got.GeneratorURL != firing.Link || got.State() != "active" || !got.EndsAt.After(time.Now()) {
		t.Errorf("startsAt %v (want %v), generatorURL %q, state %q, endsAt %v", got.StartsAt, firing.Since, got.GeneratorURL, got.State(), got.EndsAt)
	}

	resolved := sample("web-1", alert.Resolved)
	resolved.Time = time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
	if err := n.Notify(ctx, resolved); err != nil {
		t.Fatal(err)
	}
	poll(t, "the alert gone from the firing ones", func() bool { _, ok := find(am, "web-1"); return !ok })
	var note sinkstest.AMAlert
	poll(t, "Alertmanager's resolved notification", func() bool {
		for _, a := range am.Notified() {
			if a.Labels["origin"] == "web-1" && a.NotifiedStatus() == "resolved" {
				note = a
				return true
			}
		}
		return false
	})
	if !note.EndsAt.Equal(resolved.Time) || !note.EndsAt.Before(time.Now()) || !note.StartsAt.Equal(firing.Since) || !maps.Equal(note.Labels, wantLabels) {
		t.Errorf("resolved: startsAt %v, endsAt %v (want %v, in the past), labels %v", note.StartsAt, note.EndsAt, resolved.Time, note.Labels)
	}
}

// Alertmanager resolves an alert that came without endsAt once its
// resolve_timeout passes without hearing of it again. The engine sends a
// firing alert again every RefreshEvery: an alert posted once is resolved,
// one the engine keeps refreshing still fires, under its first start.
func TestAlertmanagerRefreshKeepsItFiring(t *testing.T) {
	am := sinkstest.NewAlertmanager(t, sinkstest.AlertmanagerOptions{ResolveTimeout: 1500 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := New("alertmanager-1", am.URL, fast)
	n.Refresh = 200 * time.Millisecond
	e, err := alert.New(alert.Options{Origin: "refreshed", Host: "node-a", Threshold: 1, Window: time.Hour, Cooldown: time.Hour,
		StateDir: t.TempDir(), Log: slog.New(slog.DiscardHandler)}, []alert.Notifier{n})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	line := fmt.Appendf(nil, `{"seq":1,"timestamp":%q,"event_type":"error","actor":"","lead_id":"L","workflow":"w","details":{"message":"boom"},"source":{"file":"a","id":"x","offset":0,"length":1},"epoch":0,"prev":"","signature":"00"}`,
		time.Now().UTC().Format(time.RFC3339Nano))
	if err := e.Deliver(ctx, sinks.Batch{First: 1, Last: 1, Lines: [][]byte{line}}); err != nil {
		t.Fatal(err)
	}
	if err := New("once", am.URL, fast).Notify(ctx, sample("once", alert.Firing)); err != nil {
		t.Fatal(err)
	}
	var first sinkstest.AMAlert
	poll(t, "both alerts firing", func() bool {
		var ok1, ok2 bool
		first, ok1 = find(am, "refreshed")
		_, ok2 = find(am, "once")
		return ok1 && ok2
	})
	// The engine's ticker runs every 15 s at most; tick as it would, faster.
	poll(t, "the alert posted once resolved by resolve_timeout", func() bool {
		e.Tick()
		_, ok := find(am, "once")
		return !ok
	})
	got, ok := find(am, "refreshed")
	if !ok {
		t.Fatal("the refreshed alert was resolved too")
	}
	if !got.StartsAt.Equal(first.StartsAt) {
		t.Errorf("startsAt moved from %v to %v", first.StartsAt, got.StartsAt)
	}
	if _, refreshed, _ := e.Notifications("alertmanager-1"); refreshed == 0 {
		t.Error("no refresh counted")
	}
	cancel()
	<-done
}

// The alerts go to <base>/api/v2/alerts, a path prefix kept, as a JSON
// array; 400 is dead-lettered, 404 (a wrong base URL) stops the channel,
// and no error repeats the credentials of the URL.
func TestAlertmanagerAnswers(t *testing.T) {
	var path string
	var body []PostableAlert
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		path = r.URL.Path
		if user, pass, ok := r.BasicAuth(); !ok || user != "tailseal" || pass != "pAsS-77" {
			t.Errorf("basic auth %q %q %v", user, pass, ok)
		}
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("body %s: %v", b, err)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	base := strings.Replace(srv.URL, "http://", "http://tailseal:pAsS-77@", 1) + "/alertmanager"
	n := New("alertmanager-1", base, fast)
	ctx := context.Background()
	if err := n.Notify(ctx, sample("web-1", alert.Firing)); err != nil {
		t.Fatal(err)
	}
	if path != "/alertmanager/api/v2/alerts" || len(body) != 1 || !body[0].EndsAt.IsZero() || body[0].Labels["alertname"] != "error_threshold" {
		t.Errorf("path %q, body %+v", path, body)
	}
	status = http.StatusBadRequest
	var perm *sinks.Permanent
	if err := n.Notify(ctx, sample("web-1", alert.Firing)); !errors.As(err, &perm) || strings.Contains(err.Error(), "pAsS-77") {
		t.Errorf("400: %v, want a permanent error without the password", err)
	}
	status = http.StatusNotFound
	if err := n.Notify(ctx, sample("web-1", alert.Resolved)); !errors.Is(err, sinks.ErrStopped) || strings.Contains(err.Error(), "pAsS-77") {
		t.Errorf("404: %v, want the channel stopped, without the password", err)
	}
	if len(body) != 1 || body[0].EndsAt.IsZero() || body[0].EndsAt.Before(body[0].StartsAt) {
		t.Errorf("resolved: startsAt %v, endsAt %v", body[0].StartsAt, body[0].EndsAt)
	}
}

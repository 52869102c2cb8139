// Package alertmanager sends alerts to a Prometheus Alertmanager, as
// postable alerts of its API v2 (POST <base URL>/api/v2/alerts), so that
// it groups, routes, inhibits and silences them with the team's other
// alerts. An alert's identity there is its labels: alertname (the rule),
// origin, severity and instance (the host). A firing alert goes without
// endsAt and is sent again every RefreshEvery (see alert.Refresher), so
// that Alertmanager keeps it firing, and resolves it after its
// resolve_timeout only once the agent is gone; a resolved one carries
// endsAt, the time it resolved.
package alertmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/alert"
)

// APIPath is where alerts are posted, below the base URL.
const APIPath = "/api/v2/alerts"

// RefreshEvery is how often a firing alert is sent again: as Prometheus
// does (every minute), well inside Alertmanager's default resolve_timeout
// of 5m.
const RefreshEvery = time.Minute

// Notifier posts to one Alertmanager. Alertmanagers of one cluster each
// get their own Notifier (and so their own outbox): each must hear of
// every alert, and one that is down holds up no other.
type Notifier struct {
	name string
	http *sinks.HTTP
	// Refresh, if set before the engine runs, replaces RefreshEvery.
	Refresh time.Duration
}

var (
	_ alert.Notifier  = (*Notifier)(nil)
	_ alert.Refresher = (*Notifier)(nil)
)

// New returns a notifier named name for the Alertmanager at baseURL (its
// external URL, path prefix included; config.Validate checked it). The
// URL may carry basic-auth credentials: it never appears in logs or
// errors.
func New(name, baseURL string, opt sinks.HTTPOptions) *Notifier {
	return &Notifier{name: name, http: sinks.NewHTTP(name+" "+sinks.Describe(baseURL), strings.TrimRight(baseURL, "/")+APIPath, opt)}
}

func (n *Notifier) Name() string { return n.name }

// RefreshEvery is how often the engine sends a firing alert again.
func (n *Notifier) RefreshEvery() time.Duration {
	if n.Refresh > 0 {
		return n.Refresh
	}
	return RefreshEvery
}

// Retries are the endpoint's retried attempts.
func (n *Notifier) Retries() *sinks.RetryCounts { return &n.http.Retries }

// Collectors are the channel's metrics.
func (n *Notifier) Collectors() []prometheus.Collector { return n.http.Retries.Collectors(n.Name()) }

// PostableAlert is one alert of the API's body.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Postable is the alert as Alertmanager takes it. The labels name it;
// the annotations say what (summary: the title; description: the text,
// the facts and the recent errors; and the facts one by one).
func Postable(a alert.Alert) PostableAlert {
	p := PostableAlert{
		Labels: map[string]string{"alertname": a.Rule, "origin": a.Origin, "severity": a.Severity(), "instance": a.Host},
		Annotations: map[string]string{"summary": a.Title, "description": description(a), "count": fmt.Sprint(a.Count),
			"window": a.Window},
		StartsAt:     a.Since,
		GeneratorURL: a.Link,
	}
	if a.AtLeast {
		p.Annotations["count"] = "at least " + p.Annotations["count"]
	}
	if a.First != "" {
		p.Annotations["first_event"], p.Annotations["last_event"] = a.First, a.Last
	}
	if p.StartsAt.IsZero() { // queued by an agent that did not say
		p.StartsAt = a.Time
	}
	if a.Status == alert.Resolved {
		p.EndsAt = a.Time
	}
	return p
}

// description is the text, the facts and the recent errors, for the
// receivers whose templates show only the description.
func description(a alert.Alert) string {
	var b strings.Builder
	b.WriteString(a.Text)
	b.WriteString("\n")
	for _, f := range a.Facts() {
		if f.Name != alert.FactStatus && f.Name != alert.FactLink {
			fmt.Fprintf(&b, "\n%s: %s", f.Name, f.Value)
		}
	}
	if len(a.Recent) > 0 {
		b.WriteString("\n\nRecent errors (anonymized as stored):")
		for _, m := range a.Recent {
			fmt.Fprintf(&b, "\n- %s", m)
		}
	}
	return b.String()
}

// Notify posts the alert. Alertmanager answers 200; a 400 (an alert it
// refuses) is dead-lettered; 401, 403 and 404 (a wrong base URL) stop
// the channel; the rest is retried (sinks.HTTP).
func (n *Notifier) Notify(ctx context.Context, a alert.Alert) error {
	body, err := json.Marshal([]PostableAlert{Postable(a)})
	if err != nil {
		return &sinks.Permanent{Reason: "alertmanager: " + err.Error()}
	}
	resp, err := n.http.Post(ctx, body, nil)
	if err != nil {
		return err
	}
	return n.http.Classify(resp)
}

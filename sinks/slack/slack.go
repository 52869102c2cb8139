// Package slack sends alerts to a Slack incoming webhook: text plus
// blocks within Slack's limits, at most one message per second, success
// only on the body "ok".
package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/alert"
)

// Slack's limits for incoming webhooks.
const (
	SectionTextMax   = 3000 // characters in a section block's text
	HeaderTextMax    = 150  // characters in a header block's text
	FieldTextMax     = 2000 // characters in a section field's text
	SectionFieldsMax = 10   // fields in a section block
	Interval         = time.Second
)

// Notifier posts to one webhook URL.
type Notifier struct {
	http *sinks.HTTP
	last time.Time
	// Clock, if set before the first Notify, paces the messages; nil is
	// clock.Real. (The HTTP retries' waits are sinks.HTTP's own.)
	Clock clock.Clock
}

// New returns a notifier; the URL never appears in logs or errors.
func New(url string, opt sinks.HTTPOptions) *Notifier {
	return &Notifier{http: sinks.NewHTTP("slack", url, opt)}
}

func (n *Notifier) Name() string { return "slack" }

// Retries are the webhook's retried attempts.
func (n *Notifier) Retries() *sinks.RetryCounts { return &n.http.Retries }

// Collectors are the channel's metrics.
func (n *Notifier) Collectors() []prometheus.Collector { return n.http.Retries.Collectors(n.Name()) }

// Message is the JSON Slack receives for an alert: a header with the
// title; the origin and the host; the status, the text and the recent
// errors; the other facts (alert.Facts) as fields; the alert's id.
func Message(a alert.Alert) []byte {
	icon := map[string]string{alert.Firing: ":rotating_light:", alert.StillFiring: ":warning:", alert.Resolved: ":white_check_mark:"}[a.Status]
	var body strings.Builder
	body.WriteString(a.Text)
	if len(a.Recent) > 0 {
		body.WriteString("\n*Recent errors:*")
		for _, m := range a.Recent {
			fmt.Fprintf(&body, "\n• %s", escape(m))
		}
	}
	field := func(name, value string) any {
		return map[string]any{"type": "mrkdwn", "text": truncate("*"+name+"*\n"+escape(value), FieldTextMax)}
	}
	var facts []any // a section holds at most 10 fields
	for _, f := range a.Facts() {
		switch f.Name {
		case alert.FactOrigin, alert.FactHost, alert.FactStatus: // shown above
		case alert.FactLink:
			if len(f.Value) < FieldTextMax-20 { // a cut link leads nowhere
				facts = append(facts, map[string]any{"type": "mrkdwn", "text": "*" + f.Name + "*\n<" + escape(f.Value) + ">"})
			}
		default:
			facts = append(facts, field(f.Name, f.Value))
		}
	}
	blocks := []any{
		map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": truncate(a.Title, HeaderTextMax)}},
		map[string]any{"type": "section", "fields": []any{field(alert.FactOrigin, a.Origin), field(alert.FactHost, a.Host)}},
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": truncate(icon+" *"+a.Status+"*\n"+body.String(), SectionTextMax)}},
		map[string]any{"type": "section", "fields": facts[:min(len(facts), SectionFieldsMax)]},
		map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": "tailseal · " + a.ID + " · " + a.Time.UTC().Format(time.RFC3339)}}},
	}
	msg := map[string]any{
		// text is what a notification shows (the blocks replace it in
		// the channel): it names the origin, as an email subject does.
		"text":   truncate(fmt.Sprintf("%s [%s] %s: %s", icon, a.Status, escape(a.Origin), a.Title), SectionTextMax),
		"blocks": blocks,
	}
	b, _ := json.Marshal(msg)
	return b
}

// escape keeps user text from being read as Slack markup or mentions.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// truncate cuts s to at most n characters, with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// Notify sends one alert, waiting so that messages are a second apart.
func (n *Notifier) Notify(ctx context.Context, a alert.Alert) error {
	clk := clock.Or(n.Clock)
	if wait := clock.Until(clk, n.last.Add(Interval)); wait > 0 {
		if err := clock.Wait(ctx, clk, wait); err != nil {
			return err
		}
	}
	resp, err := n.http.Post(ctx, Message(a), nil)
	n.last = clk.Now()
	if err != nil {
		return err
	}
	if err := n.http.Classify(resp); err != nil {
		return err
	}
	if strings.TrimSpace(string(resp.Body)) != "ok" {
		return &sinks.Permanent{Reason: fmt.Sprintf("slack answered %d without \"ok\": %.200s", resp.Status, resp.Body)}
	}
	return nil
}

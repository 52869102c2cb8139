// Package discord sends alerts to a Discord webhook: content and one embed
// within Discord's limits, pacing itself on the X-RateLimit headers (429s
// and their JSON retry_after are retried by sinks.HTTP).
package discord

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/alert"
)

// Discord's limits for a webhook message.
const (
	ContentMax     = 2000
	TitleMax       = 256
	DescriptionMax = 4096
	FieldsMax      = 25
	FieldNameMax   = 256
	FieldValueMax  = 1024
	FooterMax      = 2048
	EmbedTotalMax  = 6000
)

// Notifier posts to one webhook URL.
type Notifier struct {
	http      *sinks.HTTP
	notBefore time.Time // from X-RateLimit-Remaining: 0 and Reset-After
	// Clock, if set before the first Notify, times the wait for an empty
	// rate-limit bucket; nil is clock.Real. (The HTTP retries' waits are
	// sinks.HTTP's own.)
	Clock clock.Clock
}

// New returns a notifier; the URL never appears in logs or errors.
func New(url string, opt sinks.HTTPOptions) *Notifier {
	return &Notifier{http: sinks.NewHTTP("discord", url, opt)}
}

func (n *Notifier) Name() string { return "discord" }

// Retries are the webhook's retried attempts.
func (n *Notifier) Retries() *sinks.RetryCounts { return &n.http.Retries }

// Collectors are the channel's metrics.
func (n *Notifier) Collectors() []prometheus.Collector { return n.http.Retries.Collectors(n.Name()) }

type field struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline,omitempty"`
}

type embed struct {
	Title       string  `json:"title"`
	URL         string  `json:"url,omitempty"` // the title links to it
	Description string  `json:"description"`
	Color       int     `json:"color"`
	Fields      []field `json:"fields,omitempty"`
	Footer      struct {
		Text string `json:"text"`
	} `json:"footer"`
	Timestamp string `json:"timestamp"`
}

// Message is the JSON Discord receives for an alert.
func Message(a alert.Alert) []byte {
	color := map[string]int{alert.Firing: 0xd32f2f, alert.StillFiring: 0xf57c00, alert.Resolved: 0x2e7d32}[a.Status]
	e := embed{Title: cut(a.Title, TitleMax), Description: cut(a.Text, DescriptionMax), Color: color, Timestamp: a.Time.UTC().Format(time.RFC3339)}
	e.Footer.Text = cut("tailseal · "+a.ID, FooterMax)
	add := func(name, value string, inline bool) {
		if value != "" && len(e.Fields) < FieldsMax {
			e.Fields = append(e.Fields, field{cut(name, FieldNameMax), cut(value, FieldValueMax), inline})
		}
	}
	// The facts first, so that trimming to the embed's limit, which drops
	// fields from the end, keeps them; the origin and the host lead.
	for _, f := range a.Facts() {
		if f.Name == alert.FactLink {
			if utf8.RuneCountInString(f.Value) > FieldValueMax {
				continue // a cut link leads nowhere
			}
			e.URL = f.Value
		}
		add(f.Name, f.Value, f.Name != alert.FactLink)
	}
	for i, m := range a.Recent {
		add(fmt.Sprintf("Error %d", i+1), m, false)
	}
	// The embed's characters, all fields together, must stay under 6,000.
	for total(e) > EmbedTotalMax && len(e.Fields) > 0 {
		e.Fields = e.Fields[:len(e.Fields)-1]
	}
	if over := total(e) - EmbedTotalMax; over > 0 {
		e.Description = cut(e.Description, utf8.RuneCountInString(e.Description)-over)
	}
	msg := struct {
		Content         string  `json:"content"`
		Embeds          []embed `json:"embeds"`
		AllowedMentions struct {
			Parse []string `json:"parse"`
		} `json:"allowed_mentions"` // user text never pings anyone
	}{Content: cut(fmt.Sprintf("**[%s]** %s", a.Status, a.Title), ContentMax), Embeds: []embed{e}}
	msg.AllowedMentions.Parse = []string{}
	b, _ := json.Marshal(msg)
	return b
}

func total(e embed) int {
	n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description) + utf8.RuneCountInString(e.Footer.Text)
	for _, f := range e.Fields {
		n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	return n
}

func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:max(n-1, 0)])) + "…"
}

// Notify sends one alert, first waiting out an exhausted rate-limit bucket.
func (n *Notifier) Notify(ctx context.Context, a alert.Alert) error {
	clk := clock.Or(n.Clock)
	if wait := clock.Until(clk, n.notBefore); wait > 0 {
		if err := clock.Wait(ctx, clk, wait); err != nil {
			return err
		}
	}
	resp, err := n.http.Post(ctx, Message(a), nil)
	if err != nil {
		return err
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		if secs, err := strconv.ParseFloat(resp.Header.Get("X-RateLimit-Reset-After"), 64); err == nil && secs > 0 && secs < 3600 {
			n.notBefore = clk.Now().Add(time.Duration(secs * float64(time.Second)))
		}
	}
	return n.http.Classify(resp)
}

// Package sinkstest holds the services sinks talk to, for tests on
// loopback: Slack and Discord stand-ins that enforce the real limits and
// rate limits, a real SMTP server with STARTTLS and AUTH PLAIN, and a real
// Prometheus Alertmanager run as a process.
package sinkstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tailseal/tailseal/agent/clock"
)

// SecretPath is the path of the stand-in webhooks: like Slack's and
// Discord's, it is the secret.
const SecretPath = "/services/T000/B000/sEcReT-tOkEn"

// Chat stands in for Slack or Discord on loopback: it enforces their
// size limits and their rate limit, and answers from a script of statuses.
type Chat struct {
	t          testing.TB
	discord    bool
	mu         sync.Mutex
	script     []int // statuses to answer, in order; then 200 (Slack) / 204 (Discord)
	times      []time.Time
	accepted   [][]byte
	acceptedAt time.Time
	Srv        *httptest.Server
	// Clock, if set before the first request, is the stand-in's time for
	// its rate limit and Requests; nil is clock.Real.
	Clock clock.Clock
}

// NewChat starts a stand-in; script lists statuses to answer first (429
// with Retry-After or Discord's JSON retry_after, 200 without "ok" for
// Slack, or any other status).
func NewChat(t testing.TB, discord bool, script ...int) *Chat {
	c := &Chat{t: t, discord: discord, script: script}
	c.Srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.Srv.Close)
	return c
}

// URL is the webhook URL, secret included.
func (c *Chat) URL() string { return c.Srv.URL + SecretPath }

// Accepted returns the payloads accepted so far.
func (c *Chat) Accepted() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.accepted...)
}

// Requests is how many requests came, and when.
func (c *Chat) Requests() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.times...)
}

func (c *Chat) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := clock.Or(c.Clock).Now()
	c.times = append(c.times, now)
	if r.URL.Path != SecretPath {
		http.Error(w, "no_service", http.StatusNotFound)
		return
	}
	if err := c.validate(body); err != nil {
		c.t.Errorf("payload over the limits: %v", err)
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	if len(c.script) > 0 {
		status := c.script[0]
		c.script = c.script[1:]
		switch status {
		case http.StatusTooManyRequests:
			if c.discord {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"message":"You are being rate limited.","retry_after":0.3,"global":false}`)
				return
			}
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate_limited", http.StatusTooManyRequests)
			return
		case 200:
			fmt.Fprint(w, "not ok") // Slack: a 200 that is not "ok"
			return
		default:
			http.Error(w, http.StatusText(status), status)
			return
		}
	}
	// Slack allows about one message per second per webhook.
	if !c.discord && len(c.accepted) > 0 && now.Sub(c.lastAccepted()) < 900*time.Millisecond {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "rate_limited", http.StatusTooManyRequests)
		return
	}
	c.accepted = append(c.accepted, body)
	c.acceptedAt = now
	if c.discord {
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset-After", "0.5")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	fmt.Fprint(w, "ok")
}

func (c *Chat) lastAccepted() time.Time { return c.acceptedAt }

func (c *Chat) validate(body []byte) error {
	if c.discord {
		var m struct {
			Content string `json:"content"`
			Embeds  []struct {
				Title       string `json:"title"`
				Description string `json:"description"`
				Fields      []struct{ Name, Value string }
				Footer      struct{ Text string }
			} `json:"embeds"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return err
		}
		if n := utf8.RuneCountInString(m.Content); n > 2000 {
			return fmt.Errorf("content %d > 2000", n)
		}
		for _, e := range m.Embeds {
			total := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description) + utf8.RuneCountInString(e.Footer.Text)
			if utf8.RuneCountInString(e.Title) > 256 || utf8.RuneCountInString(e.Description) > 4096 || len(e.Fields) > 25 {
				return fmt.Errorf("embed title/description/fields over the limit")
			}
			for _, f := range e.Fields {
				if utf8.RuneCountInString(f.Name) > 256 || utf8.RuneCountInString(f.Value) > 1024 {
					return fmt.Errorf("field over the limit")
				}
				total += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
			}
			if total > 6000 {
				return fmt.Errorf("embed total %d > 6000", total)
			}
		}
		return nil
	}
	var m struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type   string `json:"type"`
			Text   struct{ Text string }
			Fields []struct{ Text string }
		} `json:"blocks"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	if m.Text == "" || len(m.Blocks) == 0 {
		return fmt.Errorf("no text or no blocks")
	}
	for _, b := range m.Blocks {
		if b.Type == "section" && utf8.RuneCountInString(b.Text.Text) > 3000 {
			return fmt.Errorf("section text %d > 3000", utf8.RuneCountInString(b.Text.Text))
		}
		if b.Type == "section" && (b.Text.Text == "" && len(b.Fields) == 0 || len(b.Fields) > 10) {
			return fmt.Errorf("a section needs text or fields, at most 10 (it has %d)", len(b.Fields))
		}
		for _, f := range b.Fields {
			if n := utf8.RuneCountInString(f.Text); n == 0 || n > 2000 {
				return fmt.Errorf("section field text %d, want 1..2000", n)
			}
		}
		if b.Type == "header" && utf8.RuneCountInString(b.Text.Text) > 150 {
			return fmt.Errorf("header %d > 150", utf8.RuneCountInString(b.Text.Text))
		}
	}
	return nil
}

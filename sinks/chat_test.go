package sinks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/sinks"
	"github.com/tailseal/tailseal/sinks/alert"
	"github.com/tailseal/tailseal/sinks/discord"
	"github.com/tailseal/tailseal/sinks/sinkstest"
	"github.com/tailseal/tailseal/sinks/slack"
)

var fast = sinks.HTTPOptions{Timeout: 5 * time.Second, MinWait: 10 * time.Millisecond, MaxWait: 2 * time.Second}

// bigAlert has an oversized title, text and messages, so formatting must cut.
func bigAlert(id string) alert.Alert {
	a := alert.Alert{ID: id, Origin: "web-1", Host: "node-a", Rule: "error_threshold", Status: alert.Firing, Title: strings.Repeat("Too many errors ", 30),
		Text: strings.Repeat("x", 5000), Count: 25, Window: "1m0s", First: "2026-02-04T20:30:45Z", Last: "2026-02-04T20:31:40Z", Time: time.Now()}
	for i := range 5 {
		a.Recent = append(a.Recent, fmt.Sprintf("error %d: %s <@everyone>", i, strings.Repeat("é", 1500)))
	}
	return a
}

func TestSlack(t *testing.T) {
	ctx := context.Background()
	t.Run("429 with Retry-After, then 500 then 200, within limits, a second apart", func(t *testing.T) {
		srv := sinkstest.NewChat(t, false, 429, 500)
		n := slack.New(srv.URL(), fast)
		clk := clock.NewFake(time.Now())
		n.Clock, srv.Clock = clk, clk
		start := time.Now()
		if err := n.Notify(ctx, bigAlert("a1")); err != nil {
			t.Fatal(err)
		}
		// sinks.HTTP waits out Retry-After on the system clock.
		if time.Since(start) < time.Second {
			t.Errorf("Retry-After: 1 was not honoured (%v)", time.Since(start))
		}
		paced(t, clk, slack.Interval, func(ctx context.Context) error { return n.Notify(ctx, bigAlert("a2")) }, func() int { return len(srv.Requests()) }, 3)
		if len(srv.Accepted()) != 2 || len(srv.Requests()) != 4 {
			t.Fatalf("%d accepted of %d requests, want 2 of 4", len(srv.Accepted()), len(srv.Requests()))
		}
		if rc := n.Retries(); rc.RateLimited.Load() != 1 || rc.ServerError.Load() != 1 {
			t.Errorf("retries: %d rate limited, %d server errors", rc.RateLimited.Load(), rc.ServerError.Load())
		}
	})
	t.Run("400 is dead-lettered after one attempt", func(t *testing.T) {
		srv := sinkstest.NewChat(t, false, 400)
		err := slack.New(srv.URL(), fast).Notify(ctx, bigAlert("a"))
		var perm *sinks.Permanent
		if !errors.As(err, &perm) || len(srv.Requests()) != 1 {
			t.Fatalf("err %v after %d requests, want a permanent error after 1", err, len(srv.Requests()))
		}
		checkNoSecret(t, err)
	})
	t.Run("410 stops the channel", func(t *testing.T) {
		srv := sinkstest.NewChat(t, false, 410)
		err := slack.New(srv.URL(), fast).Notify(ctx, bigAlert("a"))
		if !errors.Is(err, sinks.ErrStopped) || len(srv.Requests()) != 1 {
			t.Fatalf("err %v after %d requests, want ErrStopped after 1", err, len(srv.Requests()))
		}
		checkNoSecret(t, err)
	})
	t.Run("200 without ok is not a success", func(t *testing.T) {
		srv := sinkstest.NewChat(t, false, 200)
		err := slack.New(srv.URL(), fast).Notify(ctx, bigAlert("a"))
		var perm *sinks.Permanent
		if !errors.As(err, &perm) {
			t.Fatalf("err %v, want a permanent error", err)
		}
	})
	t.Run("network errors are retried until the context ends, without the URL", func(t *testing.T) {
		srv := sinkstest.NewChat(t, false)
		url := srv.URL()
		srv.Srv.Close()
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		n := slack.New(url, fast)
		err := n.Notify(ctx, bigAlert("a"))
		if err == nil || n.Retries().Network.Load() < 2 {
			t.Fatalf("err %v after %d network retries", err, n.Retries().Network.Load())
		}
		checkNoSecret(t, err)
	})
}

func TestDiscord(t *testing.T) {
	ctx := context.Background()
	srv := sinkstest.NewChat(t, true, 429, 503)
	n := discord.New(srv.URL(), fast)
	clk := clock.NewFake(time.Now())
	n.Clock = clk
	start := time.Now()
	if err := n.Notify(ctx, bigAlert("a1")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("retry_after 0.3 in the 429 body was not honoured (%v)", d)
	}
	// The bucket is empty (X-RateLimit-Remaining: 0, Reset-After 0.5):
	// the next message waits for it.
	paced(t, clk, 500*time.Millisecond, func(ctx context.Context) error { return n.Notify(ctx, bigAlert("a2")) }, func() int { return len(srv.Accepted()) }, 1)
	accepted := srv.Accepted()
	if len(accepted) != 2 {
		t.Fatalf("%d accepted", len(accepted))
	}
	var m struct {
		AllowedMentions struct{ Parse []string } `json:"allowed_mentions"`
	}
	json.Unmarshal(accepted[0], &m)
	if m.AllowedMentions.Parse == nil || len(m.AllowedMentions.Parse) != 0 {
		t.Errorf("mentions in user text could ping: %s", accepted[0][:200])
	}
}

// Slack and Discord name the origin and the host once each, under their
// labels, also when they are equal (a pod whose name is the origin) and
// when the alert is too big for the limits.
func TestAlertNamesOriginAndHost(t *testing.T) {
	long := strings.Repeat("o", 253) // the longest DNS name
	cases := []struct{ origin, host string }{{"origin-Qx7", "host-Rv3"}, {"web-1", "web-1"}, {long, "host-Rv3"}}
	for _, c := range cases {
		a := bigAlert("a1")
		a.Origin, a.Host = c.origin, c.host
		shown := []string{c.origin, c.host}
		if c.origin == c.host {
			shown = shown[:1]
		}

		slackSrv := sinkstest.NewChat(t, false)
		if err := slack.New(slackSrv.URL(), fast).Notify(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		var sm struct {
			Text   string `json:"text"`
			Blocks []struct {
				Type   string
				Text   struct{ Text string }
				Fields []struct{ Text string }
			} `json:"blocks"`
		}
		json.Unmarshal(slackSrv.Accepted()[0], &sm)
		var blocks, fields []string // what the channel shows; text only notifies
		for _, b := range sm.Blocks {
			blocks = append(blocks, b.Text.Text)
			for _, f := range b.Fields {
				blocks, fields = append(blocks, f.Text), append(fields, f.Text)
			}
		}
		if want := []string{"*Origin*\n" + c.origin, "*Host*\n" + c.host}; len(fields) < 2 || fmt.Sprint(fields[:2]) != fmt.Sprint(want) {
			t.Errorf("slack fields %q, want %q", fields, want)
		}
		for _, s := range shown {
			if n, want := strings.Count(strings.Join(blocks, "\n"), s), 3-len(shown); n != want {
				t.Errorf("slack shows %.20q %d times, want %d:\n%q", s, n, want, blocks)
			}
		}
		if !strings.Contains(sm.Text, c.origin) {
			t.Errorf("slack's notification text %.80q lacks the origin", sm.Text)
		}

		discordSrv := sinkstest.NewChat(t, true)
		if err := discord.New(discordSrv.URL(), fast).Notify(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		var dm struct {
			Content string `json:"content"`
			Embeds  []struct {
				Title, Description string
				Fields             []struct{ Name, Value string }
				Footer             struct{ Text string }
			} `json:"embeds"`
		}
		json.Unmarshal(discordSrv.Accepted()[0], &dm)
		e := dm.Embeds[0]
		all := []string{dm.Content, e.Title, e.Description, e.Footer.Text}
		named := map[string]string{}
		for _, f := range e.Fields {
			all, named[f.Name] = append(all, f.Name, f.Value), f.Value
		}
		if named["Origin"] != c.origin || named["Host"] != c.host {
			t.Errorf("discord fields: origin %.20q, host %.20q; want %.20q, %.20q", named["Origin"], named["Host"], c.origin, c.host)
		}
		for _, s := range shown {
			if n, want := strings.Count(strings.Join(all, "\n"), s), 3-len(shown); n != want {
				t.Errorf("discord shows %.20q %d times, want %d", s, n, want)
			}
		}
	}
}

// paced runs notify, which must wait for d on clk before it sends: while
// it waits, sent() is still before; once d has passed it returns. An
// injected clock rather than testing/synctest: the stand-ins answer over
// loopback, and goroutines waiting on the network are not durably blocked.
func paced(t *testing.T, clk *clock.Fake, d time.Duration, notify func(context.Context) error, sent func() int, before int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- notify(ctx) }()
	select {
	case <-clk.Armed(d):
	case err := <-done:
		t.Fatalf("sent without waiting %v (%v)", d, err)
	case <-time.After(10 * time.Second): // a guard against a hang
		t.Fatalf("no wait of %v; %d sent", d, sent())
	}
	if n := sent(); n != before {
		t.Fatalf("%d sent while waiting, want %d", n, before)
	}
	clk.Advance(d)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func checkNoSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), sinkstest.SecretPath) {
		t.Errorf("the webhook secret leaked into an error: %v", err)
	}
}

// Retry-After may be an HTTP date.
func TestRetryAfterDate(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls == 1 {
			w.Header().Set("Retry-After", time.Now().Add(1500*time.Millisecond).UTC().Format(http.TimeFormat))
			w.WriteHeader(503)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	start := time.Now()
	resp, err := sinks.NewHTTP("test", srv.URL, fast).Post(context.Background(), []byte(`{}`), nil)
	if err != nil || resp.Status != 200 {
		t.Fatal(resp, err)
	}
	// HTTP dates have one-second precision: at least 0.5 s was waited.
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("waited %v for a Retry-After date 1.5 s ahead", d)
	}
}

// factAlert is an alert with every fact set: the link carries an & that
// each channel must keep working.
func factAlert(status string) alert.Alert {
	a := alert.Alert{ID: "alert-9", Origin: "origin-Qx7", Host: "host-Rv3", Rule: "error_threshold", Status: status, Title: "At least 10 errors in 5m0s (threshold 10)",
		Text: "Rule error_threshold is " + status + ".", Count: 10, AtLeast: true, Window: "5m0s", First: "2026-02-04T20:30:45Z", Last: "2026-02-04T20:31:40Z",
		Since: time.Date(2026, 2, 4, 20, 31, 41, 0, time.UTC), Link: "https://grafana.example.com/d/ts?var-origin=origin-Qx7&orgId=1", Time: time.Now()}
	if status == alert.Resolved {
		a.Count, a.AtLeast, a.Title = 2, false, "Resolved: errors are back under the threshold"
	}
	return a
}

// wantFacts are the facts every channel shows, by label, for factAlert.
func wantFacts(a alert.Alert) map[string]string {
	count := "at least 10"
	if !a.AtLeast {
		count = "2"
	}
	return map[string]string{"Rule": "error_threshold", "Count": count, "Window": "5m0s", "First event": "2026-02-04T20:30:45Z",
		"Last event": "2026-02-04T20:31:40Z", "Started": "2026-02-04T20:31:41Z"}
}

// Slack and Discord say where and what, firing and resolved alike: the
// origin, the host, the rule, the count and the window, the first and
// last event, when it began, and the link, which stays a working link.
func TestAlertSaysWhereAndWhat(t *testing.T) {
	for _, status := range []string{alert.Firing, alert.Resolved} {
		a := factAlert(status)
		want := wantFacts(a)
		want["Origin"], want["Host"] = a.Origin, a.Host

		slackSrv := sinkstest.NewChat(t, false)
		if err := slack.New(slackSrv.URL(), fast).Notify(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		var sm struct {
			Blocks []struct{ Fields []struct{ Text string } } `json:"blocks"`
		}
		json.Unmarshal(slackSrv.Accepted()[0], &sm)
		got := map[string]string{}
		for _, b := range sm.Blocks {
			for _, f := range b.Fields {
				name, value, _ := strings.Cut(strings.TrimPrefix(f.Text, "*"), "*\n")
				got[name] = value
			}
		}
		for name, v := range want {
			if got[name] != v {
				t.Errorf("slack %s: %s %q, want %q", status, name, got[name], v)
			}
		}
		// Slack reads &amp; in a link as &.
		if l := "<https://grafana.example.com/d/ts?var-origin=origin-Qx7&amp;orgId=1>"; got["Link"] != l {
			t.Errorf("slack %s: link %q, want %q", status, got["Link"], l)
		}

		discordSrv := sinkstest.NewChat(t, true)
		if err := discord.New(discordSrv.URL(), fast).Notify(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		var dm struct {
			Embeds []struct {
				URL    string `json:"url"`
				Fields []struct{ Name, Value string }
			} `json:"embeds"`
		}
		json.Unmarshal(discordSrv.Accepted()[0], &dm)
		got = map[string]string{}
		for _, f := range dm.Embeds[0].Fields {
			got[f.Name] = f.Value
		}
		want["Status"], want["Link"] = status, a.Link
		for name, v := range want {
			if got[name] != v {
				t.Errorf("discord %s: %s %q, want %q", status, name, got[name], v)
			}
		}
		if dm.Embeds[0].URL != a.Link {
			t.Errorf("discord %s: the title links to %q, want %q", status, dm.Embeds[0].URL, a.Link)
		}
	}
}

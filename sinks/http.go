package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// HTTP posts to one endpoint with retries: full-jitter exponential backoff,
// Retry-After (seconds or an HTTP date) and Discord's JSON retry_after
// honoured up to MaxWait, 429, 5xx, redirects and network errors retried
// until the context ends. It never follows a redirect: Go's client would
// re-send a POST answered 301, 302 or 303 as an empty GET, and count
// whatever that GET got as the delivery. Its errors and logs never contain
// the URL: Slack and Discord URLs carry their secret in the path. One
// goroutine at a time.
type HTTP struct {
	name   string // what logs and errors call the endpoint
	url    string
	client *retryablehttp.Client
	log    *slog.Logger
	// Retries counts retried attempts by reason (network, 429, 5xx,
	// redirect).
	Retries RetryCounts
	failing failing
}

// RetryCounts are retried attempts by reason.
type RetryCounts struct {
	Network, RateLimited, ServerError, Redirect atomic.Uint64
}

// HTTPOptions configures an HTTP endpoint.
type HTTPOptions struct {
	Timeout time.Duration // per attempt
	MinWait time.Duration // first backoff
	MaxWait time.Duration // cap of the backoff and of Retry-After
	Log     *slog.Logger  // failures and recoveries; nil: not logged
}

// retryAfterHeader carries a Discord JSON retry_after from CheckRetry,
// which can read the body, to Backoff, which runs after it is drained.
const retryAfterHeader = "X-Tailseal-Retry-After"

// NewHTTP returns a client for rawURL; name is what logs show instead of
// the URL.
func NewHTTP(name, rawURL string, opt HTTPOptions) *HTTP {
	h := &HTTP{name: name, url: rawURL, log: opt.Log}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	c := retryablehttp.NewClient()
	c.Logger = nil // it would log URLs, secrets included
	c.HTTPClient.Timeout = opt.Timeout
	c.HTTPClient.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.RetryWaitMin, c.RetryWaitMax = opt.MinWait, opt.MaxWait
	c.RetryMax = math.MaxInt32 // at least once: only the context ends it
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.CheckRetry = h.checkRetry
	c.Backoff = backoff
	h.client = c
	return h
}

func (h *HTTP) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		h.Retries.Network.Add(1)
		h.fail("network", h.redact(err).Error())
		return true, nil
	}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		h.Retries.RateLimited.Add(1)
		h.fail("rate_limited", "answered 429 Too Many Requests")
		// Discord puts retry_after (seconds, fractional) in the JSON body.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var d struct {
			RetryAfter float64 `json:"retry_after"`
		}
		if json.Unmarshal(body, &d) == nil && d.RetryAfter > 0 {
			resp.Header.Set(retryAfterHeader, strconv.FormatFloat(d.RetryAfter, 'f', -1, 64))
		}
		return true, nil
	case code >= 500:
		h.Retries.ServerError.Add(1)
		h.fail("server_error", fmt.Sprintf("answered %d %s", code, http.StatusText(code)))
		return true, nil
	case code >= 300 && code < 400:
		// Not delivered: retried, so that nothing is lost while the URL
		// is wrong, and said loudly until it is fixed.
		h.Retries.Redirect.Add(1)
		h.fail("redirect", fmt.Sprintf("answered %d %s, a redirect to host %q; deliveries never follow redirects: configure the final URL",
			code, http.StatusText(code), locationHost(resp)))
		return true, nil
	case code < 300:
		h.recovered()
	}
	return false, nil
}

// locationHost is the host a redirect points to; never its path or query,
// which may carry secrets.
func locationHost(resp *http.Response) string {
	u, err := resp.Location()
	if err != nil {
		return ""
	}
	return u.Host
}

// failing is the failure an endpoint is in, for logging each kind once
// when it starts, again every failLogEvery while it lasts, and once when
// it clears.
type failing struct {
	kind           string // "" when the endpoint works
	since, lastLog time.Time
	attempts       int
}

// failLogEvery is how often a failure that goes on is logged again.
const failLogEvery = 10 * time.Minute

func (h *HTTP) fail(kind, detail string) {
	f := &h.failing
	now := time.Now()
	f.attempts++
	if kind == f.kind && now.Sub(f.lastLog) < failLogEvery {
		return
	}
	if f.kind == "" {
		f.since = now
	}
	f.kind, f.lastLog = kind, now
	h.log.Warn("delivery failing; retrying with backoff, nothing is lost", "endpoint", h.name, "failure", kind,
		"detail", detail, "failing_for", now.Sub(f.since).Round(time.Second).String(), "attempts", f.attempts)
}

func (h *HTTP) recovered() {
	f := &h.failing
	if f.kind == "" {
		return
	}
	h.log.Info("delivery works again", "endpoint", h.name, "last_failure", f.kind,
		"failed_for", time.Since(f.since).Round(time.Second).String(), "attempts", f.attempts)
	*f = failing{}
}

// backoff waits what the server asked for, capped at max, or else a
// full-jitter exponential delay: uniform in [0, min(max, min*2^attempt)).
func backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := serverWait(resp.Header, time.Now()); ok {
			return min(d, maxWait)
		}
	}
	ceil := maxWait
	if attempt < 30 {
		ceil = min(maxWait, minWait<<attempt)
	}
	return rand.N(ceil + 1)
}

// serverWait reads how long a server asked to wait.
func serverWait(h http.Header, now time.Time) (time.Duration, bool) {
	for _, k := range []string{retryAfterHeader, "Retry-After", "X-RateLimit-Reset-After"} {
		v := h.Get(k)
		if v == "" {
			continue
		}
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 && secs < 1e6 {
			return time.Duration(secs * float64(time.Second)), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	return 0, false
}

// Response is a final answer: a success or a status not worth retrying.
type Response struct {
	Status int
	Header http.Header
	Body   []byte // the first 64 KiB
}

// Post sends body as JSON. prepare runs before every attempt (to sign it
// afresh). It returns the final response, or an error only when ctx ends
// or the request cannot be built; the error never contains the URL.
func (h *HTTP) Post(ctx context.Context, body []byte, prepare func(*http.Request)) (*Response, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, h.url, body)
	if err != nil {
		return nil, fmt.Errorf("%s: bad URL", h.name) // url.Parse errors quote the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tailseal")
	if prepare != nil {
		prepare(req.Request)
		h.client.PrepareRetry = func(r *http.Request) error { prepare(r); return nil }
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, h.redact(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Describe names an endpoint for logs and errors: its scheme and host,
// never its credentials, path or query.
func Describe(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}

// redact drops the URL from an error.
func (h *HTTP) redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s: %w", h.name, err)
}

// Classify maps a final response: nil for 2xx, ErrStopped wrapped for 401,
// 403, 404 and 410, ErrTooLarge wrapped for 413, a *Permanent for the
// rest (dead-lettered).
func (h *HTTP) Classify(r *Response) error {
	switch {
	case r.Status >= 200 && r.Status < 300:
		return nil
	case r.Status == 401 || r.Status == 403 || r.Status == 404 || r.Status == 410:
		return fmt.Errorf("%s answered %d %s: %w", h.name, r.Status, http.StatusText(r.Status), ErrStopped)
	case r.Status == http.StatusRequestEntityTooLarge:
		return fmt.Errorf("%s answered 413 %s: %w", h.name, http.StatusText(r.Status), ErrTooLarge)
	}
	return &Permanent{Reason: fmt.Sprintf("%s answered %d %s: %s", h.name, r.Status, http.StatusText(r.Status), snippet(r.Body))}
}

// ErrTooLarge is a 413: a sink splits the payload before it gives up on it.
var ErrTooLarge = errors.New("payload too large")

// Permanent is a refusal that retrying cannot fix (400, a mail server's
// 5xx): the payload is dead-lettered and delivery moves on.
type Permanent struct{ Reason string }

func (p *Permanent) Error() string { return p.Reason }

func snippet(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}

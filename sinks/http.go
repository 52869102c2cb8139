package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// honoured up to MaxWait, 429, 5xx and network errors retried until the
// context ends. Its errors never contain the URL: Slack and Discord URLs
// carry their secret in the path. One goroutine at a time.
type HTTP struct {
	name   string // what logs and errors call the endpoint
	url    string
	client *retryablehttp.Client
	// Retries counts retried attempts by reason (network, 429, 5xx).
	Retries RetryCounts
}

// RetryCounts are retried attempts by reason.
type RetryCounts struct {
	Network, RateLimited, ServerError atomic.Uint64
}

// HTTPOptions configures an HTTP endpoint.
type HTTPOptions struct {
	Timeout time.Duration // per attempt
	MinWait time.Duration // first backoff
	MaxWait time.Duration // cap of the backoff and of Retry-After
}

// retryAfterHeader carries a Discord JSON retry_after from CheckRetry,
// which can read the body, to Backoff, which runs after it is drained.
const retryAfterHeader = "X-Tailseal-Retry-After"

// NewHTTP returns a client for rawURL; name is what logs show instead of
// the URL.
func NewHTTP(name, rawURL string, opt HTTPOptions) *HTTP {
	h := &HTTP{name: name, url: rawURL}
	c := retryablehttp.NewClient()
	c.Logger = nil // it would log URLs, secrets included
	c.HTTPClient.Timeout = opt.Timeout
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
		return true, nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		h.Retries.RateLimited.Add(1)
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
	case resp.StatusCode >= 500:
		h.Retries.ServerError.Add(1)
		return true, nil
	}
	return false, nil
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

// redact drops the URL from an error.
func (h *HTTP) redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s: %w", h.name, err)
}

// Classify maps a final response: nil for 2xx, ErrStopped wrapped for 401,
// 403, 404 and 410, a *Permanent for the rest (dead-lettered).
func (h *HTTP) Classify(r *Response) error {
	switch {
	case r.Status >= 200 && r.Status < 300:
		return nil
	case r.Status == 401 || r.Status == 403 || r.Status == 404 || r.Status == 410:
		return fmt.Errorf("%s answered %d %s: %w", h.name, r.Status, http.StatusText(r.Status), ErrStopped)
	}
	return &Permanent{Reason: fmt.Sprintf("%s answered %d %s: %s", h.name, r.Status, http.StatusText(r.Status), snippet(r.Body))}
}

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

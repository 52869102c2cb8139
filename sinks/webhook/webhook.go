// Package webhook streams stored records to HTTP endpoints, in batches,
// signed per the Standard Webhooks specification.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/sinks"
)

// Options for one endpoint.
type Options struct {
	Name     string // "webhook-1"
	Origin   string // the store's origin: named in every body and id
	URL      string
	Secret   []byte   // the key of whsec_<base64 key>; nil: unsigned
	Token    string   // Authorization: Bearer, optional
	Types    []string // event types to send; empty: all
	StateDir string   // for dead letters
	HTTP     sinks.HTTPOptions
}

// Sink posts batches to one endpoint. The body (Body) is
//
//	{"origin":"<origin>","first_seq":N,"last_seq":M,"records":["<stored line>",...]}
//
// with every record as a JSON string holding the stored line byte for
// byte, so a receiver can check signatures and the hash chain. The
// webhook-id (ID) is the same on every retry and after a restart (the
// runner resends a cut batch exactly) and differs between origins: an
// idempotency key for a receiver that many agents post to.
type Sink struct {
	opt   Options
	http  *sinks.HTTP
	types map[string]bool
	Now   func() time.Time
	// DeadLetters counts batches refused for good (400 and the like).
	DeadLetters atomic.Uint64
}

// Describe names an endpoint for logs: its host, never its path or query.
func Describe(rawURL string) string { return sinks.Describe(rawURL) }

// New returns a sink for one endpoint.
func New(opt Options) *Sink {
	s := &Sink{opt: opt, http: sinks.NewHTTP(opt.Name+" "+Describe(opt.URL), opt.URL, opt.HTTP), Now: time.Now}
	if len(opt.Types) > 0 {
		s.types = map[string]bool{}
		for _, t := range opt.Types {
			s.types[t] = true
		}
	}
	return s
}

func (s *Sink) Name() string { return s.opt.Name }

// Retries are the endpoint's retried attempts.
func (s *Sink) Retries() *sinks.RetryCounts { return &s.http.Retries }

// Accept applies the event-type filter.
func (s *Sink) Accept(line []byte) bool {
	if s.types == nil {
		return true
	}
	t, _ := record.StringField(line, "event_type")
	return s.types[string(t)]
}

// ID is the webhook-id of a batch from a store of origin:
//
//	msg_<origin as unpadded base64url>_<first>_<last>
//
// (RFC 4648 §5, no "=", so the id uses only A-Z a-z 0-9 - _ and is safe in
// a header). It is injective: first and last are decimal and hold no "_",
// so an id splits at its last two "_" into the encoded origin, first and
// last, and unpadded base64url decodes to the one origin that encodes to
// it. Two origins never share an id, whatever bytes they hold; an origin
// that is itself "a_1" is encoded, so it cannot pass for another's seqs.
func ID(origin string, b sinks.Batch) string {
	return fmt.Sprintf("msg_%s_%d_%d", base64.RawURLEncoding.EncodeToString([]byte(origin)), b.First, b.Last)
}

// Body is the JSON body of a batch from a store of origin.
func Body(origin string, b sinks.Batch) []byte {
	buf := append([]byte(nil), `{"origin":`...)
	buf = record.AppendString(buf, []byte(origin))
	buf = fmt.Appendf(buf, `,"first_seq":%d,"last_seq":%d,"records":[`, b.First, b.Last)
	for i, l := range b.Lines {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = record.AppendString(buf, l) // records are valid UTF-8: decodes to the same bytes
	}
	return append(buf, "]}"...)
}

// Sign is the Standard Webhooks signature header value.
func Sign(secret []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%s.%d.", id, ts)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Deliver posts the batch, re-signed at each attempt. A batch the
// endpoint refuses as too large (413) is sent in two halves, each under
// its own id, down to single records; a record still too large, and any
// other refusal, goes to the dead-letter file, and the log says so.
func (s *Sink) Deliver(ctx context.Context, b sinks.Batch) error {
	err := s.post(ctx, b)
	if errors.Is(err, sinks.ErrTooLarge) && len(b.Lines) > 1 {
		first, second := split(b)
		s.log().Warn("the endpoint refused a batch as too large (413): sending it in two halves",
			"sink", s.Name(), "first_seq", b.First, "last_seq", b.Last, "records", len(b.Lines))
		if err := s.Deliver(ctx, first); err != nil {
			return err
		}
		return s.Deliver(ctx, second)
	}
	reason := ""
	var perm *sinks.Permanent
	switch {
	case errors.As(err, &perm):
		reason = perm.Reason
	case errors.Is(err, sinks.ErrTooLarge):
		reason = err.Error() + " (a single record)"
	default:
		return err
	}
	file := "state/deadletter-" + s.Name() + ".jsonl"
	if err := sinks.DeadLetter(s.opt.StateDir, s.opt.Name, reason, b); err != nil {
		s.log().Error("the endpoint refused a batch for good, and it cannot be written to the dead-letter file: retrying",
			"sink", s.Name(), "first_seq", b.First, "last_seq", b.Last, "reason", reason, "file", file, "error", err)
		return err
	}
	s.DeadLetters.Add(1)
	s.log().Error("the endpoint refused a batch for good: written to the dead-letter file, delivery goes on",
		"sink", s.Name(), "first_seq", b.First, "last_seq", b.Last, "records", len(b.Lines), "reason", reason,
		"file", file)
	return nil
}

func (s *Sink) post(ctx context.Context, b sinks.Batch) error {
	id, body := ID(s.opt.Origin, b), Body(s.opt.Origin, b)
	resp, err := s.http.Post(ctx, body, func(r *http.Request) {
		r.Header.Set("webhook-id", id)
		if s.opt.Secret != nil {
			ts := s.Now().Unix()
			r.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
			r.Header.Set("webhook-signature", Sign(s.opt.Secret, id, ts, body))
		}
		if s.opt.Token != "" {
			r.Header.Set("Authorization", "Bearer "+s.opt.Token)
		}
	})
	if err != nil {
		return err
	}
	return s.http.Classify(resp)
}

// split cuts a batch of two or more records in two halves that together
// cover its seq range.
func split(b sinks.Batch) (first, second sinks.Batch) {
	mid := len(b.Lines) / 2
	last, _ := record.Seq(b.Lines[mid-1])
	return sinks.Batch{First: b.First, Last: last, Lines: b.Lines[:mid]},
		sinks.Batch{First: last + 1, Last: b.Last, Lines: b.Lines[mid:]}
}

func (s *Sink) log() *slog.Logger {
	if s.opt.HTTP.Log != nil {
		return s.opt.HTTP.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Collectors are the sink's own metrics (the runner has the others).
func (s *Sink) Collectors() []prometheus.Collector {
	return append(s.http.Retries.Collectors(s.Name()), sinks.DeadLettersCounter(s.Name(), s.DeadLetters.Load))
}

// Package nats replicates the store to NATS JetStream, exactly once per
// origin: every stored record, the agent's own included, becomes one
// message on the subject tailseal.records.<origin token> whose body is
// the stored line byte for byte, with the header Nats-Msg-Id:
// <origin>:<seq>.
//
// The stream, not the local cursor, is the truth about what was
// delivered. The sink is a sinks.Resumer: before its first batch, and
// whenever JetStream refuses a batch because the subject holds something
// else than expected, it reads the last message on its subject and the
// runner goes on right after that record. Every batch is one JetStream
// atomic batch (all of it is stored, or none) whose first message carries
// Nats-Expected-Last-Subject-Sequence, the stream sequence of the last
// message on the subject: a publish whose answer was lost, a stale agent
// or another store with the same origin is refused instead of leaving a
// gap or a duplicate, beyond the stream's duplicate window too. A stream
// that holds more of this origin than the store, or other records, stops
// the sink: it never publishes over them.
package nats

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/sinks"
)

// SubjectPrefix is what every record subject starts with; the stream's
// subjects are SubjectPrefix + ">".
const SubjectPrefix = "tailseal.records."

// MaxBatch is the most messages in one JetStream atomic batch (the
// server's default limit).
const MaxBatch = 1000

// Header names the sink sets.
const (
	MsgIDHeader               = jetstream.MsgIDHeader               // Nats-Msg-Id
	ExpectedLastSubjSeqHeader = jetstream.ExpectedLastSubjSeqHeader // Nats-Expected-Last-Subject-Sequence
)

// Subject is the subject of an origin's records.
func Subject(origin string) string { return SubjectPrefix + record.OriginToken(origin) }

// MsgID is the Nats-Msg-Id of a record: unique across origins, since the
// seq after the last ':' is decimal.
func MsgID(origin string, seq uint64) string { return origin + ":" + strconv.FormatUint(seq, 10) }

// Options configure the sink.
type Options struct {
	Origin string   // the store's origin
	URLs   []string // servers
	// At most one way to authenticate.
	CredsFile string // a .creds file (user JWT and NKey seed)
	NKeyFile  string // an NKey seed file
	Token     string
	CAFile    string // PEM: trust this CA (TLS)
	// The stream, created when missing with file storage, Replicas and
	// DuplicateWindow; an existing one must have those settings.
	Stream          string
	Replicas        int
	DuplicateWindow time.Duration
	Timeout         time.Duration // per request and connection attempt
	Log             *slog.Logger
}

// Sink publishes batches of records to JetStream. Resume and Deliver are
// called by one goroutine (the runner's).
type Sink struct {
	opt      Options
	subject  string
	connOpts []nats.Option
	log      *slog.Logger

	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	// What the sink knows of its subject's last message: its record seq
	// and its stream sequence (the next batch's expectation).
	last, lastStream uint64
	batch            int // messages per atomic batch, lowered if the server allows fewer
	msgs             []*nats.Msg

	// Retries are refused or failed publishes retried: network (no
	// answer: the outcome is unknown until the next expectation tells),
	// rate_limited (too many batches in flight on the server),
	// server_error (any other refusal).
	Retries sinks.RetryCounts
}

var _ sinks.Resumer = (*Sink)(nil)

// New checks the options (the files must be readable) and returns a sink
// that connects when it first runs, so that an unreachable server does
// not keep the agent from storing.
func New(opt Options) (*Sink, error) {
	s := &Sink{opt: opt, subject: Subject(opt.Origin), log: opt.Log, batch: MaxBatch}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("sink", s.Name())
	if opt.Timeout <= 0 {
		s.opt.Timeout = 10 * time.Second
	}
	s.connOpts = []nats.Option{
		nats.Name("tailseal " + opt.Origin),
		nats.Timeout(s.opt.Timeout),
		nats.MaxReconnects(-1), // the store is the queue: never give up
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			s.log.Warn("disconnected from NATS; reconnecting", "error", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			s.log.Info("reconnected to NATS", "server", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			s.log.Warn("NATS error", "error", err)
		}),
	}
	switch {
	case opt.CredsFile != "":
		if _, err := os.ReadFile(opt.CredsFile); err != nil {
			return nil, fmt.Errorf("TAILSEAL_NATS_CREDS_FILE: %w", err)
		}
		s.connOpts = append(s.connOpts, nats.UserCredentials(opt.CredsFile))
	case opt.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(opt.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("TAILSEAL_NATS_NKEY_FILE (%s): %w", opt.NKeyFile, err)
		}
		s.connOpts = append(s.connOpts, o)
	case opt.Token != "":
		s.connOpts = append(s.connOpts, nats.Token(opt.Token))
	}
	if opt.CAFile != "" {
		o := nats.RootCAs(opt.CAFile)
		if err := o(&nats.Options{}); err != nil { // reads and parses the file now
			return nil, fmt.Errorf("TAILSEAL_NATS_CA_FILE: %w", err)
		}
		s.connOpts = append(s.connOpts, o)
	}
	return s, nil
}

// Name names the sink in state files, logs and metrics.
func (s *Sink) Name() string { return "nats" }

// Accept takes every record: the stream is a copy of the whole store.
func (s *Sink) Accept([]byte) bool { return true }

// Close closes the connection, if any.
func (s *Sink) Close() {
	if s.nc != nil {
		s.nc.Close()
	}
}

// Deliver publishes the batch as atomic batches of up to MaxBatch
// messages, each expecting the subject's last message to be the one the
// sink knows. Records already acknowledged (a batch retried after part of
// it was stored) are not sent again.
func (s *Sink) Deliver(ctx context.Context, b sinks.Batch) error {
	if s.js == nil {
		return sinks.ErrResume // the runner resumes before delivering; keep it so
	}
	lines := b.Lines
	for len(lines) > 0 {
		if seq, _ := record.Seq(lines[0]); seq <= s.last {
			lines = lines[1:]
			continue
		}
		n := min(len(lines), s.batch)
		err := s.publish(ctx, lines[:n])
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishExceedsLimit && s.batch > 1 {
			s.batch = max(1, s.batch/2)
			s.log.Warn("the server allows smaller atomic batches: publishing fewer messages per batch", "batch", s.batch)
			continue
		}
		if err != nil {
			return err
		}
		lines = lines[n:]
	}
	return nil
}

// publish sends lines as one atomic batch and, once it is acknowledged,
// remembers where the subject now ends.
func (s *Sink) publish(ctx context.Context, lines [][]byte) error {
	msgs := s.messages(len(lines))
	limit := s.nc.MaxPayload()
	var last uint64
	for i, l := range lines {
		seq, ok := record.Seq(l)
		if !ok {
			return fmt.Errorf("%w: a stored record without a seq after %d", sinks.ErrStopped, last)
		}
		last = seq
		h := msgs[i].Header
		clear(h)
		h[MsgIDHeader] = []string{MsgID(s.opt.Origin, seq)}
		if i == 0 {
			h[ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(s.lastStream, 10)}
		}
		if int64(len(l)+len(s.subject)+256) > limit {
			s.log.Error("NATS SINK STOPPED: a record is larger than the NATS server takes; nothing after it is published, so that no record is skipped",
				"seq", seq, "bytes", len(l), "max_payload", limit)
			return fmt.Errorf("%w: record %d is %d bytes, over the server's max_payload (%d): raise max_payload (up to 64 MB) or lower TAILSEAL_MAX_LINE_BYTES, and restart the agent",
				sinks.ErrStopped, seq, len(l), limit)
		}
		msgs[i].Subject, msgs[i].Reply, msgs[i].Data = s.subject, "", l
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	// AckFirst off: the server answers at the commit, which carries every
	// refusal; waiting for the first message too costs a round trip per
	// batch and proves nothing the commit does not.
	ack, err := jetstreamext.PublishMsgBatch(ctx, s.js, msgs, jetstreamext.BatchFlowControl{AckFirst: false})
	if err != nil {
		return s.classify(err)
	}
	s.last, s.lastStream = last, ack.Sequence
	return nil
}

// messages are n messages with empty headers, kept from batch to batch:
// a nats.Msg and its header map cost more than the record they carry.
func (s *Sink) messages(n int) []*nats.Msg {
	for len(s.msgs) < n {
		s.msgs = append(s.msgs, &nats.Msg{Header: nats.Header{}})
	}
	return s.msgs[:n]
}

// classify maps a refused or failed publish to what the runner does:
// ErrResume when the subject holds something else than expected (another
// publisher, or an earlier batch of ours whose answer was lost) or the
// stream changed, so that Resume looks again; the error, retried,
// otherwise.
func (s *Sink) classify(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant,
			jetstreamext.JSErrCodeBatchPublishDuplicateMsgID:
			s.log.Info("the stream refused a batch: its last record of this origin is not the one expected; reading it again",
				"expected_stream_seq", s.lastStream, "error", err)
			return fmt.Errorf("%w: %w", sinks.ErrResume, err)
		case jetstreamext.JSErrCodeBatchPublishNotEnabled, jetstream.JSErrCodeStreamNotFound:
			return fmt.Errorf("%w: %w", sinks.ErrResume, err)
		}
	}
	if errors.Is(err, nats.ErrNoResponders) {
		// No stream takes the subject: deleted (Resume makes it again, and
		// the records still stored go into it) or without a leader (Resume
		// waits for one).
		return fmt.Errorf("%w: %w", sinks.ErrResume, s.count(err))
	}
	return s.count(err)
}

// count counts a failed request as a retry, by reason: network (no
// answer, so the outcome is unknown until the next expectation tells),
// rate_limited (too many batches in flight on the server), server_error
// (any other refusal, or no stream leader answering).
func (s *Sink) count(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstreamext.JSErrCodeAtomicPublishTooManyInflight ||
		apiErr.ErrorCode == jetstreamext.JSErrCodeBatchPublishTooManyInflight):
		s.Retries.RateLimited.Add(1)
	case apiErr != nil, errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		s.Retries.ServerError.Add(1)
	default:
		s.Retries.Network.Add(1)
	}
	return err
}

// Resume connects (once), makes sure the stream is there with the
// expected settings, and returns the seq of this origin's last record in
// it, 0 for none. It stops the sink (sinks.ErrStopped) when that message
// is not a record of this store: another publisher on the subject, a
// seq beyond this store's last, or other bytes than this store holds at
// that seq (another store with the same origin).
func (s *Sink) Resume(ctx context.Context, src sinks.Store) (uint64, error) {
	if err := s.connect(); err != nil {
		return 0, s.count(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	if err := s.ensureStream(ctx); err != nil {
		return 0, err
	}
	m, err := s.stream.GetLastMsgForSubject(ctx, s.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		s.last, s.lastStream = 0, 0
		return 0, nil
	}
	if err != nil {
		return 0, s.count(err)
	}
	seq, ok := record.Seq(m.Data)
	if id := m.Header.Get(MsgIDHeader); !ok || id != MsgID(s.opt.Origin, seq) {
		return 0, s.stop("the last message on the subject is not a record of this origin: something else publishes on it",
			"stream_seq", m.Sequence, "msg_id", m.Header.Get(MsgIDHeader))
	}
	if durable := src.Durable(); seq > durable {
		return 0, s.stop("the stream holds records of this origin beyond this store's last one: another store publishes under the same origin (or this store lost records); not publishing over it",
			"stream_last_seq", seq, "store_last_seq", durable)
	}
	rd := src.Open(seq)
	defer rd.Close()
	line, ok, err := rd.Next(seq)
	switch {
	case errors.Is(err, sinks.ErrGone):
		s.log.Warn("the stream's last record of this origin is no longer in the store; it cannot be compared", "seq", seq)
	case err != nil:
		return 0, err
	case !ok:
		return 0, fmt.Errorf("record %d: not in the store", seq)
	case !bytes.Equal(line, m.Data):
		return 0, s.stop("the stream's last record of this origin differs from this store's record with the same seq: another store publishes under the same origin; not publishing over it",
			"seq", seq, "stream_seq", m.Sequence)
	}
	s.last, s.lastStream = seq, m.Sequence
	return seq, nil
}

// stop logs why the sink stops and returns the error that stops it.
func (s *Sink) stop(why string, args ...any) error {
	s.log.Error("NATS SINK STOPPED: "+why, append([]any{"stream", s.opt.Stream, "subject", s.subject}, args...)...)
	return fmt.Errorf("%w: stream %s, subject %s: %s", sinks.ErrStopped, s.opt.Stream, s.subject, why)
}

func (s *Sink) connect() error {
	if s.nc != nil {
		return nil
	}
	nc, err := nats.Connect(strings.Join(s.opt.URLs, ","), s.connOpts...)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(s.opt.Timeout))
	if err != nil {
		nc.Close()
		return err
	}
	s.log.Info("connected to NATS", "server", nc.ConnectedUrlRedacted(), "subject", s.subject)
	s.nc, s.js = nc, js
	return nil
}

// Collectors are the sink's own metrics (the runner has the others).
func (s *Sink) Collectors() []prometheus.Collector { return s.Retries.Collectors(s.Name()) }

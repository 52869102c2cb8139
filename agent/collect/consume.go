package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/signer/record"
)

// Reading JetStream: the consumer, in stream order, one group commit per
// batch, and the lag the metrics show.

// reorderPause is the wait before a session that ended on a reordered
// delivery starts again.
const reorderPause = 100 * time.Millisecond

// errReorder ends a session that received a message before one of the
// stream that it has not seen: the consumer is reset and read again.
var errReorder = errors.New("a message came before one not yet delivered")

// session creates or updates the consumer, resets it to its first
// unacknowledged message, and consumes until an error.
func (c *Collector) session(ctx context.Context, js jetstream.JetStream) (progressed bool, err error) {
	stream, err := js.Stream(ctx, c.cfg.NATSStream)
	if err != nil {
		return false, err
	}
	batch := c.cfg.CollectBatch
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       c.consumer,
		Description:   fmt.Sprintf("tailseal collect, partition %d of %d", c.cfg.CollectPartition, max(c.cfg.CollectPartitions, 1)),
		FilterSubject: SubjectFilter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       c.cfg.CollectAckWait,
		MaxAckPending: 4 * batch,
	})
	if err != nil {
		return false, fmt.Errorf("consumer %s: %w", c.consumer, err)
	}
	// Whatever a previous run (killed, or this process before an error)
	// had been delivered and not acknowledged would be delivered again
	// only after its ack wait, after newer messages: a reset delivers from
	// the first unacknowledged message on, in stream order.
	from, err := c.reset(ctx, js, cons)
	if err != nil {
		return false, err
	}
	c.lastStream = from - 1
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * batch))
	if err != nil {
		return false, fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go c.watch(wctx, stream, cons)
	c.ready.Store(true)
	defer c.ready.Store(false)
	c.log.Info("consuming", "stream", c.cfg.NATSStream, "consumer", c.consumer, "from_stream_seq", from)
	for {
		msgs, err := c.gather(ctx, it, batch)
		if err != nil {
			return progressed, err
		}
		reorder, err := c.process(ctx, stream, msgs)
		if err != nil {
			return progressed, err
		}
		progressed = true
		if reorder {
			return true, errReorder
		}
	}
}

// reset makes the consumer deliver from its first unacknowledged message
// and returns that message's stream seq. A server without consumer reset
// (before NATS 2.14) keeps what it delivered pending until the ack wait:
// then the consumer is read from its ack floor, and a message delivered
// ahead of one still pending ends the session (unseenBefore) until the
// server redelivers in order.
func (c *Collector) reset(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer) (uint64, error) {
	r, err := js.ResetConsumer(ctx, c.cfg.NATSStream, c.consumer)
	if err == nil {
		c.m.resets.Inc()
		return r.ResetSeq, nil
	}
	if ctx.Err() != nil {
		return 0, err
	}
	info, ierr := cons.Info(ctx)
	if ierr != nil {
		return 0, fmt.Errorf("reset consumer %s: %w; consumer info: %w", c.consumer, err, ierr)
	}
	if !c.resetUnsupported {
		c.resetUnsupported = true
		c.log.Warn("the NATS server cannot reset the consumer; reading it from its ack floor (after a restart, the messages a previous run had not acknowledged come after the ack wait)",
			"error", err, "ack_wait", c.cfg.CollectAckWait)
	}
	return info.AckFloor.Stream + 1, nil
}

// gatherWait is how long a batch waits for one more message once it has
// one: under load the client's buffer holds the next ones already.
const gatherWait = 2 * time.Millisecond

// gather waits for a message, then takes what follows it at once, up to
// batch: one group commit.
func (c *Collector) gather(ctx context.Context, it jetstream.MessagesContext, batch int) ([]jetstream.Msg, error) {
	m, err := it.Next(jetstream.NextContext(ctx))
	if err != nil {
		return nil, err
	}
	msgs := append(c.msgs[:0], m)
	for len(msgs) < batch {
		m, err := it.Next(jetstream.NextMaxWait(gatherWait))
		if err != nil {
			break // a timeout, or an error the next wait reports
		}
		msgs = append(msgs, m)
	}
	c.msgs = msgs
	return msgs, nil
}

// process handles a batch in stream order, makes it durable and then
// acknowledges it with its last message (AckAll). A message that comes
// before one of the stream not delivered yet ends the batch there, and
// reorder says the consumer must be read again from there.
func (c *Collector) process(ctx context.Context, stream jetstream.Stream, msgs []jetstream.Msg) (reorder bool, err error) {
	start := time.Now()
	var last jetstream.Msg
	touched := map[*origin]bool{}
	now := c.opt.Now()
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			return false, fmt.Errorf("message metadata: %w", err)
		}
		sseq := meta.Sequence.Stream
		if sseq <= c.lastStream {
			c.m.redelivered.Inc() // handled already (its ack wait ran out)
			continue
		}
		if sseq > c.lastStream+1 {
			unseen, err := c.unseenBefore(ctx, stream, c.lastStream+1, sseq)
			if err != nil {
				return false, err
			}
			if unseen {
				c.log.Warn("collect: a message came before one of the stream not delivered yet; reading again from there", "expected_after", c.lastStream, "got", sseq)
				reorder = true
				break
			}
		}
		if err := c.handle(m, sseq, now, touched); err != nil {
			return false, err
		}
		c.lastStream, last = sseq, m
	}
	for _, o := range sortedOrigins(touched) {
		if err := o.commit(); err != nil {
			return false, err
		}
	}
	if err := c.top.sync(); err != nil {
		return false, err
	}
	if last != nil {
		// Acknowledged even when ctx is done: what is durable need not come
		// again. AckAll: this acknowledges every message up to it.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := last.DoubleAck(actx)
		cancel()
		if err != nil {
			return false, fmt.Errorf("acknowledge: %w", err)
		}
	}
	c.m.batches.Inc()
	c.m.batchSeconds.Observe(time.Since(start).Seconds())
	return reorder, nil
}

// sortedOrigins orders a batch's origins by token, so that commits run in
// the same order every time.
func sortedOrigins(set map[*origin]bool) []*origin {
	out := make([]*origin, 0, len(set))
	for o := range set {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].tok < out[j].tok })
	return out
}

// unseenBefore reports whether the stream holds a message of
// tailseal.records.> from seq from that comes before seq to: one the
// consumer should have delivered first. Holes of deleted messages are
// not.
func (c *Collector) unseenBefore(ctx context.Context, stream jetstream.Stream, from, to uint64) (bool, error) {
	raw, err := stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(SubjectFilter))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up stream seq %d: %w", from, err)
	}
	return raw.Sequence < to, nil
}

// watch keeps the lag metrics: the consumer's pending messages and, per
// origin, how many records the stream holds after the last one collected.
func (c *Collector) watch(ctx context.Context, stream jetstream.Stream, cons jetstream.Consumer) {
	t := time.NewTicker(c.opt.LagInterval)
	defer t.Stop()
	for {
		if info, err := cons.Info(ctx); err == nil {
			c.m.pending.Set(float64(info.NumPending))
			c.m.ackPending.Set(float64(info.NumAckPending))
		}
		c.mu.Lock()
		open := make([]*origin, 0, len(c.origins))
		for _, o := range c.origins {
			open = append(open, o)
		}
		c.mu.Unlock()
		for _, o := range open {
			raw, err := stream.GetLastMsgForSubject(ctx, SubjectPrefix+o.tok)
			if err != nil {
				continue
			}
			if seq, ok := record.Seq(raw.Data); ok {
				c.m.lag.WithLabelValues(o.name).Set(float64(max(int64(seq)-int64(o.st.Durable()), 0)))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// connect dials the configured NATS servers; it goes on retrying in the
// background when none answers yet, as the consumer loop retries too.
func connect(cfg *config.Config, log *slog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("tailseal collect"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats: disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats: connected", "server", nc.ConnectedUrlRedacted()) }),
	}
	switch {
	case cfg.NATSCredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.NATSCredsFile))
	case cfg.NATSNKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NATSNKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: TAILSEAL_NATS_NKEY_FILE %s: %w", config.ErrInvalid, cfg.NATSNKeyFile, err)
		}
		opts = append(opts, o)
	case cfg.NATSToken != "":
		opts = append(opts, nats.Token(cfg.NATSToken))
	}
	if cfg.NATSCAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSCAFile))
	}
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	return nc, nil
}

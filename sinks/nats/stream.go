package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig is the stream the sink creates when it is missing: every
// origin's records, on file, kept until an operator removes them (no
// limits), with the duplicate window and atomic batches on.
func StreamConfig(opt Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               opt.Stream,
		Description:        "tailseal records, one subject per origin",
		Subjects:           []string{SubjectPrefix + ">"},
		Retention:          jetstream.LimitsPolicy,
		Storage:            jetstream.FileStorage,
		Replicas:           opt.Replicas,
		Duplicates:         opt.DuplicateWindow,
		AllowAtomicPublish: true,
	}
}

// ensureStream looks the stream up, creates it when it is missing, and
// checks that an existing one can hold the records exactly once. It
// never changes a stream: a mismatch stops the sink with what differs.
func (s *Sink) ensureStream(ctx context.Context) error {
	want := StreamConfig(s.opt)
	st, err := s.js.Stream(ctx, s.opt.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = s.js.CreateStream(ctx, want)
		if err == nil {
			s.log.Info("created the JetStream stream", "stream", want.Name, "subjects", want.Subjects, "replicas", want.Replicas,
				"duplicate_window", want.Duplicates.String())
		} else if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another agent was first
			st, err = s.js.Stream(ctx, s.opt.Stream)
		}
	}
	if err != nil {
		return s.count(fmt.Errorf("stream %s: %w", s.opt.Stream, err))
	}
	got := st.CachedInfo().Config
	if diffs := streamDiffs(got, want); len(diffs) > 0 {
		return s.stop("the stream exists with other settings, which tailseal does not change: "+strings.Join(diffs, "; ")+
			"; fix the stream (nats stream edit) or name another one in TAILSEAL_NATS_STREAM",
			"differences", diffs)
	}
	if got.MaxAge > 0 || got.MaxMsgs > 0 || got.MaxBytes > 0 {
		s.log.Warn("the stream has limits that can remove an origin's last record; the sink would then publish that origin's stored records again",
			"stream", got.Name, "max_age", got.MaxAge.String(), "max_msgs", got.MaxMsgs, "max_bytes", got.MaxBytes)
	}
	s.stream = st
	return nil
}

// streamDiffs lists the settings of an existing stream that would break
// exactly once or the sink's publishing, against want.
func streamDiffs(got, want jetstream.StreamConfig) []string {
	var d []string
	if !slices.Equal(got.Subjects, want.Subjects) {
		d = append(d, fmt.Sprintf("subjects %q, want %q", got.Subjects, want.Subjects))
	}
	if got.Retention != want.Retention {
		d = append(d, fmt.Sprintf("retention %s, want %s (messages must stay after they are read)", got.Retention, want.Retention))
	}
	if got.Storage != want.Storage {
		d = append(d, fmt.Sprintf("storage %s, want %s", got.Storage, want.Storage))
	}
	if got.Replicas != want.Replicas {
		d = append(d, fmt.Sprintf("replicas %d, want %d (TAILSEAL_NATS_REPLICAS)", got.Replicas, want.Replicas))
	}
	if got.Duplicates != want.Duplicates {
		d = append(d, fmt.Sprintf("duplicate window %s, want %s (TAILSEAL_NATS_DUPLICATE_WINDOW)", got.Duplicates, want.Duplicates))
	}
	if !got.AllowAtomicPublish {
		d = append(d, "atomic batch publish off, want on (allow_atomic; nats-server 2.12 or later)")
	}
	if got.Sealed || got.NoAck || got.Mirror != nil || got.SubjectTransform != nil {
		d = append(d, "sealed, without acknowledgements, a mirror or with a subject transform: the sink cannot publish into it")
	}
	return d
}

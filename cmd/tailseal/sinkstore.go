package main

import (
	"errors"
	"fmt"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/sinks"
)

// sinkStore is the agent's store as sinks read it.
type sinkStore struct {
	*store.Store // Durable and Changed
	dir          string
}

var _ sinks.Store = sinkStore{}

func (s sinkStore) Open(from uint64) sinks.RecordReader {
	return sinkReader{store.NewReader(s.dir, from)}
}

func (s sinkStore) Oldest() (uint64, error) { return oldestSeq(s.dir) }

// oldestSeq is the first seq of the oldest segment in the store in dir,
// 0 when there is none.
func oldestSeq(dir string) (uint64, error) {
	segs, err := store.List(dir)
	if err != nil || len(segs) == 0 {
		return 0, err
	}
	return segs[0].First, nil
}

// sinkReader maps store.ErrGone to sinks.ErrGone.
type sinkReader struct{ *store.Reader }

func (r sinkReader) Next(durable uint64) ([]byte, bool, error) {
	line, ok, err := r.Reader.Next(durable)
	if errors.Is(err, store.ErrGone) {
		err = fmt.Errorf("%w: %w", sinks.ErrGone, err)
	}
	return line, ok, err
}

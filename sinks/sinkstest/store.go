package sinkstest

import (
	"fmt"
	"sync"

	"github.com/tailseal/tailseal/sinks"
)

// Store is a sinks.Store in memory, for tests of sinks alone (cmd/tailseal
// tests them over the real store). Append adds durable records; Drop
// deletes the oldest, as an operator would by hand.
type Store struct {
	mu      sync.Mutex
	first   uint64   // seq of lines[0]
	lines   [][]byte // without newlines
	changed chan struct{}
}

var _ sinks.Store = (*Store)(nil)

// NewStore returns an empty store whose first record will be seq 1.
func NewStore() *Store { return &Store{first: 1, changed: make(chan struct{})} }

// Append adds records with the next seqs and makes them durable at once.
func (s *Store) Append(lines ...[]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, lines...)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Drop deletes the records before seq upTo.
func (s *Store) Drop(upTo uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(upTo-s.first, uint64(len(s.lines)))
	s.lines, s.first = s.lines[n:], s.first+n
}

func (s *Store) Durable() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first + uint64(len(s.lines)) - 1
}

func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) Open(from uint64) sinks.RecordReader { return &reader{s: s, next: max(from, 1)} }

func (s *Store) Oldest() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lines) == 0 {
		return 0, nil
	}
	return s.first, nil
}

type reader struct {
	s    *Store
	next uint64
}

func (r *reader) Next(durable uint64) ([]byte, bool, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.next < r.s.first {
		return nil, false, fmt.Errorf("seq %d: %w", r.next, sinks.ErrGone)
	}
	i := r.next - r.s.first
	if r.next > durable || i >= uint64(len(r.s.lines)) {
		return nil, false, nil
	}
	r.next++
	return r.s.lines[i], true, nil
}

func (r *reader) Seq() uint64  { return r.next }
func (r *reader) Close() error { return nil }

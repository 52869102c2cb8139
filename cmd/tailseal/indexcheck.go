package main

import (
	"bytes"

	"github.com/tailseal/tailseal/agent/store"
)

// indexChecker feeds a segment's lines to a store.IndexCheck on another
// goroutine, in chunks, so that holding the index to the segment costs
// verify the second core and not time: rebuilding an entry costs about as
// much as checking the chain.
type indexChecker struct {
	check  *store.IndexCheck
	chunk  []byte
	chunks chan []byte
	free   chan []byte
	result chan string
}

const indexChunk = 256 << 10

func newIndexChecker(check *store.IndexCheck) *indexChecker {
	c := &indexChecker{check: check, chunks: make(chan []byte, 2), free: make(chan []byte, 3), result: make(chan string, 1)}
	for range 3 {
		c.free <- make([]byte, 0, indexChunk+4<<10)
	}
	c.chunk = <-c.free
	go c.run()
	return c
}

func (c *indexChecker) run() {
	for chunk := range c.chunks {
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, '\n')
			c.check.Add(chunk[:i])
			chunk = chunk[i+1:]
		}
		c.free <- chunk[:0]
	}
	c.result <- c.check.Mismatch()
}

// add queues a line (copied).
func (c *indexChecker) add(line []byte) {
	c.chunk = append(append(c.chunk, line...), '\n')
	if len(c.chunk) >= indexChunk {
		c.chunks <- c.chunk
		c.chunk = <-c.free
	}
}

// mismatch ends the segment and returns what store.IndexCheck found.
func (c *indexChecker) mismatch() string {
	if len(c.chunk) > 0 {
		c.chunks <- c.chunk
	}
	close(c.chunks)
	return <-c.result
}

// abandon stops the goroutine of a segment not read to its end.
func (c *indexChecker) abandon() {
	if c != nil {
		c.mismatch()
	}
}

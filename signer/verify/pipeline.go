package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tailseal/tailseal/signer/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// Verify runs on every core: what a line's checks cost is hashing (its
// SHA-256 for the next line's prev, its Merkle leaf hash, its HMAC) and,
// before that, decompressing its segment. None of that depends on the
// lines before, so it is done out of order by hashers, a chunk of lines at
// a time, while the verifier proper takes the chunks in store order and
// runs the checks that do depend on the lines before (seq order, the
// chain, epochs, the tree's nodes, checkpoints) on the hashes, as it
// always has, line by line. Its findings are therefore the same, in the
// same order, whatever the number of hashers.
//
// Readers decompress the segments, each a segment at a time, in turn
// (reader k reads segments k, k+R, k+2R…): decompressing a gzip segment
// costs about as much as hashing it, so one reader would be the slowest
// step on two cores. Reading a segment at a time per reader keeps memory
// to a few chunks each, whatever the segments' size. Nobody waits while
// there is hashing to do: the verifier hashes the chunk it needs next when
// no hasher has started it, and a reader, waiting for a chunk to fill,
// hashes one that waits for a hasher. On a machine that other programs
// keep busy, a hasher is often not running when its chunk is needed.

// Chunk sizes: a chunk holds at most chunkBytes of lines (more when a
// single line is longer) and checkEvery lines, so that the verifier looks
// at the context as often as it did line by line. 256 KiB was faster
// than 128 or 512 KiB on two cores (docs/performance.md).
const chunkBytes = 256 << 10

// chunk is a run of consecutive lines of one segment.
type chunk struct {
	seg    Segment
	data   []byte        // the lines back to back, without their newlines
	ends   []int         // where each line ends in data
	hashed []hashed      // by a hasher, one per line
	last   bool          // the segment's last chunk (it may hold no lines)
	err    error         // with last: why the segment could not be read to its end
	taken  atomic.Bool   // someone is hashing it
	ready  chan struct{} // closed when it is hashed
	home   *reader       // whose chunk it is
}

func (c *chunk) line(i int) []byte {
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.data[start:c.ends[i]]
}

// hashed is what a hasher finds out about a line on its own.
type hashed struct {
	lineNo int
	p      parsed
	h      [32]byte // SHA-256 of the line, which the next line's prev names
	hb64   [44]byte // h as prev holds it (standard base64)
	leaf   tlog.Hash
	sig    sigVerdict
	// Copies of the short fields the verifier reads, which p then points
	// to: the verifier reads them here, one line after the other, rather
	// than in the lines, from memory another core wrote.
	prev      [44]byte
	eventType [24]byte
}

// sigVerdict is a hasher's word on a signature.
type sigVerdict uint8

const (
	sigUnchecked sigVerdict = iota // no key, not a record, or an epoch whose key only the verifier may derive
	sigGood
	sigBad
)

// errStopped ends the reader's call of Source.Lines when the verifier
// stopped.
var errStopped = errors.New("verification stopped")

// pipeline reads, hashes and hands over the chunks of a store.
type pipeline struct {
	readers []*reader
	cur     int         // the reader of the segment the verifier is in
	work    chan *chunk // to the hashers, in any order
	stop    chan struct{}
	wg      sync.WaitGroup
	lines   int // most lines in a chunk
}

// reader reads every len(readers)-th segment into chunks of its own.
type reader struct {
	free    chan *chunk // its chunks not in use; how many there are bounds the memory
	ordered chan *chunk // to the verifier, in store order
}

// maxReaders bounds the readers: decompressing is about a third of the
// work or less, and every reader holds chunks of its own.
const maxReaders = 4

// startPipeline reads segs from src on reader goroutines of their own and
// hashes them on workers goroutines (0: GOMAXPROCS), checking signatures
// under K0's epoch keys when k0 is set; chunkLines (0: checkEvery) bounds
// a chunk. The verifier takes the chunks with next, gives each back with
// release, and ends it with close.
func startPipeline(src Source, segs []Segment, k0 []byte, workers, chunkLines int) *pipeline {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if chunkLines <= 0 {
		chunkLines = checkEvery
	}
	readers := min(workers, maxReaders, max(1, len(segs)))
	// Per reader: one filling, and two for each hasher it has a share of
	// (one hashed or checked, one waiting). On two cores this was faster
	// than a chunk more per reader (the lines are still in the cache
	// when they are hashed) and a chunk fewer stalls the readers.
	n := 1 + (2*workers+readers-1)/readers
	pl := &pipeline{work: make(chan *chunk, 2*n*readers), stop: make(chan struct{}), lines: chunkLines}
	var reading sync.WaitGroup
	for k := range readers {
		r := &reader{free: make(chan *chunk, n), ordered: make(chan *chunk, n)}
		for range n {
			r.free <- &chunk{home: r}
		}
		pl.readers = append(pl.readers, r)
		var mine []Segment
		for i := k; i < len(segs); i += readers {
			mine = append(mine, segs[i])
		}
		reading.Add(1)
		go pl.read(r, src, mine, newHasher(k0), &reading)
	}
	pl.wg.Add(1 + workers)
	go func() {
		defer pl.wg.Done()
		reading.Wait()
		close(pl.work)
	}()
	for range workers {
		go pl.hashAll(newHasher(k0))
	}
	return pl
}

// close stops the readers and the hashers and waits for them: the source
// is not called after it.
func (pl *pipeline) close() {
	close(pl.stop)
	pl.wg.Wait()
}

// release gives a chunk the verifier is done with back to its reader.
func (pl *pipeline) release(c *chunk) { c.home.free <- c }

// take returns a free chunk of r for seg, or nil when the verifier
// stopped, hashing what waits for a hasher meanwhile.
func (pl *pipeline) take(r *reader, seg Segment, h *hasher) *chunk {
	for {
		select {
		case c := <-r.free:
			c.seg, c.data, c.ends, c.last, c.err = seg, c.data[:0], c.ends[:0], false, nil
			c.ready = make(chan struct{})
			return c
		case c := <-pl.work:
			h.hash(c)
		case <-pl.stop:
			return nil
		}
	}
}

// next returns the next chunk in store order, hashed, and false at the
// end: the segments are the readers' in turn, and a reader with none left
// means there are none.
func (pl *pipeline) next(h *hasher) (*chunk, bool) {
	c, ok := <-pl.readers[pl.cur].ordered
	if ok {
		if c.last {
			pl.cur = (pl.cur + 1) % len(pl.readers)
		}
		h.hash(c)
		<-c.ready
	}
	return c, ok
}

// emit hands a filled chunk on. The work queue may still hold the chunk
// from its last use, hashed since by someone else: that entry is skipped
// while the chunk is filled (taken is still set), and hashes it once it
// is emitted, and then the new entry is skipped. ordered holds as many
// chunks as its reader has, so it never blocks; work may be full of such
// entries, and then the chunk is left to the verifier, which hashes what
// nobody did.
func (pl *pipeline) emit(c *chunk) {
	c.taken.Store(false) // after the chunk's lines: whoever takes it sees them
	c.home.ordered <- c
	select {
	case pl.work <- c:
	default:
	}
}

// read reads segs, in order, into r's chunks.
func (pl *pipeline) read(r *reader, src Source, segs []Segment, h *hasher, reading *sync.WaitGroup) {
	defer reading.Done()
	defer close(r.ordered)
	for _, seg := range segs {
		var c *chunk
		err := src.Lines(seg, func(lineNo int, data []byte) error {
			if c != nil && (len(c.ends) == pl.lines || len(c.data)+len(data) > chunkBytes) {
				pl.emit(c)
				c = nil
			}
			if c == nil {
				if c = pl.take(r, seg, h); c == nil {
					return errStopped
				}
			}
			c.data = append(c.data, data...)
			c.ends = append(c.ends, len(c.data))
			if cap(c.hashed) < len(c.ends) {
				c.hashed = append(c.hashed[:cap(c.hashed)], hashed{})
			}
			c.hashed = c.hashed[:len(c.ends)]
			c.hashed[len(c.ends)-1].lineNo = lineNo
			return nil
		})
		if errors.Is(err, errStopped) {
			return
		}
		if c == nil {
			if c = pl.take(r, seg, h); c == nil {
				return
			}
		}
		c.last, c.err = true, err
		pl.emit(c)
	}
}

// hashed hashes the lines of chunks until there are none.
func (pl *pipeline) hashAll(h *hasher) {
	defer pl.wg.Done()
	for c := range pl.work {
		h.hash(c)
	}
}

// hasher hashes chunks, checking signatures with keys of its own.
type hasher struct {
	keys *epochKeys // nil: no K0
}

func newHasher(k0 []byte) *hasher {
	if k0 == nil {
		return &hasher{}
	}
	return &hasher{keys: &epochKeys{k0: k0}}
}

// hash hashes the lines of c, unless someone else is.
func (h *hasher) hash(c *chunk) {
	if !c.taken.CompareAndSwap(false, true) {
		return
	}
	for i := range c.ends {
		line, x := c.line(i), &c.hashed[i]
		x.p = parse(line)
		if len(x.p.prev) <= len(x.prev) {
			x.p.prev = x.prev[:copy(x.prev[:], x.p.prev)]
		}
		if len(x.p.eventType) <= len(x.eventType) {
			x.p.eventType = x.eventType[:copy(x.eventType[:], x.p.eventType)]
		}
		x.h = sha256.Sum256(line)
		base64.StdEncoding.Encode(x.hb64[:], x.h[:])
		x.leaf = merkle.LeafHash(line)
		x.sig = sigUnchecked
		// Up to maxEpochJump, a key's derivation cannot fail, so the
		// verdict does not depend on the keys derived before, and the
		// verifier takes it as it would have found it.
		if h.keys != nil && x.p.ok && x.p.epoch <= maxEpochJump {
			x.sig = sigBad
			if h.keys.verifies(&x.p) {
				x.sig = sigGood
			}
		}
	}
	close(c.ready)
}

package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/agent/record"
)

// IndexFile is the per-segment metadata file inside the store directory.
const IndexFile = "index"

// IndexEntry describes one rotated segment, so readers can skip it.
type IndexEntry struct {
	Segment   string         `json:"segment"`
	FirstSeq  uint64         `json:"first_seq"`
	LastSeq   uint64         `json:"last_seq"`
	FirstTime string         `json:"first_time"`
	LastTime  string         `json:"last_time"`
	Count     int            `json:"count"`
	Bytes     int64          `json:"bytes"`
	Types     map[string]int `json:"types"`
}

// indexer builds an IndexEntry from the bytes of a segment as they stream by.
type indexer struct {
	entry   IndexEntry
	partial []byte
}

func newIndexer(name string) *indexer {
	return &indexer{entry: IndexEntry{Segment: name, Types: map[string]int{}}}
}

func (ix *indexer) Write(p []byte) (int, error) {
	ix.entry.Bytes += int64(len(p))
	data := p
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			ix.partial = append(ix.partial, data...)
			return len(p), nil
		}
		line := data[:i]
		if len(ix.partial) > 0 {
			line = append(ix.partial, line...)
			ix.partial = ix.partial[:0]
		}
		ix.add(line)
		data = data[i+1:]
	}
}

func (ix *indexer) add(line []byte) {
	seq, ok := record.Seq(line)
	if !ok {
		return
	}
	e := &ix.entry
	ts, _ := record.StringField(line, "timestamp")
	if e.Count == 0 {
		e.FirstSeq, e.FirstTime = seq, string(ts)
	}
	e.LastSeq, e.LastTime = seq, string(ts)
	e.Count++
	if typ, ok := record.StringField(line, "event_type"); ok {
		if n, ok := e.Types[string(typ)]; ok {
			e.Types[string(typ)] = n + 1
		} else {
			e.Types[string(typ)] = 1
		}
	}
}

func (ix *indexer) finish() {
	if len(ix.partial) > 0 {
		ix.add(ix.partial)
	}
}

// appendIndex adds an entry to the index file and makes it durable.
func appendIndex(dir string, e IndexEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return atomicfile.Append(filepath.Join(dir, IndexFile), append(b, '\n'), 0o600)
}

// ReadIndex returns the index entries by segment name. A torn last line is
// ignored: the entry is rebuilt by whoever needs it.
func ReadIndex(dir string) (map[string]IndexEntry, error) {
	f, err := os.Open(filepath.Join(dir, IndexFile))
	if os.IsNotExist(err) {
		return map[string]IndexEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	defer f.Close()
	out := map[string]IndexEntry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e IndexEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out[e.Segment] = e
		}
	}
	return out, sc.Err()
}

package collect

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/signer/record"
)

var jsonUnmarshal = json.Unmarshal

// quarantine is an append-only file of messages kept out of a store, one
// JSON object a line (quarantineEntry). It is fsynced with the batch,
// before the messages are acknowledged.
type quarantine struct {
	path       string
	f          *os.File // nil until the first entry
	entries    int
	halted     bool   // an entry says its origin halted
	lastStream uint64 // stream seq of the newest entry: a redelivery is not written twice
	dirty      bool
}

// quarantineEntry is one line of a quarantine file. Line holds the
// message body when it is UTF-8 (the usual case: a stored line), else
// LineBase64 does, so that no byte is lost.
type quarantineEntry struct {
	Time      string `json:"time"`
	StreamSeq uint64 `json:"stream_seq"`
	Subject   string `json:"subject"`
	MsgID     string `json:"msg_id"`
	Finding   string `json:"finding"`
	Detail    string `json:"detail"`
	// Halted: the origin's store ends before this message (a gap, a
	// broken chain, or a message after one); a fork does not halt.
	Halted     bool   `json:"halted"`
	Line       string `json:"line,omitempty"`
	LineBase64 []byte `json:"line_base64,omitempty"`
}

func openQuarantine(path string) (*quarantine, error) {
	q := &quarantine{path: path}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return q, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read quarantine: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var e quarantineEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			q.entries++
			q.halted = q.halted || e.Halted
			q.lastStream = max(q.lastStream, e.StreamSeq)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read quarantine: %w", err)
	}
	return q, nil
}

// add writes one message; false when it was written before (the same
// stream seq, delivered again after a restart).
func (q *quarantine) add(m msg, now time.Time, kind, detail string, halted bool) (bool, error) {
	if m.streamSeq != 0 && m.streamSeq <= q.lastStream {
		return false, nil
	}
	e := quarantineEntry{Time: now.UTC().Format(time.RFC3339Nano), StreamSeq: m.streamSeq, Subject: m.subject, MsgID: m.msgID, Finding: kind, Detail: detail, Halted: halted}
	if utf8.Valid(m.line) {
		e.Line = string(m.line)
	} else {
		e.LineBase64 = m.line
	}
	b, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	if q.f == nil {
		if err := os.MkdirAll(filepath.Dir(q.path), 0o700); err != nil {
			return false, fmt.Errorf("quarantine: %w", err)
		}
		if q.f, err = os.OpenFile(q.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
			return false, fmt.Errorf("quarantine: %w", err)
		}
	}
	if _, err := q.f.Write(append(b, '\n')); err != nil {
		return false, fmt.Errorf("quarantine: %w", err)
	}
	q.entries++
	q.halted = q.halted || halted
	q.lastStream = max(q.lastStream, m.streamSeq)
	q.dirty = true
	return true, nil
}

func (q *quarantine) sync() error {
	if !q.dirty {
		return nil
	}
	if err := q.f.Sync(); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	q.dirty = false
	return nil
}

func (q *quarantine) close() error {
	if q.f == nil {
		return nil
	}
	return errors.Join(q.sync(), q.f.Close())
}

// writeGenesis keeps the copy of the genesis record beside the collected
// store, as the agent keeps it beside its own.
func writeGenesis(dir string, line []byte) error {
	path := filepath.Join(dir, agent.GenesisFile)
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(bytes.TrimSuffix(b, []byte("\n")), line) {
		return nil
	}
	if err := atomicfile.WriteFile(path, append(bytes.Clone(line), '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", agent.GenesisFile, err)
	}
	return nil
}

// checkpointLine is the checkpoints.jsonl line of a checkpoint record,
// as the agent writes it; its time is the record's own timestamp (the
// agent's clock a moment before it wrote its line).
func checkpointLine(d record.CheckpointDetails, timestamp string) ([]byte, error) {
	return json.Marshal(record.CheckpointLine{Size: d.Size, Time: timestamp, Note: d.Note})
}

func appendFile(path string, line []byte) error {
	return atomicfile.Append(path, append(bytes.Clone(line), '\n'), 0o644)
}

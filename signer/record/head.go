package record

import (
	"bytes"
	"encoding/json"
	"time"
)

// Head is a stored record split at its fixed leading fields (DESIGN.md,
// Record). The seed string fields are JSON string contents in canonical
// form (AppendCanonical): the agent writes them so since it canonicalizes
// at ingest, and a store written before that is canonicalized here, so
// that "caf\u00e9" and "café" compare equal. Details is the raw object.
// Slices point into Line or into the Head's own buffer and are valid until
// the next Parse.
type Head struct {
	Seq                                    uint64
	Timestamp, Type, Actor, Lead, Workflow []byte
	Details                                []byte // a raw JSON object
	Line                                   []byte
	dStart                                 int
	t                                      time.Time
	tParsed, tOK                           bool
	canon                                  []byte // canonical copies of escaped seed fields
}

var headFields = [...]string{`,"timestamp":"`, `,"event_type":"`, `,"actor":"`, `,"lead_id":"`, `,"workflow":"`}

// Parse splits line; false when it does not have the record layout. A Head
// can be reused: Parse keeps its buffer.
func (h *Head) Parse(line []byte) bool {
	*h = Head{Line: line, canon: h.canon[:0]}
	const p = `{"seq":`
	if !bytes.HasPrefix(line, []byte(p)) {
		return false
	}
	i := len(p)
	for ; i < len(line) && line[i] >= '0' && line[i] <= '9'; i++ {
		h.Seq = h.Seq*10 + uint64(line[i]-'0')
	}
	fields := [...]*[]byte{&h.Timestamp, &h.Type, &h.Actor, &h.Lead, &h.Workflow}
	var bounds [len(headFields)][2]int // into canon, for fields that needed it
	for k, name := range headFields {
		if !bytes.HasPrefix(line[i:], []byte(name)) {
			return false
		}
		i += len(name)
		start := i
		for ; i < len(line) && line[i] != '"'; i++ {
			if line[i] == '\\' {
				i++
			}
		}
		if i >= len(line) {
			return false
		}
		raw := line[start:i]
		*fields[k] = raw
		if NeedsCanonical(raw) {
			from := len(h.canon)
			h.canon = AppendCanonical(h.canon, raw)
			bounds[k] = [2]int{from, len(h.canon)}
		}
		i++
	}
	for k, b := range bounds {
		if b[1] > 0 {
			*fields[k] = h.canon[b[0]:b[1]:b[1]]
		}
	}
	const d = `,"details":`
	end := SourceStart(line)
	if end < 0 {
		// The agent's own records before the first source line (the
		// genesis of a new store) have no source.
		end = LastIndexComma(line, epochField)
	}
	if !bytes.HasPrefix(line[i:], []byte(d)) || end < i+len(d) {
		return false
	}
	h.dStart = i + len(d)
	h.Details = line[h.dStart:end]
	return true
}

// Internal reports a record the agent wrote about itself (seal, checkpoint).
func (h *Head) Internal() bool { return Internal(h.Type) }

// Time is the record's timestamp, when it is RFC 3339.
func (h *Head) Time() (time.Time, bool) {
	if !h.tParsed {
		h.tParsed = true
		t, err := time.Parse(time.RFC3339Nano, string(h.Timestamp))
		h.t, h.tOK = t, err == nil
	}
	return h.t, h.tOK
}

// Record is a Head copied out of a scan, decoded.
type Record struct {
	Seq                                    uint64
	Timestamp, Type, Actor, Lead, Workflow string
	Time                                   time.Time // zero when the timestamp is not RFC 3339
	Details                                json.RawMessage
	Line                                   []byte // the stored line, byte for byte
}

// Record copies h.
func (h *Head) Record() Record {
	line := bytes.Clone(h.Line)
	t, _ := h.Time()
	return Record{
		Seq: h.Seq, Timestamp: Text(h.Timestamp), Type: Text(h.Type), Actor: Text(h.Actor),
		Lead: Text(h.Lead), Workflow: Text(h.Workflow), Time: t,
		Details: json.RawMessage(line[h.dStart : h.dStart+len(h.Details)]), Line: line,
	}
}

// ParseHead splits a stored line (see Head); false when it is not a record.
func ParseHead(line []byte) (Head, bool) {
	var h Head
	ok := h.Parse(line)
	return h, ok
}

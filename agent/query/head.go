package query

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/tailseal/tailseal/agent/record"
)

// Head is a stored record split at its fixed leading fields (DESIGN.md,
// Record). The string fields are raw JSON string contents, still escaped;
// all slices point into Line and are only valid during a visit.
type Head struct {
	Seq                                    uint64
	Timestamp, Type, Actor, Lead, Workflow []byte
	Details                                []byte // a raw JSON object
	Line                                   []byte
	dStart                                 int
	t                                      time.Time
	tParsed, tOK                           bool
}

var headFields = [...]string{`,"timestamp":"`, `,"event_type":"`, `,"actor":"`, `,"lead_id":"`, `,"workflow":"`}

// parse splits line; false when it does not have the record layout.
func (h *Head) parse(line []byte) bool {
	*h = Head{Line: line}
	const p = `{"seq":`
	if !bytes.HasPrefix(line, []byte(p)) {
		return false
	}
	i := len(p)
	for ; i < len(line) && line[i] >= '0' && line[i] <= '9'; i++ {
		h.Seq = h.Seq*10 + uint64(line[i]-'0')
	}
	fields := [...]*[]byte{&h.Timestamp, &h.Type, &h.Actor, &h.Lead, &h.Workflow}
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
		*fields[k] = line[start:i]
		i++
	}
	const d = `,"details":`
	end := record.SourceStart(line)
	if !bytes.HasPrefix(line[i:], []byte(d)) || end < i+len(d) {
		return false
	}
	h.dStart = i + len(d)
	h.Details = line[h.dStart:end]
	return true
}

// Time is the record's timestamp, when it is RFC 3339.
func (h *Head) Time() (time.Time, bool) {
	if !h.tParsed {
		h.tParsed = true
		h.t, h.tOK = parseTime(h.Timestamp)
	}
	return h.t, h.tOK
}

func parseTime(b []byte) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, string(b))
	return t, err == nil
}

// Text decodes a raw JSON string content.
func Text(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var s string
	if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s) != nil {
		return string(raw)
	}
	return s
}

// Record is a Head copied out of the scan, decoded.
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
	ok := h.parse(line)
	return h, ok
}

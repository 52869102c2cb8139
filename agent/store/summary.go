package store

import (
	"time"

	"github.com/tailseal/tailseal/signer/record"
)

// Summary is what `tailseal stats` counts of a segment's application
// records (the agent's own left out), so that stats without filters reads
// no compressed segment; since v3 of the index. Type and workflow keys are
// as stored (canonical JSON string contents), days are UTC dates,
// Pseudonyms counts <tag:hex> by tag and Words bare <word>s (redact mode's
// tags among them; the reader knows which words are tags). An entry holds
// one only when it is exact: every line of the segment a record, at most
// maxSummaryKeys keys in each map.
type Summary struct {
	Events     int            `json:"events"`
	Bytes      int64          `json:"bytes"`
	FirstSeq   uint64         `json:"first_seq"`
	LastSeq    uint64         `json:"last_seq"`
	First      string         `json:"first,omitempty"` // RFC 3339 UTC, over parsable timestamps
	Last       string         `json:"last,omitempty"`
	Unparsable int            `json:"unparsable,omitempty"` // timestamps not RFC 3339
	Types      map[string]int `json:"types"`
	Workflows  map[string]int `json:"workflows"`
	PerDay     map[string]int `json:"per_day"`
	Pseudonyms map[string]int `json:"pseudonyms,omitempty"`
	Words      map[string]int `json:"words,omitempty"`
}

// maxSummaryKeys bounds each map of a Summary, as maxWorkflows bounds the
// entry's workflows: a segment with more is counted by reading it.
const maxSummaryKeys = maxWorkflows

// summarizer builds a Summary line by line, as stats counts records.
type summarizer struct {
	s          Summary
	minT, maxT time.Time
	inexact    bool
	// The Summary's maps, until summary().
	types, workflows, perDay, pseudonyms, words tally
	// The UTC day of the last timestamp, and its count: lines come in
	// time order, so a day's key is looked up once a run of lines.
	day      [10]byte
	dayCount *int
	dayOf    time.Time // midnight UTC of day
}

func newSummarizer() *summarizer {
	return &summarizer{types: tally{}, workflows: tally{}, perDay: tally{}, pseudonyms: tally{}, words: tally{}}
}

// add counts the line h holds; parsed is whether h.Parse took it (the
// indexer parses each line once for both).
func (z *summarizer) add(h *record.Head, parsed bool) {
	if z.inexact {
		return
	}
	if !parsed {
		z.inexact = true // stats reads the segment and reports the line
		return
	}
	if h.Internal() {
		return
	}
	s := &z.s
	s.Events++
	s.Bytes += int64(len(h.Line)) + 1
	if s.FirstSeq == 0 || h.Seq < s.FirstSeq {
		s.FirstSeq = h.Seq
	}
	s.LastSeq = max(s.LastSeq, h.Seq)
	z.types.add(h.Type)
	z.workflows.add(h.Workflow)
	if t, ok := h.Time(); ok {
		t = t.UTC()
		if z.minT.IsZero() || t.Before(z.minT) {
			z.minT = t
		}
		if t.After(z.maxT) {
			z.maxT = t
		}
		if z.dayCount == nil || t.Before(z.dayOf) || !t.Before(z.dayOf.AddDate(0, 0, 1)) {
			z.dayOf = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
			z.perDay.add(t.AppendFormat(z.day[:0], time.DateOnly))
			z.dayCount = z.perDay[string(z.day[:])]
		} else {
			*z.dayCount++
		}
	} else {
		s.Unparsable++
	}
	placeholder := func(tag []byte, hashed bool) {
		if hashed {
			z.pseudonyms.add(tag)
		} else {
			z.words.add(tag)
		}
	}
	record.Placeholders(h.Actor, placeholder)
	record.Placeholders(h.Details, placeholder)
	if max(len(z.types), len(z.workflows), len(z.perDay), len(z.pseudonyms), len(z.words)) > maxSummaryKeys {
		z.inexact = true
	}
}

// summary is the segment's Summary, nil when it would not be exact.
func (z *summarizer) summary() *Summary {
	if z.inexact {
		return nil
	}
	if !z.minT.IsZero() {
		z.s.First, z.s.Last = z.minT.Format(time.RFC3339Nano), z.maxT.Format(time.RFC3339Nano)
	}
	z.s.Types, z.s.Workflows, z.s.PerDay = z.types.counts(), z.workflows.counts(), z.perDay.counts()
	z.s.Pseudonyms, z.s.Words = z.pseudonyms.counts(), z.words.counts()
	return &z.s
}

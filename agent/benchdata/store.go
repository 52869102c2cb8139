package benchdata

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tailseal/tailseal/agent/parse"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/pii"
	"github.com/tailseal/tailseal/signer/record"
	"golang.org/x/mod/sumdb/note"
)

// Operator events: what an application's audit log holds over weeks, for
// the operator commands (query, stats, errors, performance, report).
var (
	eventTypes = []string{"lead_ingested", "lead_ingested", "crm_write", "email_sent", "workflow_started", "performance", "performance", "error"}
	workflows  = []string{"sales_lead_management", "email_nurture", "crm_sync", "lead_scoring"}
	operations = []string{"crm_upsert", "email_send", "lead_enrich", "score_model"}
	errorTypes = []string{"TimeoutError", "ValidationError", "CRMRateLimited"}
)

// Event returns the n-th operator event (no newline), timestamped start +
// n*step. Deterministic: the same n always gives the same line.
func Event(n int, start time.Time, step time.Duration) string {
	ts := start.Add(time.Duration(n) * step).UTC().Format(time.RFC3339Nano)
	typ := eventTypes[n%len(eventTypes)]
	wf := workflows[n/3%len(workflows)]
	var details string
	switch typ {
	case "performance":
		op := operations[n/7%len(operations)]
		// a skewed spread: mostly fast, a slow tail
		ms := float64(10+(n*7919)%90) + float64((n*104729)%1000)/10
		if n%97 == 0 {
			ms *= 20
		}
		details = fmt.Sprintf(`"operation":%q,"duration_ms":%.1f`, op, ms)
	case "error":
		et := errorTypes[n/11%len(errorTypes)]
		details = fmt.Sprintf(`"error_type":%q,"message":"%s while handling lead LEAD-%07d (contact lead%d@example.com)","traceback":"Traceback (most recent call last):\n  File \"app.py\", line %d, in handle\n%s: failed"`,
			et, et, n/5, n%5000, 10+n%90, et)
	default:
		details = fmt.Sprintf(`"source":"web_form","email":"lead%d@example.com","phone":"+1 555 %03d %04d","ip":"203.0.%d.%d","score":%d`,
			n%5000, n%1000, n%10000, n%256, (n/256)%256, n%100)
	}
	return fmt.Sprintf(`{"timestamp":%q,"event_type":%q,"actor":"system","lead_id":"LEAD-%07d","workflow":%q,"details":{%s}}`,
		ts, typ, n/5, wf, details)
}

// StoreOptions describes a store built offline by BuildStore.
type StoreOptions struct {
	DataDir    string
	Events     int
	Start      time.Time
	Step       time.Duration
	SegmentMax int64  // bytes
	HMACKey    []byte // static signing key (TAILSEAL_HMAC_KEY)
	PIIKey     []byte // pseudonymization key, hash mode
	// Checkpoint, if set, signs a checkpoint of the whole store at its
	// end, as the agent does at shutdown (record and checkpoints.jsonl).
	Checkpoint note.Signer
	Origin     string // the checkpoint's origin (default "bench")
	// MemberBytes is store.Options.MemberBytes: where compression cuts
	// members (0: the default; negative: one member per segment).
	MemberBytes int
	Compression store.Compression // "": gzip
}

// BuildStore writes Events operator events into a signed store in DataDir
// through the agent's own pipeline (parse, anonymize, sign, store) but
// without tailing: fast enough for stores of millions of events, and the
// same bytes on every run. Rotated segments are compressed and indexed
// before it returns.
func BuildStore(opt StoreOptions) error {
	dir := filepath.Join(opt.DataDir, "store")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, last, err := store.Open(store.Options{Dir: dir, SegmentMax: opt.SegmentMax, SegmentMaxAge: 1 << 62, MemberBytes: opt.MemberBytes, Compression: opt.Compression})
	if err != nil {
		return err
	}
	if last != nil {
		st.Close()
		return fmt.Errorf("%s already holds a store", dir)
	}
	chain := signer.NewChain(signer.NewStaticKey(opt.HMACKey), 0, [32]byte{})
	anon := pii.New(pii.Options{Mode: pii.Hash, Key: opt.PIIKey, Always: pii.DefaultAlways, Never: pii.DefaultNever})
	var buf, tmp []byte
	offset := int64(0)
	const id = "1:1:0000000000000000"
	for n := 0; n < opt.Events; {
		first := chain.Seq() + 1
		buf = buf[:0]
		for end := min(n+1000, opt.Events); n < end; n++ {
			line := Event(n, opt.Start, opt.Step)
			buf = chain.Begin(buf)
			tmp, _ = parse.Append(tmp[:0], parse.Line{Data: []byte(line), Length: int64(len(line))}, opt.Start)
			buf = anon.AppendBody(buf, tmp)
			buf = record.AppendSource(buf, `"audit.log"`, id, offset, int64(len(line))+1)
			buf = chain.Finish(buf)
			offset += int64(len(line)) + 1
		}
		if err := st.Append(buf, first, chain.Seq()); err != nil {
			st.Close()
			return err
		}
	}
	if err := st.Close(); err != nil {
		return err
	}
	// As the agent does: an index record attests each index line, and a
	// store stopped cleanly ends with a stop record.
	if err := store.CompressRotated(store.Options{Dir: dir, MemberBytes: opt.MemberBytes, Compression: opt.Compression}); err != nil {
		return err
	}
	return appendEnd(opt, dir, chain, opt.Start.Add(time.Duration(opt.Events)*opt.Step), offset)
}

// appendEnd appends the index records of the store in dir, a checkpoint
// if asked, and a stop record, continuing chain.
func appendEnd(opt StoreOptions, dir string, chain *signer.Chain, at time.Time, offset int64) error {
	digests, err := store.ReadIndexDigests(dir)
	if err != nil {
		return err
	}
	st, _, err := store.Open(store.Options{Dir: dir, SegmentMax: 1 << 40, SegmentMaxAge: 1 << 62})
	if err != nil {
		return err
	}
	var buf []byte
	add := func(typ string, details []byte) error {
		first := chain.Seq() + 1
		buf = chain.Begin(buf[:0])
		buf = append(buf, `"timestamp":"`...)
		buf = at.UTC().AppendFormat(buf, parse.TimeLayout)
		buf = append(buf, `","event_type":"`+typ+`","actor":"tailseal","lead_id":"","workflow":"","details":`...)
		buf = append(buf, details...)
		buf = record.AppendSource(buf, `"audit.log"`, "1:1:0000000000000000", offset, 0)
		return st.Append(chain.Finish(buf), first, first)
	}
	for _, seg := range slices.Sorted(maps.Keys(digests)) {
		d, _ := json.Marshal(record.IndexDetails{Segment: seg, SHA256: digests[seg]})
		if err := add(record.TypeIndex, d); err != nil {
			st.Close()
			return err
		}
	}
	if opt.Checkpoint != nil {
		if err := addCheckpoint(opt, st, at, add); err != nil {
			st.Close()
			return err
		}
	}
	if err := add(record.TypeStop, []byte(`{"reason":"signal"}`)); err != nil {
		st.Close()
		return err
	}
	if err := st.Commit(); err != nil {
		st.Close()
		return err
	}
	return st.Close()
}

// addCheckpoint signs the store's tree head and appends its record, then
// its line of checkpoints.jsonl.
func addCheckpoint(opt StoreOptions, st *store.Store, at time.Time, add func(typ string, details []byte) error) error {
	size, root, ok := st.TreeHead()
	if !ok {
		return fmt.Errorf("the store has no Merkle tree")
	}
	origin := opt.Origin
	if origin == "" {
		origin = "bench"
	}
	signed, err := signer.SignCheckpoint(signer.Checkpoint{Origin: origin, Size: size, Hash: root}, opt.Checkpoint)
	if err != nil {
		return err
	}
	d, _ := json.Marshal(record.CheckpointDetails{Size: size, Note: signed})
	if err := add(record.TypeCheckpoint, d); err != nil {
		return err
	}
	if err := st.Commit(); err != nil {
		return err
	}
	line, _ := json.Marshal(record.CheckpointLine{Size: size, Time: at.UTC().Format(time.RFC3339Nano), Note: signed})
	f, err := os.OpenFile(filepath.Join(opt.DataDir, "checkpoints.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	return errors.Join(err, f.Close())
}

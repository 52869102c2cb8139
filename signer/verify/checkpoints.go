package verify

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/tailseal/tailseal/signer"
	"golang.org/x/mod/sumdb/note"
)

// loadCheckpoints reads checkpoints.jsonl, verifying each note.
func (v *verifier) loadCheckpoints(src Source) error {
	rc, err := src.Checkpoints()
	if err != nil {
		return fmt.Errorf("open checkpoints: %w", err)
	}
	if rc == nil {
		return nil
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n, good, unknown := 0, 0, 0
	var bad []Finding
	for sc.Scan() {
		n++
		f, ok := v.checkpoint(n, sc.Bytes())
		switch {
		case ok:
			good++
			continue
		case f.unknown:
			unknown++
		}
		bad = append(bad, f.Finding)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	if len(v.opt.Verifiers) > 0 && good == 0 && unknown > 0 && unknown == len(bad) {
		return fmt.Errorf("%w (%s)", ErrWrongVerifier, trustedKeys(v.opt.Verifiers))
	}
	v.sum.Checkpoints = n
	v.sum.Findings = append(v.sum.Findings, bad...)
	if cs, ok := src.(Cosigned); ok {
		return v.loadCosignatures(cs)
	}
	return nil
}

// badCheckpoint is a finding about line n of checkpoints.jsonl; unknown
// says its note is signed by a key the verifier does not know.
type badCheckpoint struct {
	Finding
	unknown bool
}

// checkpoint takes line n of checkpoints.jsonl: ok, it is wanted at its
// size; otherwise what is wrong with it.
func (v *verifier) checkpoint(n int, line []byte) (badCheckpoint, bool) {
	return v.checkpointIn(checkpointsFile, n, line)
}

// checkpointIn takes line n of file, checkpoints.jsonl or
// cosignatures.jsonl, whose lines are {"size":…,"note":…}.
func (v *verifier) checkpointIn(file string, n int, line []byte) (badCheckpoint, bool) {
	var cl struct {
		Size uint64 `json:"size"`
		Note string `json:"note"`
	}
	if err := json.Unmarshal(line, &cl); err != nil {
		return badCheckpoint{Finding: Finding{Segment: file, Line: n, Kind: BadCheckpoint, Detail: "not a checkpoint line"}}, false
	}
	bad := func(detail string) badCheckpoint {
		return badCheckpoint{Finding: Finding{Segment: file, Line: n, Seq: cl.Size, Kind: BadCheckpoint, Detail: detail}}
	}
	c, err := v.openNote(cl.Note)
	var uv *note.UnknownVerifierError
	var unv *note.UnverifiedNoteError
	switch {
	case errors.As(err, &uv) || errors.As(err, &unv):
		b := bad("signed by an unknown key: " + err.Error())
		b.unknown = true
		return b, false
	case err != nil:
		return bad(err.Error()), false
	case c.Size != cl.Size:
		return bad(fmt.Sprintf("the line says size %d, the signed note %d", cl.Size, c.Size)), false
	}
	if prev, ok := v.want[c.Size]; ok && prev.hash != c.Hash {
		// Both are signed: someone holding the key showed two different
		// logs of one size. This is what a fork looks like.
		f := bad(fmt.Sprintf("%s line %d and %s line %d sign two different heads for size %d: the log was forked", prev.file, prev.line, file, n, c.Size))
		f.Kind = Forked
		return f, false
	}
	if _, ok := v.noteOrigins[c.Origin]; !ok {
		v.noteOrigins[c.Origin] = n
	}
	if _, ok := v.want[c.Size]; !ok {
		v.want[c.Size] = checkpointAt{hash: c.Hash, line: n, file: file}
	}
	v.newest = max(v.newest, c.Size)
	return badCheckpoint{}, true
}

const (
	checkpointsFile  = "checkpoints.jsonl"
	cosignaturesFile = "cosignatures.jsonl"
)

// Cosigned is a Source that also holds the witnesses' cosignatures
// (cosignatures.jsonl: {"size":…,"note":<the checkpoint note with a
// witness's cosignature>} per line).
type Cosigned interface {
	// Cosignatures returns the content of cosignatures.jsonl, or nil
	// when there is none. The verifier closes it.
	Cosignatures() (io.ReadCloser, error)
}

// loadCosignatures takes each cosigned note as a checkpoint too (its
// root is held to the records, a fork with checkpoints.jsonl is one, and
// a cosigned size the store does not reach is a cut), and counts the
// cosignatures of the trusted witnesses per size.
func (v *verifier) loadCosignatures(src Cosigned) error {
	rc, err := src.Cosignatures()
	if err != nil {
		return fmt.Errorf("open cosignatures: %w", err)
	}
	if rc == nil {
		return nil
	}
	defer rc.Close()
	witnesses := note.VerifierList(v.opt.WitnessKeys...)
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if f, ok := v.checkpointIn(cosignaturesFile, n, sc.Bytes()); !ok {
			v.sum.Findings = append(v.sum.Findings, f.Finding)
			continue
		}
		if len(v.opt.WitnessKeys) == 0 {
			continue
		}
		var cl struct {
			Size uint64 `json:"size"`
			Note string `json:"note"`
		}
		json.Unmarshal(sc.Bytes(), &cl)
		nt, err := note.Open([]byte(cl.Note), witnesses)
		var bad *note.InvalidSignatureError
		switch {
		case errors.As(err, &bad):
			v.sum.Findings = append(v.sum.Findings, Finding{Segment: cosignaturesFile, Line: n, Seq: cl.Size, Kind: BadCosignature,
				Detail: fmt.Sprintf("the cosignature of %s+%08x on checkpoint %d does not verify", bad.Name, bad.Hash, cl.Size)})
			continue
		case err != nil:
			continue // no trusted witness's: not counted
		}
		for _, s := range nt.Sigs {
			id := fmt.Sprintf("%s+%08x", s.Name, s.Hash)
			if v.cosigners[cl.Size] == nil {
				v.cosigners[cl.Size] = map[string]bool{}
			}
			if !v.cosigners[cl.Size][id] {
				v.cosigners[cl.Size][id] = true
				v.sum.Cosignatures++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read cosignatures: %w", err)
	}
	return nil
}

// checkWitnesses finds the newest checkpoint the quorum of trusted
// witnesses cosigned; none is a finding.
func (v *verifier) checkWitnesses() {
	keys := v.opt.WitnessKeys
	if len(keys) == 0 {
		return
	}
	quorum := v.opt.WitnessQuorum
	if quorum <= 0 || quorum > len(keys) {
		quorum = len(keys)
	}
	v.sum.WitnessQuorum = quorum
	for size, ws := range v.cosigners {
		if len(ws) >= quorum && size > v.sum.WitnessedSize {
			v.sum.WitnessedSize = size
		}
	}
	if v.sum.WitnessedSize == 0 {
		v.sum.Findings = append(v.sum.Findings, Finding{Segment: cosignaturesFile, Kind: NotWitnessed,
			Detail: fmt.Sprintf("no checkpoint is cosigned by %d of the %d witnesses of TAILSEAL_WITNESS_KEYS", quorum, len(keys))})
	}
}

// openNote verifies a note with the verifier, or only parses it without one.
func (v *verifier) openNote(signed string) (signer.Checkpoint, error) {
	if len(v.opt.Verifiers) > 0 {
		return signer.OpenCheckpoint(signed, v.opt.Verifiers...)
	}
	return signer.ParseSigned(signed)
}

// trustedKeys names the verifier keys for an error message.
func trustedKeys(vs []note.Verifier) string {
	if len(vs) == 1 {
		return "it names " + signer.KeyID(vs[0])
	}
	ids := make([]string, len(vs))
	for i, k := range vs {
		ids[i] = signer.KeyID(k)
	}
	return "the trusted keys are " + strings.Join(ids, ", ")
}

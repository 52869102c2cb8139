package verify

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
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
	var cl struct {
		Size uint64 `json:"size"`
		Note string `json:"note"`
	}
	if err := json.Unmarshal(line, &cl); err != nil {
		return badCheckpoint{Finding: Finding{Segment: "checkpoints.jsonl", Line: n, Kind: BadCheckpoint, Detail: "not a checkpoint line"}}, false
	}
	bad := func(detail string) badCheckpoint {
		return badCheckpoint{Finding: Finding{Segment: "checkpoints.jsonl", Line: n, Seq: cl.Size, Kind: BadCheckpoint, Detail: detail}}
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
		f := bad(fmt.Sprintf("checkpoints.jsonl lines %d and %d sign two different heads for size %d: the log was forked", prev.line, n, c.Size))
		f.Kind = Forked
		return f, false
	}
	if _, ok := v.noteOrigins[c.Origin]; !ok {
		v.noteOrigins[c.Origin] = n
	}
	v.want[c.Size] = checkpointAt{hash: c.Hash, line: n}
	v.newest = max(v.newest, c.Size)
	return badCheckpoint{}, true
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

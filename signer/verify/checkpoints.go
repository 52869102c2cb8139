package verify

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

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
		var cl struct {
			Size uint64 `json:"size"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal(sc.Bytes(), &cl); err != nil {
			bad = append(bad, Finding{Segment: "checkpoints.jsonl", Line: n, Kind: BadCheckpoint, Detail: "not a checkpoint line"})
			continue
		}
		c, err := v.openNote(cl.Note)
		var uv *note.UnknownVerifierError
		var unv *note.UnverifiedNoteError
		switch {
		case errors.As(err, &uv) || errors.As(err, &unv):
			unknown++
			bad = append(bad, Finding{Segment: "checkpoints.jsonl", Line: n, Seq: cl.Size, Kind: BadCheckpoint, Detail: "signed by an unknown key: " + err.Error()})
			continue
		case err != nil:
			bad = append(bad, Finding{Segment: "checkpoints.jsonl", Line: n, Seq: cl.Size, Kind: BadCheckpoint, Detail: err.Error()})
			continue
		case c.Size != cl.Size:
			bad = append(bad, Finding{Segment: "checkpoints.jsonl", Line: n, Seq: cl.Size, Kind: BadCheckpoint, Detail: fmt.Sprintf("the line says size %d, the signed note %d", cl.Size, c.Size)})
			continue
		}
		good++
		v.want[c.Size] = checkpointAt{hash: c.Hash, line: n}
		v.newest = max(v.newest, c.Size)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	if v.opt.Verifier != nil && good == 0 && unknown > 0 && unknown == len(bad) {
		return fmt.Errorf("%w (it names %s+%08x)", ErrWrongVerifier, v.opt.Verifier.Name(), v.opt.Verifier.KeyHash())
	}
	v.sum.Checkpoints = n
	v.sum.Findings = append(v.sum.Findings, bad...)
	return nil
}

// openNote verifies a note with the verifier, or only parses it without one.
func (v *verifier) openNote(signed string) (signer.Checkpoint, error) {
	if v.opt.Verifier != nil {
		return signer.OpenCheckpoint(signed, v.opt.Verifier)
	}
	text, _, ok := bytes.Cut([]byte(signed), []byte("\n\n"))
	if !ok {
		return signer.Checkpoint{}, fmt.Errorf("%w: not a signed note", signer.ErrBadCheckpoint)
	}
	return signer.ParseCheckpoint(string(text) + "\n")
}

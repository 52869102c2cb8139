package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// ErrStoreLost means the store holds fewer records than its own
// checkpoints cover: segments were deleted or rolled back. Starting would
// begin a new chain (or continue an old point of it) over the evidence.
var ErrStoreLost = errors.New("the store lost records its checkpoints cover")

// checkNotLost compares the last stored seq with the newest checkpoint:
// every line of checkpoints.jsonl of size S has its own record at S+1,
// made durable before the line was written, so an honest store ends at
// S+1 or later.
func checkNotLost(dataDir string, lastSeq uint64) error {
	size, ok, err := newestCheckpoint(filepath.Join(dataDir, CheckpointsFile))
	if err != nil {
		return err
	}
	if lastSeq == 0 && !ok {
		// No checkpoint to compare with: an index that lists segments
		// still says a store was here.
		if ix, err := store.ReadIndex(filepath.Join(dataDir, StoreDir)); err == nil && len(ix) > 0 {
			return fmt.Errorf("%w: the store in %s has no records, but its index lists %d segments; tailseal will not start a new chain over it. %s",
				ErrStoreLost, dataDir, len(ix), newStoreHint)
		}
	}
	if !ok || lastSeq >= size+1 {
		return nil
	}
	what := fmt.Sprintf("records %d to %d are gone", lastSeq+1, size+1)
	if lastSeq == 0 {
		what = "it has no records at all"
	}
	return fmt.Errorf("%w: %s covers %d records but %s; tailseal will not start a new chain over it. %s",
		ErrStoreLost, filepath.Join(dataDir, CheckpointsFile), size, what, newStoreHint)
}

const newStoreHint = "Keep the data dir as evidence and run `tailseal verify`; to start a new store here on purpose, set TAILSEAL_NEW_STORE=1 " +
	"(the old store, checkpoints and sink cursors are moved aside, not deleted)"

// newestCheckpoint reads the size of the last line of checkpoints.jsonl.
func newestCheckpoint(path string) (size uint64, ok bool, err error) {
	cl, ok, err := newestCheckpointLine(path)
	return cl.Size, ok, err
}

// newestCheckpointNote reads the signed note of the last line of
// checkpoints.jsonl.
func newestCheckpointNote(path string) (note string, ok bool, err error) {
	cl, ok, err := newestCheckpointLine(path)
	return cl.Note, ok, err
}

// NewestCheckpoint is the last line of the checkpoints.jsonl of the data
// dir; ok is false when it has none.
func NewestCheckpoint(dataDir string) (line record.CheckpointLine, ok bool, err error) {
	return newestCheckpointLine(filepath.Join(dataDir, CheckpointsFile))
}

// newestCheckpointLine reads the last line of checkpoints.jsonl.
func newestCheckpointLine(path string) (record.CheckpointLine, bool, error) {
	var cl record.CheckpointLine
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return cl, false, nil
	}
	if err != nil {
		return cl, false, fmt.Errorf("read checkpoints: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return cl, false, fmt.Errorf("read checkpoints: %w", err)
	}
	from := max(fi.Size()-64<<10, 0) // a checkpoint line is well under 1 KiB
	tail, err := io.ReadAll(io.NewSectionReader(f, from, fi.Size()-from))
	if err != nil {
		return cl, false, fmt.Errorf("read checkpoints: %w", err)
	}
	lines := bytes.Split(bytes.TrimSpace(tail), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		if json.Unmarshal(lines[i], &cl) == nil && cl.Size > 0 {
			return cl, true, nil
		}
	}
	return record.CheckpointLine{}, false, nil
}

// moveLostStore moves the store, the checkpoints and the sink cursors of a
// store that lost records aside (name.lost-<unix time>), for a new store.
func moveLostStore(dataDir string, now time.Time) ([]string, error) {
	suffix := ".lost-" + strconv.FormatInt(now.Unix(), 10)
	paths := []string{filepath.Join(dataDir, StoreDir), filepath.Join(dataDir, CheckpointsFile), filepath.Join(dataDir, GenesisFile)}
	cursors, _ := filepath.Glob(filepath.Join(dataDir, StateDir, "sink-*.json"))
	var moved []string
	for _, p := range append(paths, cursors...) {
		if err := os.Rename(p, p+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return moved, fmt.Errorf("move aside: %w", err)
		} else if err == nil {
			moved = append(moved, p+suffix)
		}
	}
	return moved, nil
}

// ReadCheckpoints returns the entries of the data dir's checkpoints.jsonl
// in file order (none when there is no file); a line that does not parse
// (a torn last line) is left out. Their notes are not verified.
func ReadCheckpoints(dataDir string) ([]record.CheckpointLine, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, CheckpointsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	var out []record.CheckpointLine
	for _, l := range bytes.Split(data, []byte("\n")) {
		var cl record.CheckpointLine
		if json.Unmarshal(l, &cl) == nil && cl.Size > 0 && cl.Note != "" {
			out = append(out, cl)
		}
	}
	return out, nil
}

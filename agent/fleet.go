package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tailseal/tailseal/signer/record"
)

// OriginsDir, in a collector's data dir, holds one directory per origin,
// named by record.OriginToken: origins/<token>/ is a data dir of its own
// (store/, checkpoints.jsonl, genesis.json), the origin's records verbatim.
const OriginsDir = "origins"

// OriginDir is the directory of origin's store in the collector's dataDir.
func OriginDir(dataDir, origin string) string {
	return filepath.Join(dataDir, OriginsDir, record.OriginToken(origin))
}

// FleetOrigin is one origin a collector keeps.
type FleetOrigin struct {
	Origin  string // as the agent names itself, not its token
	DataDir string // origins/<token>
}

// ErrNotFleet means a data dir is no collector's: it has no OriginsDir.
var ErrNotFleet = errors.New("not a collector's data dir")

// Origins lists the origins of a collector's data dir, sorted by name, and
// the entries of OriginsDir that are not an origin's directory (hidden
// ones aside), for a warning. An error wrapping ErrNotFleet means dataDir
// has no OriginsDir: it is a single store's.
func Origins(dataDir string) ([]FleetOrigin, []string, error) {
	dir := filepath.Join(dataDir, OriginsDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: no %s", ErrNotFleet, dir)
	}
	if err != nil {
		return nil, nil, err
	}
	var out []FleetOrigin
	var stray []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a collector's temporary files
		}
		origin, err := record.ParseOriginToken(e.Name())
		if fi, serr := os.Stat(filepath.Join(dir, e.Name())); err != nil || serr != nil || !fi.IsDir() {
			stray = append(stray, e.Name())
			continue
		}
		out = append(out, FleetOrigin{Origin: origin, DataDir: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(out, func(a, b FleetOrigin) int { return strings.Compare(a.Origin, b.Origin) })
	return out, stray, nil
}

package tailer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
)

// resume opens the file a previous run stopped in. If the path still holds
// it, reading continues at the offset. If it was rotated by rename while the
// agent was down, the renamed file (same device and inode) is found in the
// directory and its rest is read before the path. If it was copied and
// truncated, the copy (same first bytes, long enough) stands in for it, and
// the lines the truncated file got since follow, from wherever it is.
func (t *Tailer) resume(ctx context.Context) error {
	pos := t.opt.Start
	if pos.ID == "" {
		return nil
	}
	id, err := ParseID(pos.ID)
	if err != nil {
		t.log.Warn("cannot resume: bad source id in the store; reading the source from the start", "error", err)
		return nil
	}
	if f, ok := t.find(id, pos.Offset); ok {
		if filepath.Clean(f.Name()) == t.opt.Path {
			return t.use(f, pos.Offset)
		}
		t.log.Info("reading the rest of a source file rotated while stopped",
			"file", f.Name(), "offset", pos.Offset)
		if fi, err := f.Stat(); err == nil {
			if dev, ino := devIno(fi); dev != id.Dev || ino != id.Ino {
				// A copy: the file it stands in for was truncated.
				return t.drainCopy(ctx, f, pos.Offset, id.Dev, id.Ino)
			}
		}
		return t.drain(ctx, f, pos.Offset)
	}
	t.log.Warn("the source file the last run read is gone; reading the current file from the start",
		"path", t.opt.Path, "last_id", pos.ID, "last_offset", pos.Offset)
	return nil
}

// find returns the file named by id if it still has at least offset bytes:
// the path itself, a renamed file in the same directory, or else a copy.
func (t *Tailer) find(id ID, offset int64) (*os.File, bool) {
	candidates := []string{t.opt.Path}
	dir := filepath.Dir(t.opt.Path)
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			name := filepath.Join(dir, e.Name())
			if e.Type().IsRegular() && name != t.opt.Path && !strings.HasSuffix(name, ".gz") {
				candidates = append(candidates, name)
			}
		}
	}
	var copyName string
	for _, name := range candidates {
		f, err := openRegular(name)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err == nil && matches(f, fi, id, offset) {
			return f, true
		}
		if err == nil && copyName == "" && hasPrefixFP(f, fi, id, offset) {
			copyName = name
		}
		f.Close()
	}
	if copyName == "" {
		return nil, false
	}
	f, err := openRegular(copyName)
	return f, err == nil
}

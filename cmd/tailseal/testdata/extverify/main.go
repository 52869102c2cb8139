// Command extverify checks a tailseal store's checkpoints and proofs with
// code that is not tailseal's: the Go checksum database's tlog and note
// packages and the standard library, from the formats the README and
// DESIGN.md define. The proof tests build and run it (tree_test.go).
//
//	extverify roots KEY DATADIR        every checkpoint's root, recomputed from the store's lines
//	extverify inclusion KEY FILE       a `tailseal prove --seq N --json` bundle
//	extverify proof KEY FILE           a `tailseal prove --seq N` C2SP tlog-proof
//	extverify consistency KEY FILE     a `tailseal prove --from M --json` bundle
//	extverify export KEY FILE          a `tailseal export --proofs` file
//
// KEY is the checkpoint verifier key (keys/checkpoint.pub). Exit 0 when
// everything holds, 1 when something does not, 2 on bad arguments.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: extverify roots|inclusion|proof|consistency|export KEY DATADIR|FILE")
		os.Exit(2)
	}
	v, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "key:", err)
		os.Exit(2)
	}
	keys := note.VerifierList(v)
	var msg string
	switch os.Args[1] {
	case "roots":
		msg, err = roots(keys, os.Args[3])
	case "inclusion":
		msg, err = inclusionJSON(keys, os.Args[3])
	case "proof":
		msg, err = proofText(keys, os.Args[3])
	case "consistency":
		msg, err = consistency(keys, os.Args[3])
	case "export":
		msg, err = export(keys, os.Args[3])
	default:
		fmt.Fprintln(os.Stderr, "unknown check", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("ok:", msg)
}

// checkpoint is a tlog-checkpoint body: origin, size, root.
type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

// open verifies a signed note with the key and parses its body.
func open(keys note.Verifiers, signed string) (checkpoint, error) {
	n, err := note.Open([]byte(signed), keys)
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return checkpoint{}, fmt.Errorf("checkpoint body %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint root %q", lines[2])
	}
	return checkpoint{lines[0], size, root}, nil
}

// seqOf reads a stored line's seq, its first field.
func seqOf(line []byte) int64 {
	var r struct {
		Seq int64 `json:"seq"`
	}
	if json.Unmarshal(line, &r) != nil {
		return -1
	}
	return r.Seq
}

// hashes is the tree's stored hashes, in tlog's order, as a HashReader.
type hashes []tlog.Hash

func (h hashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(h)) {
			return nil, errors.New("beyond the tree")
		}
		out[i] = h[x]
	}
	return out, nil
}

var segName = regexp.MustCompile(`^(\d{16})\.jsonl(\.gz|\.zst)?$`)

// roots reads every segment of DATADIR/store in seq order, builds the
// tree of the lines with tlog, and holds every checkpoint of
// checkpoints.jsonl to it, and each to the next by a consistency proof.
func roots(keys note.Verifiers, dataDir string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(dataDir, "store"))
	if err != nil {
		return "", err
	}
	segs := map[string]string{} // first seq -> file; a .gz (.zst) wins over its .jsonl
	for _, e := range entries {
		if m := segName.FindStringSubmatch(e.Name()); m != nil && (segs[m[1]] == "" || m[2] != "") {
			segs[m[1]] = e.Name()
		}
	}
	firsts := make([]string, 0, len(segs))
	for f := range segs {
		firsts = append(firsts, f)
	}
	sort.Strings(firsts)
	var tree hashes
	n, gz := int64(0), 0
	for _, first := range firsts {
		f, err := os.Open(filepath.Join(dataDir, "store", segs[first]))
		if err != nil {
			return "", err
		}
		var r io.Reader = f
		wait := func() error { return nil }
		switch {
		case strings.HasSuffix(segs[first], ".gz"):
			gz++
			if r, err = gzip.NewReader(f); err != nil {
				return "", err
			}
		case strings.HasSuffix(segs[first], ".zst"): // the standard library has no zstd: the zstd tool reads it
			gz++
			zstd := exec.Command("zstd", "-dc")
			zstd.Stdin, zstd.Stderr = f, os.Stderr
			if r, err = zstd.StdoutPipe(); err != nil {
				return "", err
			}
			if err := zstd.Start(); err != nil {
				return "", err
			}
			wait = zstd.Wait
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			if seq := seqOf(sc.Bytes()); seq != n+1 {
				return "", fmt.Errorf("%s: seq %d where %d was expected", segs[first], seq, n+1)
			}
			hs, err := tlog.StoredHashes(n, sc.Bytes(), tree)
			if err != nil {
				return "", err
			}
			tree = append(tree, hs...)
			n++
		}
		if err := sc.Err(); err != nil {
			return "", err
		}
		if err := wait(); err != nil {
			return "", fmt.Errorf("zstd -dc %s: %v", segs[first], err)
		}
		f.Close()
	}
	data, err := os.ReadFile(filepath.Join(dataDir, "checkpoints.jsonl"))
	if err != nil {
		return "", err
	}
	var prev *checkpoint
	count := 0
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var cl struct {
			Size int64  `json:"size"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal([]byte(l), &cl); err != nil {
			return "", fmt.Errorf("checkpoints.jsonl: %v", err)
		}
		c, err := open(keys, cl.Note)
		if err != nil {
			return "", err
		}
		if c.size != cl.Size || c.size > n {
			return "", fmt.Errorf("checkpoint of size %d: the line says %d, the store holds %d records", c.size, cl.Size, n)
		}
		root, err := tlog.TreeHash(c.size, tree)
		if err != nil {
			return "", err
		}
		if root != c.root {
			return "", fmt.Errorf("checkpoint %d signs %v, the root of records 1..%d is %v", c.size, c.root, c.size, root)
		}
		if prev != nil {
			if prev.origin != c.origin {
				return "", fmt.Errorf("checkpoints of two origins, %q and %q", prev.origin, c.origin)
			}
			p, err := tlog.ProveTree(c.size, prev.size, tree)
			if err != nil {
				return "", err
			}
			if err := tlog.CheckTree(p, c.size, c.root, prev.size, prev.root); err != nil {
				return "", fmt.Errorf("checkpoints %d and %d: %v", prev.size, c.size, err)
			}
		}
		prev, count = &c, count+1
	}
	return fmt.Sprintf("%d records in %d segments (%d compressed); %d checkpoints of %s, each the root of the records before it and consistent with the one before", n, len(firsts), gz, count, prev.origin), nil
}

// checkRecord holds record, leaf index of the tree the checkpoint signs
// (which must be of origin and size), to the proof.
func checkRecord(c checkpoint, origin string, size, index int64, record string, proof []string) error {
	if c.origin != origin || c.size != size {
		return fmt.Errorf("the bundle names %s/%d, its checkpoint %s/%d", origin, size, c.origin, c.size)
	}
	if seqOf([]byte(record)) != index+1 {
		return fmt.Errorf("the record is not seq %d", index+1)
	}
	var p tlog.RecordProof
	for _, s := range proof {
		h, err := tlog.ParseHash(s)
		if err != nil {
			return err
		}
		p = append(p, h)
	}
	return tlog.CheckRecord(p, size, c.root, index, tlog.RecordHash([]byte(record)))
}

func decode(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func inclusionJSON(keys note.Verifiers, path string) (string, error) {
	var b struct {
		Origin     string   `json:"origin"`
		Size       int64    `json:"size"`
		Index      int64    `json:"index"`
		Record     string   `json:"record"`
		Proof      []string `json:"proof"`
		Checkpoint string   `json:"checkpoint"`
	}
	if err := decode(path, &b); err != nil {
		return "", err
	}
	c, err := open(keys, b.Checkpoint)
	if err != nil {
		return "", err
	}
	if err := checkRecord(c, b.Origin, b.Size, b.Index, b.Record, b.Proof); err != nil {
		return "", err
	}
	return fmt.Sprintf("record seq %d is in %s's log of %d records", b.Index+1, c.origin, c.size), nil
}

// proofText reads a C2SP tlog-proof whose extra data is the record.
func proofText(keys note.Verifiers, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	head, cp, ok := strings.Cut(string(data), "\n\n")
	lines := strings.Split(head, "\n")
	if !ok || len(lines) < 3 || lines[0] != "c2sp.org/tlog-proof@v1" || !strings.HasPrefix(lines[1], "extra ") || !strings.HasPrefix(lines[2], "index ") {
		return "", errors.New("not a c2sp.org/tlog-proof@v1 with extra data")
	}
	record, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[1], "extra "))
	if err != nil {
		return "", err
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[2], "index "), 10, 64)
	if err != nil {
		return "", err
	}
	c, err := open(keys, cp)
	if err != nil {
		return "", err
	}
	if err := checkRecord(c, c.origin, c.size, index, string(record), lines[3:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("record seq %d is in %s's log of %d records", index+1, c.origin, c.size), nil
}

func consistency(keys note.Verifiers, path string) (string, error) {
	var b struct {
		OldSize       int64    `json:"old_size"`
		NewSize       int64    `json:"new_size"`
		Proof         []string `json:"proof"`
		OldCheckpoint string   `json:"old_checkpoint"`
		NewCheckpoint string   `json:"new_checkpoint"`
	}
	if err := decode(path, &b); err != nil {
		return "", err
	}
	old, err := open(keys, b.OldCheckpoint)
	if err != nil {
		return "", err
	}
	cur, err := open(keys, b.NewCheckpoint)
	if err != nil {
		return "", err
	}
	if old.origin != cur.origin || old.size != b.OldSize || cur.size != b.NewSize {
		return "", errors.New("the bundle's sizes or origins are not its checkpoints'")
	}
	var p tlog.TreeProof
	for _, s := range b.Proof {
		h, err := tlog.ParseHash(s)
		if err != nil {
			return "", err
		}
		p = append(p, h)
	}
	if err := tlog.CheckTree(p, cur.size, cur.root, old.size, old.root); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s's log of %d records extends its log of %d records", cur.origin, cur.size, old.size), nil
}

// export checks an export with proofs: a header with the checkpoint, then
// one record with its proof per line.
func export(keys note.Verifiers, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	if !sc.Scan() {
		return "", errors.New("empty export")
	}
	var h struct {
		Origin     string `json:"origin"`
		Size       int64  `json:"size"`
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
		return "", err
	}
	c, err := open(keys, h.Checkpoint)
	if err != nil {
		return "", err
	}
	n := 0
	for sc.Scan() {
		var r struct {
			Index  int64    `json:"index"`
			Record string   `json:"record"`
			Proof  []string `json:"proof"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return "", err
		}
		if err := checkRecord(c, h.Origin, h.Size, r.Index, r.Record, r.Proof); err != nil {
			return "", fmt.Errorf("record seq %d: %v", r.Index+1, err)
		}
		n++
	}
	return fmt.Sprintf("%d records, each in %s's log of %d records", n, c.origin, c.size), sc.Err()
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/verify"
)

// verifySummary runs `tailseal verify --json` on dataDir and returns the
// exit code and the summary.
func verifySummary(t *testing.T, dataDir string, env ...string) (int, verify.Summary, string) {
	t.Helper()
	cmd := exec.Command(binPath, "verify", "--json")
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+dataDir)
	cmd.Env = append(cmd.Env, env...)
	stdout, stderr, code := runOutputs(t, cmd)
	var sum verify.Summary
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var s struct {
			Summary *verify.Summary `json:"summary"`
		}
		if json.Unmarshal([]byte(l), &s) == nil && s.Summary != nil {
			sum = *s.Summary
		}
	}
	return code, sum, stdout + stderr
}

// copyFixture copies a data dir kept in testdata, with the permissions
// git does not keep.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "data")
	copyDir(t, filepath.Join("testdata", name), d)
	for _, sub := range []string{"keys", "state", "store"} {
		os.Chmod(filepath.Join(d, sub), 0o700)
		files, _ := filepath.Glob(filepath.Join(d, sub, "*"))
		for _, f := range files {
			os.Chmod(f, 0o600)
		}
	}
	return d
}

// testdata/chainheads is a store written by the agent before the Merkle
// tree (commit f9ad871): its six checkpoints sign the SHA-256 of their
// last line. It keeps verifying; an agent of today takes it over, builds
// its tree once from seq 1, and signs tree heads from then on.
func TestStoreWithChainHeads(t *testing.T) {
	d := copyFixture(t, "chainheads")
	code, sum, out := verifySummary(t, d)
	if code != 0 || sum.ChainHeads != 6 || sum.TreeHeads != 0 || sum.Records != 408 {
		t.Fatalf("the old store: exit %d, %+v\n%s", code, sum, out)
	}
	e := newEnv(t)
	e.dataDir = d
	p := e.start()
	w := newWriter(t, e.source)
	w.write(300)
	waitFor(t, "the new lines", 20*time.Second, func() bool { return len(readStore(t, d).events()) >= 400+300 })
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.stderr.String(), "building the Merkle tree over the records already stored") {
		t.Errorf("no word of the tree being built:\n%s", p.stderr.String())
	}
	code, sum, out = verifySummary(t, d)
	if code != 0 || sum.ChainHeads != 6 || sum.TreeHeads < 1 || sum.Consistent != sum.TreeHeads-1 {
		t.Fatalf("after the upgrade: exit %d, %+v\n%s", code, sum, out)
	}
	cmd := exec.Command(binPath, "verify")
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+d)
	if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "Merkle tree heads") || !strings.Contains(string(out), "6 chain heads") {
		t.Errorf("the summary does not say which checkpoints are which:\n%s", out)
	}
}

// treeLog is a store made once by the real agent for the proof tests:
// 1 MB segments (rotated and compressed), a checkpoint every 700 records,
// and eight kill -9 while a writer appends at full speed, each followed
// by a restart that recovers, then a clean stop.
var treeLog struct {
	once       sync.Once
	dir, err   string
	lines      int
	checkpoint string // keys/checkpoint.pub
}

func makeTreeLog(t *testing.T) (dataDir string, lines int, verifier string) {
	t.Helper()
	treeLog.once.Do(func() {
		dir, err := os.MkdirTemp("", "tailseal-treelog")
		if err != nil {
			treeLog.err = err.Error()
			return
		}
		treeLog.dir = dir
		e := &env{t: t, dir: dir, source: filepath.Join(dir, "logs", "audit.log"), dataDir: filepath.Join(dir, "data"),
			extra: []string{"TAILSEAL_SEGMENT_MAX_MB=1", "TAILSEAL_CHECKPOINT_EVERY=700"}}
		os.MkdirAll(filepath.Dir(e.source), 0o755)
		w := newWriter(t, e.source)
		w.write(100)
		p := e.start()
		e.waitStored(100)
		rng := rand.New(rand.NewPCG(3, 4))
		for range 8 {
			for range 10 {
				w.write(500)
				time.Sleep(time.Millisecond)
			}
			time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
			p.kill9(t)
			p = e.start()
		}
		w.write(3000)
		e.waitStored(w.next)
		if _, err := p.stop(t); err != nil {
			treeLog.err = fmt.Sprintf("agent exit: %v", err)
			return
		}
		treeLog.lines = w.next
		b, _ := os.ReadFile(filepath.Join(e.dataDir, "keys", "checkpoint.pub"))
		treeLog.checkpoint = strings.TrimSpace(string(b))
	})
	if treeLog.err != "" {
		t.Fatal(treeLog.err)
	}
	return filepath.Join(treeLog.dir, "data"), treeLog.lines, treeLog.checkpoint
}

// tool runs the binary with no TAILSEAL_ variable but env's: no store, no
// HMAC key unless given.
func tool(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAILSEAL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return runOutputs(t, cmd)
}

// checkpointSizes lists the sizes in a data dir's checkpoints.jsonl.
func checkpointSizes(t *testing.T, dataDir string) []uint64 {
	t.Helper()
	cps, err := agent.ReadCheckpoints(dataDir)
	if err != nil || len(cps) < 3 {
		t.Fatalf("%d checkpoints (%v), want 3 or more", len(cps), err)
	}
	var out []uint64
	for _, c := range cps {
		out = append(out, c.Size)
	}
	return out
}

// prove runs tailseal prove on dataDir and writes its output to a file.
func prove(t *testing.T, dataDir string, args ...string) (path string, stderr string, code int) {
	t.Helper()
	out, stderr, code := tool(t, []string{"TAILSEAL_DATA_DIR=" + dataDir}, append([]string{"prove"}, args...)...)
	path = filepath.Join(t.TempDir(), "proof")
	os.WriteFile(path, []byte(out), 0o644)
	return path, stderr, code
}

func TestProveAndVerifyProof(t *testing.T) {
	d, _, vkey := makeTreeLog(t)
	trusted := []string{"TAILSEAL_VERIFIER=" + vkey}
	sizes := checkpointSizes(t, d)
	newest := sizes[len(sizes)-1]
	for _, args := range [][]string{
		{"--seq", "1"}, {"--seq", "1", "--json"},
		{"--seq", "2000"}, // in a compressed segment
		{"--seq", fmt.Sprint(newest), "--json"},
		{"--seq", "5", "--size", fmt.Sprint(sizes[0])},
		{"--from", fmt.Sprint(sizes[0]), "--json"},
		{"--from", fmt.Sprint(sizes[1]), "--to", fmt.Sprint(sizes[len(sizes)-2]), "--json"},
	} {
		path, stderr, code := prove(t, d, args...)
		if code != 0 {
			t.Fatalf("prove %v: exit %d: %s", args, code, stderr)
		}
		// The verifier key alone: no store, no HMAC key.
		if out, stderr, code := tool(t, trusted, "verify-proof", path); code != 0 || !strings.HasPrefix(out, "verified: ") {
			t.Fatalf("verify-proof of prove %v: exit %d: %s%s", args, code, out, stderr)
		}
	}
	path, _, _ := prove(t, d, "--seq", "77", "--json")
	var b map[string]any
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &b); err != nil || fmt.Sprint(len(b)) != "6" || b["index"] != 76.0 || b["size"] != float64(newest) {
		t.Fatalf("bundle %s: %v", data, err)
	}
	// The record edited in the bundle; a key that did not sign it; files
	// that are no proofs; no key.
	edited := filepath.Join(t.TempDir(), "edited")
	os.WriteFile(edited, bytes.Replace(data, []byte(`L-00000`), []byte(`L-99999`), 1), 0o644)
	_, otherKey, _ := signer.GenerateNoteKey("tailseal")
	for _, c := range []struct {
		env  []string
		file string
		code int
	}{
		{trusted, edited, 1},
		{[]string{"TAILSEAL_VERIFIER=" + otherKey}, path, 1},
		{trusted, filepath.Join(d, "genesis.json"), 2},
		{nil, path, 2},
	} {
		if out, stderr, code := tool(t, c.env, "verify-proof", c.file); code != c.code {
			t.Errorf("verify-proof %s with %v: exit %d, want %d: %s%s", c.file, c.env, code, c.code, out, stderr)
		}
	}
	// No proof: after the newest checkpoint, no such checkpoint, usage.
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"--seq", fmt.Sprint(newest + 1)}, 1},
		{[]string{"--seq", "3", "--size", "3"}, 2},
		{[]string{"--seq", "3", "--from", "3"}, 2},
		{[]string{}, 2},
	} {
		if _, stderr, code := prove(t, d, c.args...); code != c.code {
			t.Errorf("prove %v: exit %d, want %d: %s", c.args, code, c.code, stderr)
		}
	}
}

// A record changed in the store after its checkpoint has no proof, and an
// export of the changed store does not verify.
func TestProofOfAnEditedRecordFails(t *testing.T) {
	src, _, _ := makeTreeLog(t)
	d := filepath.Join(t.TempDir(), "data")
	copyDir(t, src, d)
	last := segments(t, d)[len(segments(t, d))-1] // the active segment, uncompressed
	lines := segLines(t, last)
	i := len(lines) / 2
	seq := seqOf(lines[i])
	if !strings.Contains(lines[i], `"L-`) {
		t.Fatalf("line %d is not an event: %s", i, lines[i])
	}
	lines[i] = strings.Replace(lines[i], `"L-`, `"X-`, 1)
	writeSeg(t, last, lines)
	if _, stderr, code := prove(t, d, "--seq", fmt.Sprint(seq)); code != 1 || !strings.Contains(stderr, "it was changed after it was stored") {
		t.Fatalf("prove of an edited record: exit %d: %s", code, stderr)
	}
	out := filepath.Join(t.TempDir(), "export.jsonl")
	if _, stderr, code := tool(t, []string{"TAILSEAL_DATA_DIR=" + d}, "export", "--proofs", "--format", "jsonl", "--output", out); code != 1 || !strings.Contains(stderr, fmt.Sprintf("record %d is not the line the tree holds", seq)) {
		t.Fatalf("export --proofs of an edited store: exit %d: %s", code, stderr)
	}
}

func TestExportWithProofs(t *testing.T) {
	d, n, vkey := makeTreeLog(t)
	out := filepath.Join(t.TempDir(), "lead.jsonl")
	lead := fmt.Sprintf("L-%08d", n/3)
	if _, stderr, code := tool(t, []string{"TAILSEAL_DATA_DIR=" + d}, "export", "--proofs", "--format", "jsonl", "--lead", lead, "--output", out); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	data, _ := os.ReadFile(out)
	if got := strings.Count(string(data), "\n"); got != 2 {
		t.Fatalf("export of one lead: %d lines, want the checkpoint and one record:\n%s", got, data)
	}
	trusted := []string{"TAILSEAL_VERIFIER=" + vkey}
	if res, stderr, code := tool(t, trusted, "verify-proof", out); code != 0 || !strings.Contains(res, "all 1 records") {
		t.Fatalf("verify-proof: exit %d: %s%s", code, res, stderr)
	}
	// Everything, then one record changed.
	all := filepath.Join(t.TempDir(), "all.jsonl")
	if _, stderr, code := tool(t, []string{"TAILSEAL_DATA_DIR=" + d}, "export", "--proofs", "--format", "jsonl", "--output", all); code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	data, _ = os.ReadFile(all)
	if res, stderr, code := tool(t, trusted, "verify-proof", all); code != 0 {
		t.Fatalf("verify-proof of the whole export: exit %d: %s%s", code, res, stderr)
	}
	os.WriteFile(all, bytes.Replace(data, []byte(lead), []byte("L-99999999"), 1), 0o644)
	if res, _, code := tool(t, trusted, "verify-proof", all); code != 1 || !strings.Contains(res, "line ") {
		t.Fatalf("verify-proof of an edited export: exit %d: %s", code, res)
	}
	if _, _, code := tool(t, []string{"TAILSEAL_DATA_DIR=" + d}, "export", "--proofs", "--format", "csv", "--output", "-"); code != 2 {
		t.Fatalf("export --proofs --format csv: exit %d, want 2", code)
	}
}

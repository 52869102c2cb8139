package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer/verify"
)

// verifySummary runs `tailseal verify --json` on dataDir and returns the
// exit code and the summary.
func verifySummary(t *testing.T, dataDir string, env ...string) (int, verify.Summary, string) {
	t.Helper()
	cmd := exec.Command(binPath, "verify", "--json")
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+dataDir)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var sum verify.Summary
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var s struct {
			Summary *verify.Summary `json:"summary"`
		}
		if json.Unmarshal([]byte(l), &s) == nil && s.Summary != nil {
			sum = *s.Summary
		}
	}
	return code, sum, stdout.String() + stderr.String()
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

package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A real third-party witness: litewitness of filippo.io/torchwood v0.6.1
// (`go install filippo.io/torchwood/cmd/litewitness@v0.6.1`; .ci/run
// installs it and sets TAILSEAL_REQUIRE_WITNESS). It keeps its key in an
// ssh-agent and its logs in SQLite, where a log is added as witnessctl
// add-log and add-key do it: two INSERTs.

type liteWitness struct {
	url, vkey, db string
}

// litewitnessBin finds litewitness in PATH or in GOPATH/bin.
func litewitnessBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("litewitness"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if p := filepath.Join(strings.TrimSpace(string(out)), "bin", "litewitness"); fileExists(p) {
			return p
		}
	}
	for _, tool := range []string{"ssh-agent", "ssh-add", "ssh-keygen", "sqlite3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	msg := "no litewitness: go install filippo.io/torchwood/cmd/litewitness@v0.6.1"
	if os.Getenv("TAILSEAL_REQUIRE_WITNESS") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

var vkeyRe = regexp.MustCompile(`msg="verifier key" vkey=(\S+)`)

// startWitness runs an ssh-agent with a new Ed25519 key and litewitness
// on it, named witness.test/w1.
func startWitness(t *testing.T) *liteWitness {
	t.Helper()
	bin := litewitnessBin(t)
	dir, err := os.MkdirTemp("", "lw") // a short path: a unix socket's is limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	sshAgent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := sshAgent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sshAgent.Process.Kill(); sshAgent.Wait() })
	waitFor(t, "the ssh-agent socket", 10*time.Second, func() bool { return fileExists(sock) })
	key := filepath.Join(dir, "witness.key")
	run := func(env []string, name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	run(nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
	run([]string{"SSH_AUTH_SOCK=" + sock}, "ssh-add", "-q", key)
	fp := strings.Fields(run(nil, "ssh-keygen", "-l", "-f", key+".pub"))[1] // 256 SHA256:… comment (ED25519)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	w := &liteWitness{url: "http://" + addr, db: filepath.Join(dir, "witness.db")}
	var stderr syncBuffer
	lw := exec.Command(bin, "-db", w.db, "-name", "witness.test/w1", "-key", fp, "-ssh-agent", sock, "-listen", addr)
	lw.Stderr = &stderr
	if err := lw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lw.Process.Kill()
		lw.Wait()
		if t.Failed() {
			t.Logf("litewitness:\n%s", tail(stderr.String(), 8<<10))
		}
	})
	waitFor(t, "litewitness to listen", 20*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil && vkeyRe.MatchString(stderr.String())
	})
	w.vkey = vkeyRe.FindStringSubmatch(stderr.String())[1]
	return w
}

// addLog makes the witness know a log and its checkpoint key, as
// witnessctl add-log and add-key do (the empty tree's root to start).
func (w *liteWitness) addLog(t *testing.T, origin, vkey string) {
	t.Helper()
	sql := fmt.Sprintf("INSERT INTO log (origin, tree_size, tree_hash) VALUES ('%s', 0, '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=');"+
		"INSERT INTO key (origin, key) VALUES ('%s', '%s');", origin, origin, vkey)
	if out, err := exec.Command("sqlite3", w.db, sql).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
}

// cosignedSizes lists the sizes in a data dir's cosignatures.jsonl.
func cosignedSizes(dataDir string) []string {
	b, _ := os.ReadFile(filepath.Join(dataDir, "cosignatures.jsonl"))
	return regexp.MustCompile(`"size":(\d+)`).FindAllString(string(b), -1)
}

// The agent gets its checkpoints cosigned by litewitness, in the
// background, verify checks the cosignatures against the witness's key
// and a quorum; a fork of the log (the same key and origin, other
// records) and a copy of the store rolled back to an earlier state are
// refused by the witness, and the agent says so.
func TestWitnessCosigns(t *testing.T) {
	w := startWitness(t)
	e := newEnv(t, "TAILSEAL_ORIGIN=wtest", "TAILSEAL_CHECKPOINT_EVERY=300")
	if _, stderr, code := tool(t, []string{"TAILSEAL_DATA_DIR=" + e.dataDir}, "keygen"); code != 0 {
		t.Fatalf("keygen: %d %s", code, stderr)
	}
	pub, _ := os.ReadFile(filepath.Join(e.dataDir, "keys", "checkpoint.pub"))
	w.addLog(t, "wtest", strings.TrimSpace(string(pub)))
	withWitness := []string{"TAILSEAL_WITNESS_URLS=" + w.url, "TAILSEAL_WITNESS_KEYS=" + w.vkey}
	e.extra = append(e.extra, withWitness...)

	writer := newWriter(t, e.source)
	p := e.start()
	writer.write(500)
	e.waitStored(500)
	waitFor(t, "a cosignature", 20*time.Second, func() bool { return len(cosignedSizes(e.dataDir)) > 0 })
	p.stop(t)
	snapshot := filepath.Join(t.TempDir(), "data")
	copyDir(t, e.dataDir, snapshot)

	p = e.start()
	writer.write(1500)
	e.waitStored(2000)
	waitFor(t, "a cosignature of this run's records", 20*time.Second, func() bool {
		sizes := cosignedSizes(e.dataDir)
		var last uint64
		fmt.Sscanf(sizes[len(sizes)-1], `"size":%d`, &last)
		return last > 1000
	})
	p.stop(t)

	code, sum, out := verifySummary(t, e.dataDir, append(withWitness, "TAILSEAL_WITNESS_QUORUM=1")...)
	if code != 0 || sum.Cosignatures < 2 || sum.WitnessedSize <= 501 || sum.WitnessQuorum != 1 {
		t.Fatalf("verify with the witness's key: exit %d, %+v\n%s", code, sum, out)
	}
	// A proof against a witnessed checkpoint carries the cosignature, and
	// checks with the log's key alone all the same.
	path, stderr, code := prove(t, e.dataDir, "--seq", "10", "--size", fmt.Sprint(sum.WitnessedSize), "--json")
	proof, _ := os.ReadFile(path)
	if code != 0 || !bytes.Contains(proof, []byte("— witness.test/w1 ")) {
		t.Fatalf("prove against a witnessed checkpoint: exit %d %s\n%s", code, stderr, proof)
	}
	if out, stderr, code := tool(t, []string{"TAILSEAL_VERIFIER=" + strings.TrimSpace(string(pub))}, "verify-proof", path); code != 0 {
		t.Fatalf("verify-proof of a cosigned bundle: exit %d %s%s", code, out, stderr)
	}
	// A key that signed none of them: no quorum.
	other := newWitnessKey(t)
	if code, sum, out := verifySummary(t, e.dataDir, "TAILSEAL_WITNESS_KEYS="+other); code != 1 || sum.WitnessedSize != 0 {
		t.Fatalf("verify with another witness's key: exit %d, %+v\n%s", code, sum, out)
	}

	// A fork: the same origin and key, other records, more of them than
	// the witness cosigned.
	fork := newEnv(t, append([]string{"TAILSEAL_ORIGIN=wtest", "TAILSEAL_CHECKPOINT_EVERY=300"}, withWitness...)...)
	os.MkdirAll(fork.dataDir, 0o700)
	copyDir(t, filepath.Join(e.dataDir, "keys"), filepath.Join(fork.dataDir, "keys"))
	fw := newWriter(t, fork.source)
	fw.next = 1_000_000
	fw.write(3000)
	fp := fork.start()
	// Smaller than what the witness cosigned, it is refused as a
	// rollback; once larger, the witness refuses the consistency proof
	// from the size it knows.
	waitFor(t, "the witness to refuse the fork's consistency proof", 30*time.Second, func() bool {
		return strings.Contains(fp.stderr.String(), "does not accept the consistency proof")
	})
	fp.stop(t)
	t.Log("the fork:", refusal(fp.stderr.String(), "consistency proof"))
	if len(cosignedSizes(fork.dataDir)) > 0 {
		t.Errorf("the fork: cosigned %v\n%s", cosignedSizes(fork.dataDir), tail(fp.stderr.String(), 4<<10))
	}

	// The store rolled back to the copy made after the first run.
	rb := &env{t: t, dir: e.dir, source: filepath.Join(t.TempDir(), "audit.log"), dataDir: snapshot, extra: e.extra}
	rp := rb.start()
	rw := newWriter(t, rb.source) // records after the rollback: a checkpoint to submit
	rw.write(400)
	waitFor(t, "the witness to refuse the rolled-back store", 30*time.Second, func() bool {
		return strings.Contains(rp.stderr.String(), "rolled back")
	})
	rp.kill9(t)
	t.Log("the rolled-back store:", refusal(rp.stderr.String(), "rolled back"))
	if bytes.Contains([]byte(rp.stderr.String()), []byte(`"msg":"checkpoint cosigned"`)) {
		t.Errorf("the rolled-back store got a cosignature:\n%s", tail(rp.stderr.String(), 4<<10))
	}
}

// newWitnessKey is a cosignature verifier key (C2SP tlog-cosignature:
// name+hash+base64 of 0x04 and the Ed25519 key) no witness here holds.
func newWitnessKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const name = "witness.test/other"
	key := append([]byte{4}, pub...)
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	return fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(h[:4]), base64.StdEncoding.EncodeToString(key))
}

// refusal is the agent's first log line about a witness's refusal that
// says what.
func refusal(log, what string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "WITNESS REFUSED") && strings.Contains(l, what) {
			return l
		}
	}
	return "(none)"
}

// A witness that cannot be reached delays nothing: records are stored,
// the agent retries in the background, and the lag shows in
// tailseal_witness_lag_records.
func TestWitnessDownDelaysNothing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	e := newEnv(t, "TAILSEAL_CHECKPOINT_EVERY=100", "TAILSEAL_LISTEN=127.0.0.1:0",
		"TAILSEAL_WITNESS_URLS="+down, "TAILSEAL_WITNESS_KEYS="+newWitnessKey(t))
	w := newWriter(t, e.source)
	p := e.start()
	w.write(1000)
	e.waitStored(1000)
	url := p.endpoint(t)
	waitFor(t, "a failed witness request", 10*time.Second, func() bool {
		return value(scrape(t, url), "tailseal_witness_failures_total") >= 1
	})
	if lag := value(scrape(t, url), "tailseal_witness_lag_records"); lag < 1000 {
		t.Errorf("tailseal_witness_lag_records %v, want the records not cosigned", lag)
	}
	if took, err := p.stop(t); err != nil || took > 5*time.Second {
		t.Errorf("stop with a witness down: %v after %v", err, took)
	}
}

package main

import (
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitExit waits up to d for p to exit and returns its exit code.
func (p *proc) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		return 0
	case <-time.After(d):
		t.Fatalf("still running after %v", d)
		return -1
	}
}

// Two agents on one data dir, one after the other and both at once: one
// runs, the other exits 2 within a second naming the data dir and the
// holder's pid and writing nothing; the store holds every line once.
func TestOneAgentPerDataDir(t *testing.T) {
	e := newEnv(t)
	w := newWriter(t, e.source)
	first := e.start()
	for range 200 {
		w.write(1)
	}
	e.waitStored(200)
	before := dirState(t, e.dataDir)
	second := e.start()
	if code := second.waitExit(t, 15*time.Second); code != 2 {
		t.Errorf("second agent: exit %d, want 2", code)
	}
	msg := second.stderr.String()
	if !strings.Contains(msg, e.dataDir) || !strings.Contains(msg, "process "+strconv.Itoa(first.cmd.Process.Pid)) {
		t.Errorf("second agent's message names neither the data dir nor the holder: %s", msg)
	}
	if after := dirState(t, e.dataDir); after != before {
		t.Errorf("the second agent changed the data dir:\nbefore %s\nafter  %s", before, after)
	}
	for range 200 {
		w.write(1)
	}
	s := e.waitStored(400)
	first.stop(t)
	e.checkExactly(s, 400)

	// Started together on a new data dir: one exits, the other runs (it
	// stores the lines below; had both exited, it would not). A fixed
	// wait for the loser to exit failed on a loaded machine.
	e2 := newEnv(t)
	a, b := e2.start(), e2.start()
	var running *proc
	select {
	case <-a.done:
		a.done <- nil
		running = b
	case <-b.done:
		b.done <- nil
		running = a
	case <-time.After(30 * time.Second):
		t.Fatal("neither of two agents started together on one data dir exited")
	}
	w2 := newWriter(t, e2.source)
	for range 100 {
		w2.write(1)
	}
	s2 := e2.waitStored(100)
	running.stop(t)
	e2.checkExactly(s2, 100)
	if code, fs, stderr := verifyStore(t, e2.dataDir); code != 0 {
		t.Errorf("verify: exit %d, %v, %s", code, fs, stderr)
	}

	// keygen refuses a data dir an agent runs on, and one that is not empty.
	e3 := newEnv(t)
	p := e3.start()
	waitFor(t, "the agent to start", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e3.dataDir, "keys"))
		return err == nil
	})
	if _, errOut, code := cliEnv(t, e3.dataDir, nil, "keygen"); code != 2 || !strings.Contains(errOut, "an agent is running") {
		t.Errorf("keygen beside a running agent: exit %d, %s", code, errOut)
	}
	p.stop(t)
	if _, errOut, code := cliEnv(t, e3.dataDir, nil, "keygen"); code != 2 || !strings.Contains(errOut, "not new") {
		t.Errorf("keygen on a used data dir: exit %d, %s", code, errOut)
	}
}

// dirState lists the data dir's files with their sizes and times.
func dirState(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b.WriteString(path + " " + strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().String() + "\n")
		}
		return nil
	})
	return b.String()
}

// keys/ and state/ that exist open to other users (made by hand, restored
// from a backup) are made private before any key goes in, with a warning.
func TestKeyDirsMadePrivate(t *testing.T) {
	e := newEnv(t)
	for _, d := range []string{"keys", "state"} {
		if err := os.MkdirAll(filepath.Join(e.dataDir, d), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(e.dataDir, d), 0o777)
	}
	p := e.start()
	waitFor(t, "the keys", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.dataDir, "keys", "checkpoint.pub"))
		return err == nil
	})
	p.stop(t)
	for _, d := range []string{"keys", "state"} {
		fi, err := os.Stat(filepath.Join(e.dataDir, d))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want 0700", d, fi.Mode(), err)
		}
	}
	if !strings.Contains(p.stderr.String(), "made private") {
		t.Errorf("no warning in the log")
	}
}

// A store that lost the records its checkpoints cover is not silently
// replaced by a new chain at seq 1: the agent exits 2 saying why, and
// starts a new store (the old files moved aside) only when told to.
func TestLostStoreIsNotRestartedSilently(t *testing.T) {
	for _, lose := range []string{"every segment", "the newest records"} {
		t.Run(lose, func(t *testing.T) {
			e := newEnv(t, "TAILSEAL_CHECKPOINT_EVERY=50")
			w := newWriter(t, e.source)
			p := e.start()
			w.write(200)
			e.waitStored(200)
			p.stop(t)
			segs, _ := filepath.Glob(filepath.Join(e.dataDir, "store", "*.jsonl*"))
			if lose == "every segment" {
				for _, s := range segs {
					os.Remove(s)
				}
			} else { // roll the active segment back to its first 60 records
				data, _ := os.ReadFile(segs[len(segs)-1])
				lines := strings.SplitAfter(string(data), "\n")
				os.WriteFile(segs[len(segs)-1], []byte(strings.Join(lines[:60], "")), 0o600)
			}
			again := e.start()
			if code := again.waitExit(t, 10*time.Second); code != 2 || !strings.Contains(again.stderr.String(), "TAILSEAL_NEW_STORE") {
				t.Fatalf("restart over a lost store: exit %d; %s", code, tail(again.stderr.String(), 2000))
			}
			e.extra = append(e.extra, "TAILSEAL_NEW_STORE=1")
			fresh := e.start()
			s := e.waitStored(200) // the source still holds every line
			fresh.stop(t)
			e.checkExactly(s, 200)
			if moved, _ := filepath.Glob(filepath.Join(e.dataDir, "store.lost-*")); len(moved) != 1 {
				t.Errorf("the old store was not moved aside: %v", moved)
			}
			if code, fs, stderr := verifyStore(t, e.dataDir); code != 0 {
				t.Errorf("verify of the new store: exit %d %v %s", code, fs, stderr)
			}
		})
	}
}

// The active segment deleted under the running agent is noticed at the
// next commit, said loudly, and written back from the open file: nothing
// it held is lost. The whole data dir deleted makes /readyz not ready.
func TestActiveSegmentDeletedUnderTheAgent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := newEnv(t, "TAILSEAL_LISTEN="+addr)
	w := newWriter(t, e.source)
	p := e.start()
	w.write(300)
	e.waitStored(300)
	active, _ := filepath.Glob(filepath.Join(e.dataDir, "store", "*.jsonl"))
	if len(active) != 1 {
		t.Fatalf("active segments %v", active)
	}
	os.Remove(active[0])
	w.write(300)
	s := e.waitStored(600) // read from the restored file, by name
	if !strings.Contains(p.stderr.String(), "THE ACTIVE SEGMENT WAS DELETED") {
		t.Errorf("nothing said about the deleted segment")
	}
	ready := func() int {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ready(); code != 200 {
		t.Errorf("/readyz %d after the segment was restored, want 200", code)
	}
	e.checkExactly(s, 600)
	os.RemoveAll(e.dataDir)
	w.write(10)
	waitFor(t, "the segment restored in a re-made data dir", 10*time.Second, func() bool {
		return len(readStore(t, e.dataDir).events()) == 610
	})
	if code := ready(); code != 503 {
		t.Errorf("/readyz %d with the data dir's keys gone, want 503", code)
	}
	p.stop(t)
}

// A first start that fails after it made keys and state (here: a webhook
// cursor written, then the SMTP CA file is missing) leaves the data dir as
// new as it found it, so that keygen can still make its keys; the agent
// then starts on those keys. A start that fails on a store that exists
// removes nothing.
func TestFailedFirstStartLeavesTheDataDirNew(t *testing.T) {
	bad := []string{"TAILSEAL_WEBHOOK_URLS=http://127.0.0.1:1/hook", "TAILSEAL_SMTP_ADDR=127.0.0.1:2525", "TAILSEAL_SMTP_FROM=a@example.com",
		"TAILSEAL_SMTP_TO=b@example.com"}
	e := newEnv(t, append(bad, "TAILSEAL_SMTP_CA_FILE="+filepath.Join(t.TempDir(), "missing.pem"))...)
	failed := func(what string) {
		t.Helper()
		p := e.start()
		if code := p.waitExit(t, 20*time.Second); code != 2 {
			t.Fatalf("%s: exit %d, want 2; stderr:\n%s", what, code, p.stderr.String())
		}
		if !strings.Contains(p.stderr.String(), "TAILSEAL_SMTP_CA_FILE") {
			t.Fatalf("%s: stderr:\n%s", what, p.stderr.String())
		}
	}
	failed("first start")
	entries, _ := os.ReadDir(e.dataDir)
	if len(entries) != 1 || entries[0].Name() != "lock" {
		t.Fatalf("a failed first start left %v", dirState(t, e.dataDir))
	}
	out, stderr, code := runCLI(t, []string{"TAILSEAL_DATA_DIR=" + e.dataDir}, "keygen")
	if code != 0 {
		t.Fatalf("keygen after a failed first start: exit %d, %s", code, stderr)
	}
	k0 := regexp.MustCompile(`TAILSEAL_VERIFY_KEY=([0-9a-f]{64})`).FindStringSubmatch(out)
	if k0 == nil {
		t.Fatalf("keygen printed:\n%s", out)
	}

	e.extra = nil
	p := e.start()
	newWriter(t, e.source).write(5)
	e.waitStored(5)
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.stderr.String(), "generated signing keys on first start") {
		t.Errorf("the agent made its own K0 instead of keygen's:\n%s", p.stderr.String())
	}
	if _, stderr, code := runCLI(t, []string{"TAILSEAL_DATA_DIR=" + e.dataDir, "TAILSEAL_VERIFY_KEY=" + k0[1]}, "verify"); code != 0 {
		t.Errorf("verify with keygen's K0: exit %d, %s", code, stderr)
	}

	before := dirState(t, e.dataDir)
	e.extra = append(bad, "TAILSEAL_SMTP_CA_FILE="+filepath.Join(t.TempDir(), "missing.pem"))
	failed("a start on the store")
	after := dirState(t, e.dataDir)
	for _, line := range strings.Split(strings.TrimSpace(before), "\n") {
		if f := strings.Fields(line); !strings.Contains(after, f[0]+" "+f[1]+" ") {
			t.Errorf("a failed start on an existing store removed or changed %s:\nbefore\n%s\nafter\n%s", f[0], before, after)
		}
	}
}

package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tailseal/tailseal/signer/record"
)

func TestRenameRotationAtFullSpeed(t *testing.T) {
	e := newEnv(t)
	e.start()
	w := newWriter(t, e.source)
	e.following(w)
	total := 60000
	if raceEnabled {
		total = 12000
	}
	for w.next < total {
		w.write(500)
		if w.next%6000 == 0 {
			w.rename()
		}
	}
	e.checkExactly(e.waitStored(w.next), w.next)
}

// following waits until the agent reads the file the writer created. A file
// rotated away before the agent ever opened it cannot be told apart from
// one that was never the source.
func (e *env) following(w *writer) {
	w.write(1)
	e.waitStored(1)
}

func TestCopyTruncateAndTruncateWhileRunning(t *testing.T) {
	e := newEnv(t)
	e.start()
	w := newWriter(t, e.source)
	e.following(w)
	for round := range 6 {
		w.write(3000)
		if round%2 == 0 {
			w.copyTruncate() // unread lines survive in the copy
		} else {
			e.waitStored(w.next) // plain truncation loses unread lines: wait
			w.f.Truncate(0)
		}
		// Writes go on at once; the next rotation comes once the agent has
		// caught up (two truncations between two looks are not supported).
		w.write(1000)
		e.waitStored(w.next)
	}
	w.write(100)
	e.checkExactly(e.waitStored(w.next), w.next)
}

func TestRotationWhileStopped(t *testing.T) {
	tests := []struct {
		name   string
		rotate func(w *writer)
	}{
		{"rename", (*writer).rename},
		{"copytruncate", (*writer).copyTruncate},
		{"truncate after everything was read", func(w *writer) { w.f.Truncate(0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.start()
			w := newWriter(t, e.source)
			w.write(1000)
			e.waitStored(1000)
			if _, err := p.stop(t); err != nil {
				t.Fatalf("exit: %v", err)
			}
			if !strings.HasPrefix(tt.name, "truncate") {
				w.write(500) // written while the agent is down, before rotation
			}
			tt.rotate(w)
			w.write(700)
			e.start()
			e.checkExactly(e.waitStored(w.next), w.next)
		})
	}
}

// A copy left by copytruncate is not a rotated file, also for an agent
// started after the copy was made (found by the endurance test: the copy
// was read again at the next rename rotation).
func TestCopyIsNotReadAgainAfterRestart(t *testing.T) {
	e := newEnv(t)
	w := newWriter(t, e.source)
	run := func(rotate func(*writer)) {
		if rotate != nil {
			rotate(w)
		}
		w.write(100)
		p := e.start()
		e.waitStored(w.next)
		if _, err := p.stop(t); err != nil {
			t.Fatalf("exit: %v", err)
		}
	}
	run(nil)
	run((*writer).rename)       // the path is a new file, A
	run((*writer).copyTruncate) // A's lines go to a copy, A starts over
	run((*writer).rename)       // A is rotated: the copy, born after A, is no successor
	run(nil)
	e.checkExactly(readStore(t, e.dataDir), w.next)
}

func TestKill9UnderLoad(t *testing.T) {
	e := newEnv(t, "TAILSEAL_SEGMENT_MAX_MB=1")
	stop := make(chan struct{})
	written := make(chan int)
	w := newWriter(t, e.source)
	pause := 5 * time.Millisecond
	if raceEnabled {
		pause = 50 * time.Millisecond
	}
	// A first start has no position to resume from and reads the current
	// file only: the first agent must store a line before the application
	// rotates, or (under -race, on a busy machine, where 25 kills can all
	// land before one agent is up) the lines of the files rotated away
	// before any agent ran are, rightly, never read.
	w.write(100)
	first := e.start()
	e.waitStored(100)
	first.kill9(t)
	go func() { // the application: steady appends, rename rotation
		for {
			select {
			case <-stop:
				written <- w.next
				return
			default:
			}
			w.write(100)
			if w.next%5000 == 0 {
				w.rename()
			}
			time.Sleep(pause) // about 20,000 lines/s (2,000 under -race)
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 25 {
		p := e.start()
		// A random moment to kill, not a wait for a condition.
		time.Sleep(time.Duration(30+rng.IntN(250)) * time.Millisecond)
		p.kill9(t)
	}
	close(stop)
	n := <-written
	p := e.start()
	s := e.waitStored(n)
	if took, err := p.stop(t); err != nil || took > 5*time.Second {
		t.Errorf("SIGTERM: exit %v after %v", err, took)
	}
	e.checkExactly(s, n)
	segs, _ := filepath.Glob(filepath.Join(e.dataDir, "store", "*.jsonl*"))
	if len(segs) < 2 {
		t.Errorf("expected segment rotation with 1 MB segments, got %v", segs)
	}
}

func TestMalformedInput(t *testing.T) {
	e := newEnv(t)
	e.start()
	deep := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	inputs := []struct{ line, reason string }{
		{"\x00\x01\x02\xfe\xff binary", "nul byte"},
		{`{"a":"` + strings.Repeat("x", 5<<20) + `"}`, "too long"},
		{"{\"a\":\"caf\xe9\"}", "invalid utf-8"},
		{`[1,2]`, "not an object"},
		{`"str"`, "not an object"},
		{deep, "not json"},
		{`{"event_type":"ok_after_garbage"}`, ""},
	}
	f, err := os.OpenFile(e.source, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		f.WriteString(in.line + "\n")
	}
	f.Close()
	s := e.waitStored(len(inputs))
	e.checkChain(s)
	for i, in := range inputs {
		m, _ := record.ParseMeta(s.events()[i])
		if in.reason == "" {
			if m.EventType != "ok_after_garbage" {
				t.Errorf("record %d: type %q", i+1, m.EventType)
			}
			continue
		}
		if m.EventType != "malformed" || !strings.Contains(string(m.Details), `"reason":"`+in.reason+`"`) {
			t.Errorf("record %d: type %q details %.200s, want malformed %q", i+1, m.EventType, m.Details, in.reason)
		}
		if len(s.events()[i]) > 80<<10 {
			t.Errorf("record %d is %d bytes: raw text not capped", i+1, len(s.events()[i]))
		}
	}
}

func TestDefaultsAndShutdown(t *testing.T) {
	dir := t.TempDir()
	e := &env{t: t, dir: dir, dataDir: filepath.Join(dir, "data"), bare: true}
	cmd := e.start()
	// With nothing configured the agent creates ./data and ./logs and waits.
	waitFor(t, "generated key and source directory", 10*time.Second, func() bool {
		_, err1 := os.Stat(filepath.Join(dir, "data", "keys", "verify.key"))
		_, err2 := os.Stat(filepath.Join(dir, "logs"))
		return err1 == nil && err2 == nil
	})
	fi, _ := os.Stat(filepath.Join(dir, "data", "keys", "verify.key"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.WriteFile(filepath.Join(dir, "logs", "audit.log"), []byte(Line(0)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.checkExactly(e.waitStored(1), 1)
	if took, err := cmd.stop(t); err != nil || took > 5*time.Second {
		t.Errorf("SIGTERM: exit %v after %v", err, took)
	}
	if !strings.Contains(cmd.stderr.String(), "production should seal K0 to the auditor (TAILSEAL_VERIFY_RECIPIENT) or run `tailseal keygen`") {
		t.Errorf("no warning about the generated key in stderr")
	}
}

// A named pipe as the source stops the agent at start with a clear message
// (exit 2), before it creates keys or a store, and without opening the pipe:
// a writer waiting on it would be let through and its lines lost.
func TestSourceIsNamedPipe(t *testing.T) {
	e := newEnv(t)
	if err := syscall.Mkfifo(e.source, 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	p := e.start()
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop within 30s")
	}
	out := p.stderr.String()
	if code := p.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(out, "TAILSEAL_SOURCE: "+e.source+" is a named pipe") {
		t.Fatalf("exit %d, stderr:\n%s", code, out)
	}
	if _, err := os.Stat(e.dataDir); !os.IsNotExist(err) {
		t.Errorf("the data dir was created (%v)", err)
	}
}

// SIGHUP, which asks a daemon to reload, does not end the agent: it logs
// that a restart applies a change and goes on ingesting; SIGTERM then
// stops it cleanly (exit 0) with every line stored once.
func TestSIGHUPDoesNotStopTheAgent(t *testing.T) {
	e := newEnv(t)
	p := e.start()
	waitFor(t, "the agent to be ready", 20*time.Second, func() bool { return strings.Contains(p.stderr.String(), `"msg":"ready"`) })
	w := newWriter(t, e.source)
	w.write(100)
	e.waitStored(100)
	for i := range 2 {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the SIGHUP log line", 10*time.Second, func() bool {
			select {
			case err := <-p.done:
				p.done <- err
				t.Fatalf("the agent ended on SIGHUP: %v", err)
			default:
			}
			return strings.Count(p.stderr.String(), "SIGHUP: the agent goes on with the configuration it started with; restart it to apply a change") == i+1
		})
	}
	w.write(100)
	e.waitStored(200)
	if _, err := p.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	e.checkExactly(readStore(t, e.dataDir), 200)
}

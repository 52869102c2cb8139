//go:build endurance

// Endurance tests, opt in: go test -tags endurance -run Endurance ./cmd/tailseal/
// They take minutes; TAILSEAL_ENDURANCE_SHORT=1 (what CI runs) shrinks
// them to under two minutes. The full-disk test mounts a tmpfs and needs
// root; without it, it is skipped unless TAILSEAL_REQUIRE_ROOT is set.
package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func short() bool { return os.Getenv("TAILSEAL_ENDURANCE_SHORT") != "" }

// 50 kill -9 and restarts under load, with rename and copytruncate
// rotations mixed in: every line once, and tailseal verify clean.
func TestEnduranceKill9Cycles(t *testing.T) {
	cycles := 50
	if short() {
		cycles = 15
	}
	e := newEnv(t, "TAILSEAL_SEGMENT_MAX_MB=1", "TAILSEAL_EPOCH=2s", "TAILSEAL_CHECKPOINT_EVERY=2000")
	w := newWriter(t, e.source)
	stop, written := make(chan struct{}), make(chan int)
	var mu sync.Mutex // rotations happen between writes
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				written <- w.next
				return
			default:
			}
			mu.Lock()
			w.write(50)
			switch {
			case i%97 == 96:
				w.copyTruncate()
			case i%61 == 60:
				w.rename()
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	rng := rand.New(rand.NewPCG(5, 6))
	for range cycles {
		p := e.start()
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond) // a random moment
		p.kill9(t)
	}
	close(stop)
	n := <-written
	p := e.start()
	s := e.waitStored(n)
	if _, err := p.stop(t); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	e.checkExactly(readStore(t, e.dataDir), n)
	if code, findings, stderr := verifyStore(t, e.dataDir); code != 0 {
		t.Fatalf("verify exit %d: %v\n%s", code, findings, stderr)
	}
	t.Logf("%d cycles, %d lines, %d records", cycles, n, len(s.meta))
}

// A full disk pauses ingestion with a clear error; when space returns the
// agent resumes without losing or repeating a line.
func TestEnduranceFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("TAILSEAL_REQUIRE_ROOT") != "" {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Skipf("mount tmpfs (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", "-l", mnt).Run()
	e := newEnv(t)
	e.dataDir = filepath.Join(mnt, "data")
	p := e.start()
	w := newWriter(t, e.source)
	// About 8 MB of lines for a 3 MB disk.
	for range 350 {
		w.write(100)
	}
	waitFor(t, "the full-disk error", 30*time.Second, func() bool {
		return strings.Contains(p.stderr.String(), "no space left on device")
	})
	if !strings.Contains(p.stderr.String(), "ingestion paused, will retry") {
		t.Errorf("the error does not say ingestion is paused:\n%s", tail(p.stderr.String(), 2000))
	}
	stored := len(readStore(t, e.dataDir).events())
	if stored >= w.next {
		t.Fatalf("%d of %d lines stored on a 3 MB disk: it never filled", stored, w.next)
	}
	t.Logf("disk full after %d of %d lines", stored, w.next)
	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("grow tmpfs: %v %s", err, out)
	}
	w.write(100) // and the application goes on
	s := e.waitStored(w.next)
	if _, err := p.stop(t); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	e.checkExactly(readStore(t, e.dataDir), w.next)
	if code, findings, stderr := verifyStore(t, e.dataDir); code != 0 {
		t.Fatalf("verify exit %d: %v\n%s", code, findings, stderr)
	}
	_ = s
}

// rss is a process's resident set in MiB.
func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return -1
}

// A webhook down for minutes, with a restart in the middle: the agent's
// memory stays flat (the store is the queue, nothing piles up in memory)
// and every record arrives once the endpoint is back.
func TestEnduranceSinkOutage(t *testing.T) {
	outage := 3 * time.Minute
	if short() {
		outage = 20 * time.Second
	}
	var up atomic.Bool
	var mu sync.Mutex
	got := map[uint64]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var b struct{ Records []string }
		if err := decodeJSON(r, &b); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		for _, l := range b.Records {
			got[seqOf(l)] = true
		}
		mu.Unlock()
	}))
	defer srv.Close()
	// The restart mid-outage is a stop with the receiver down: it gives
	// the drain a second, not the default 20s.
	e := newEnv(t, "TAILSEAL_WEBHOOK_URLS="+srv.URL+"/hook", "TAILSEAL_RETRY_MAX_WAIT=2s", "TAILSEAL_SEGMENT_MAX_MB=1", "TAILSEAL_DRAIN_TIMEOUT=1s")
	w := newWriter(t, e.source)
	p := e.start()
	var samples []float64
	deadline := time.Now().Add(outage)
	restarted := false
	for time.Now().Before(deadline) {
		w.write(200) // about 1,000 lines/s
		time.Sleep(200 * time.Millisecond)
		samples = append(samples, rss(p.cmd.Process.Pid))
		if !restarted && time.Until(deadline) < outage/2 {
			restarted = true
			p.stop(t)
			p = e.start()
		}
	}
	up.Store(true)
	s := e.waitStored(w.next)
	waitFor(t, "every record at the webhook", 2*time.Minute, func() bool {
		s = readStore(t, e.dataDir)
		mu.Lock()
		defer mu.Unlock()
		for _, m := range s.meta {
			if !got[m.Seq] {
				return false
			}
		}
		return true
	})
	p.stop(t)
	// Flat: the last quarter of the outage uses no more than the first
	// quarter plus a margin for the heap's own growth.
	q := len(samples) / 4
	first, last := maxOf(samples[1:q]), maxOf(samples[len(samples)-q:])
	t.Logf("%d lines through a %v outage; RSS %.1f MiB early, %.1f MiB late", w.next, outage, first, last)
	if last > first+8 || last > 64 {
		t.Errorf("RSS grew during the outage: %.1f MiB, then %.1f MiB", first, last)
	}
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func decodeJSON(r *http.Request, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}

// The JetStream sink through five kill -9 with the 100,000 lines
// per agent (TestNATSTwoAgentsKill9 runs 20,000 in the regular suite).
func TestEnduranceNATSTwoAgentsKill9(t *testing.T) { natsTwoAgentsKill9(t, 100000) }

package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tailseal-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "tailseal")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build tailseal: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if bigStoreDir != "" {
		os.RemoveAll(bigStoreDir)
	}
	if fleetTmp != "" {
		os.RemoveAll(fleetTmp)
	}
	if treeLog.dir != "" {
		os.RemoveAll(treeLog.dir)
	}
	for i := range pristines {
		if d := pristines[i].val.dataDir; d != "" {
			os.RemoveAll(filepath.Dir(d))
		}
	}
	os.Exit(code)
}

// env is a test installation: a source directory and a data directory.
type env struct {
	t       *testing.T
	dir     string
	source  string
	dataDir string
	extra   []string
	bare    bool // no TAILSEAL_ variables at all: built-in defaults
}

func newEnv(t *testing.T, extra ...string) *env {
	dir := t.TempDir()
	e := &env{t: t, dir: dir, source: filepath.Join(dir, "logs", "audit.log"), dataDir: filepath.Join(dir, "data"), extra: extra}
	if err := os.MkdirAll(filepath.Dir(e.source), 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// syncBuffer collects a process's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

func (e *env) start(args ...string) *proc {
	e.t.Helper()
	if len(args) == 0 {
		args = []string{"run"}
	}
	cmd := exec.Command(binPath, args...)
	cmd.Dir = e.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAILSEAL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if !e.bare {
		cmd.Env = append(cmd.Env, "TAILSEAL_SOURCE="+e.source, "TAILSEAL_DATA_DIR="+e.dataDir,
			"TAILSEAL_POLL_INTERVAL=100ms", "TAILSEAL_LOG_LEVEL=debug", "TAILSEAL_LISTEN=")
		cmd.Env = append(cmd.Env, e.extra...)
	}
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	e.t.Cleanup(func() {
		if e.t.Failed() { // a goroutine dump shows where a stuck agent is
			cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
				p.done <- nil
			case <-time.After(2 * time.Second):
			}
		}
		cmd.Process.Kill()
		<-p.done
		if e.t.Failed() {
			e.t.Logf("agent stderr (last 4 KiB):\n%s", tail(p.stderr.String(), 16<<10))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (p *proc) kill9(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil // keep Cleanup from blocking
}

// stop sends SIGTERM and returns how long exiting took and the exit error.
func (p *proc) stop(t *testing.T) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return time.Since(start), err
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not exit within 20s of SIGTERM")
		return 0, nil
	}
}

// writer appends numbered audit lines to the source, like an application.
type writer struct {
	t    *testing.T
	path string
	f    *os.File
	next int
	rot  int
}

func newWriter(t *testing.T, path string) *writer {
	w := &writer{t: t, path: path}
	w.open()
	t.Cleanup(func() { w.f.Close() })
	return w
}

func (w *writer) open() {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	w.f = f
}

// Line returns the n-th test line (about 230 bytes, no newline).
func Line(n int) string {
	return fmt.Sprintf(`{"timestamp":"2026-02-04T20:30:45.%06dZ","event_type":"lead_ingested","actor":"system","lead_id":"L-%08d","workflow":"sales_lead_management","details":{"source":"web_form","campaign":"spring_2026","score":%d}}`,
		n%1000000, n, n%100)
}

func (w *writer) write(k int) {
	var b bytes.Buffer
	for range k {
		b.WriteString(Line(w.next))
		b.WriteByte('\n')
		w.next++
	}
	if _, err := w.f.Write(b.Bytes()); err != nil {
		w.t.Fatal(err)
	}
}

// rename rotates like logrotate's default: rename, then a new file.
func (w *writer) rename() {
	w.rot++
	w.f.Close()
	if err := os.Rename(w.path, fmt.Sprintf("%s.%d", w.path, w.rot)); err != nil {
		w.t.Fatal(err)
	}
	w.open()
}

// copyTruncate rotates like logrotate's copytruncate.
func (w *writer) copyTruncate() {
	w.rot++
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(fmt.Sprintf("%s.%d", w.path, w.rot), data, 0o644); err != nil {
		w.t.Fatal(err)
	}
	if err := w.f.Truncate(0); err != nil {
		w.t.Fatal(err)
	}
}

// stored is what the test reads back from a store.
type stored struct {
	meta []record.Meta
	line [][]byte
}

func readStore(t *testing.T, dataDir string) stored {
	t.Helper()
	dir := filepath.Join(dataDir, "store")
	for {
		var s stored
		err := store.Scan(dir, func(_ store.Segment, _ int, line []byte) error {
			m, err := record.ParseMeta(line)
			if err != nil {
				return fmt.Errorf("line %q: %w", line, err)
			}
			s.meta = append(s.meta, m)
			s.line = append(s.line, bytes.Clone(line))
			return nil
		})
		if err == nil {
			return s
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if _, serr := os.Stat(dir); serr != nil {
			return stored{} // no store yet
		}
		// A segment was compressed (renamed) while being listed: scan again.
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastEvent describes the newest stored event, for a failure message.
func lastEvent(s stored) string {
	ev := s.events()
	if len(ev) == 0 {
		return "none"
	}
	return string(ev[len(ev)-1])
}

// waitStored waits until n events from the source are stored.
func (e *env) waitStored(n int) stored {
	e.t.Helper()
	var s stored
	deadline := time.Now().Add(60 * time.Second)
	for {
		s = readStore(e.t, e.dataDir)
		if len(s.events()) >= n {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after 60s waiting for %d stored events: %d stored, the last %s", n, len(s.events()), lastEvent(s))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkChain verifies seq contiguity, the prev chain and every signature
// under K(epoch) derived from K0 in keys/verify.key, with its own code.
func (e *env) checkChain(s stored) {
	e.t.Helper()
	keyHex, err := os.ReadFile(filepath.Join(e.dataDir, "keys", "verify.key"))
	if err != nil {
		e.t.Fatal(err)
	}
	k0, _ := hex.DecodeString(strings.TrimSpace(string(keyHex)))
	prev := ""
	for i, m := range s.meta {
		if m.Seq != uint64(i+1) {
			e.t.Fatalf("record %d has seq %d", i+1, m.Seq)
		}
		if m.Prev != prev {
			e.t.Fatalf("seq %d: prev %q, want %q", m.Seq, m.Prev, prev)
		}
		key := k0
		for range m.Epoch {
			ev := hmac.New(sha256.New, key)
			ev.Write([]byte("tailseal epoch key v1"))
			key = ev.Sum(nil)
		}
		msg, sig, ok := record.SplitSigned(s.line[i])
		mac := hmac.New(sha256.New, key)
		mac.Write(msg)
		if !ok || hex.EncodeToString(mac.Sum(nil)) != string(sig) {
			e.t.Fatalf("seq %d: bad signature", m.Seq)
		}
		sum := sha256.Sum256(s.line[i])
		prev = base64.StdEncoding.EncodeToString(sum[:])
	}
}

// events are the stored records that came from source lines.
func (s stored) events() [][]byte {
	var out [][]byte
	for i, m := range s.meta {
		if !record.Internal([]byte(m.EventType)) {
			out = append(out, s.line[i])
		}
	}
	return out
}

// checkExactly verifies the store holds lines 0..n-1, in order, each once.
func (e *env) checkExactly(s stored, n int) {
	e.t.Helper()
	e.checkChain(s)
	events := s.events()
	if len(events) != n {
		e.t.Errorf("store has %d events, want %d", len(events), n)
	}
	for i, line := range events {
		var r struct {
			LeadID string `json:"lead_id"`
		}
		json.Unmarshal(line, &r)
		if want := fmt.Sprintf("L-%08d", i); r.LeadID != want {
			e.t.Fatalf("event %d is %q, want %q (lost, repeated or reordered)", i+1, r.LeadID, want)
		}
	}
}

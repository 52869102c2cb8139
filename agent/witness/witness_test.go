package witness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/clock"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	tdnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tinyWitness is the add-checkpoint rules of C2SP tlog-witness over one
// log, on a real HTTP server, with a real cosignature key: what the
// client's branches need, fast and without litewitness (which
// cmd/tailseal's tests run).
type tinyWitness struct {
	mu   sync.Mutex
	size int64
	root tlog.Hash
	log  note.Verifier
	sign note.Signer
	vkey string
}

func newTinyWitness(t *testing.T, logKey note.Verifier) *tinyWitness {
	seed := bytes.Repeat([]byte{9}, ed25519.SeedSize)
	const name = "witness.test/tiny"
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	s, err := tdnote.NewSignerForCosignatureV1(fmt.Sprintf("PRIVATE+KEY+%s+00000000+%s", name, base64.StdEncoding.EncodeToString(append([]byte{1}, seed...))))
	if err != nil {
		t.Fatal(err)
	}
	key := append([]byte{4}, pub...)
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	return &tinyWitness{log: logKey, sign: s, root: tlog.Hash(sha256.Sum256(nil)),
		vkey: fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(h[:4]), base64.StdEncoding.EncodeToString(key))}
}

func (w *tinyWitness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	head, text, _ := bytes.Cut(body, []byte("\n\n"))
	lines := strings.Split(string(head), "\n")
	old, _ := strconv.ParseInt(strings.TrimPrefix(lines[0], "old "), 10, 64)
	var proof tlog.TreeProof
	for _, l := range lines[1:] {
		h, _ := tlog.ParseHash(l)
		proof = append(proof, h)
	}
	n, err := note.Open(text, note.VerifierList(w.log))
	if err != nil {
		http.Error(rw, err.Error(), http.StatusForbidden)
		return
	}
	c, _ := signer.ParseCheckpoint(n.Text)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case old != w.size:
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", w.size)
		return
	case old > 0 && tlog.CheckTree(proof, int64(c.Size), c.Hash, old, w.root) != nil:
		http.Error(rw, "bad proof", http.StatusUnprocessableEntity)
		return
	}
	w.size, w.root = int64(c.Size), c.Hash
	signed, _ := note.Sign(&note.Note{Text: n.Text}, w.sign)
	_, sigs, _ := bytes.Cut(signed, []byte("\n\n"))
	rw.Write(sigs)
}

// logStore is a store of n records with its tree, and signed tree heads.
type logStore struct {
	dir  string
	st   *store.Store
	sign note.Signer
	ver  note.Verifier
	next uint64
}

func newLog(t *testing.T) *logStore {
	dir := t.TempDir()
	st, _, err := store.Open(store.Options{Dir: filepath.Join(dir, "store"), SegmentMax: 1 << 20, SegmentMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	skey, vkey, _ := signer.GenerateNoteKey("tailseal")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return &logStore{dir: dir, st: st, sign: s, ver: v, next: 1}
}

// grow appends n records and returns the signed tree head after them.
func (l *logStore) grow(t *testing.T, n int, tag string) Checkpoint {
	t.Helper()
	for range n {
		line := fmt.Sprintf(`{"seq":%d,"timestamp":"t","event_type":%q,"details":{},"epoch":0,"prev":"","signature":"00"}`+"\n", l.next, tag)
		if err := l.st.Append([]byte(line), l.next, l.next); err != nil {
			t.Fatal(err)
		}
		l.next++
	}
	if err := l.st.Commit(); err != nil {
		t.Fatal(err)
	}
	size, root, _ := l.st.TreeHead()
	signed, err := signer.SignCheckpoint(signer.Checkpoint{Origin: "o", Size: size, Hash: root}, l.sign)
	if err != nil {
		t.Fatal(err)
	}
	return Checkpoint{Size: size, Root: root, Note: signed}
}

func (l *logStore) client(t *testing.T, url, vkey string) *Client {
	t.Helper()
	keys, err := signer.ParseWitnessKeys(vkey)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(l.dir, "state"), 0o700)
	c, err := New(Options{DataDir: l.dir, Hashes: os.DirFS(filepath.Join(l.dir, "store", store.HashDir)),
		Witnesses: []Witness{{URL: url, Key: keys[0]}}, HTTP: http.DefaultClient})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// submitNow asks the witness once, as serve does, and says how it went.
func submitNow(c *Client, cp Checkpoint) error {
	c.latest.Store(&cp)
	err := c.submit(context.Background(), c.ws[0], &cp)
	if _, ok := err.(errAgain); ok {
		err = c.submit(context.Background(), c.ws[0], &cp)
	}
	return err
}

func TestCosignatures(t *testing.T) {
	l := newLog(t)
	w := newTinyWitness(t, l.ver)
	srv := httptest.NewServer(w)
	defer srv.Close()
	c := l.client(t, srv.URL, w.vkey)

	cp := l.grow(t, 300, "a")
	if err := submitNow(c, cp); err != nil {
		t.Fatal(err)
	}
	cp = l.grow(t, 200, "a") // a consistency proof from 300
	if err := submitNow(c, cp); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(l.dir, CosignaturesFile))
	if got := strings.Count(string(data), "\n"); got != 2 || !strings.Contains(string(data), `"size":500`) {
		t.Fatalf("cosignatures.jsonl:\n%s", data)
	}
	// A client that lost its state: the witness's 409 says where it
	// stands, and the next request proves from there.
	os.RemoveAll(filepath.Join(l.dir, "state"))
	c = l.client(t, srv.URL, w.vkey)
	if err := submitNow(c, l.grow(t, 10, "a")); err != nil {
		t.Fatalf("after the state was lost: %v", err)
	}
	if c.ws[0].cosigned.Load().Size != 510 {
		t.Fatalf("state %+v", c.ws[0].cosigned.Load())
	}

	// Another log of the same key, longer than what the witness saw, and
	// one shorter.
	fork := newLog(t)
	fork.sign, fork.ver = l.sign, l.ver
	fc := fork.client(t, srv.URL, w.vkey)
	if err := submitNow(fc, fork.grow(t, 100, "b")); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("a shorter fork: %v", err)
	}
	if err := submitNow(fc, fork.grow(t, 900, "b")); err == nil || !strings.Contains(err.Error(), "forked or rewritten") {
		t.Fatalf("a longer fork: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(fork.dir, CosignaturesFile)); len(data) > 0 {
		t.Fatal("a fork was cosigned")
	}
}

// serve retries a witness that is down, on the clock, and gets the
// cosignature once it is up.
func TestRetriesInTheBackground(t *testing.T) {
	l := newLog(t)
	w := newTinyWitness(t, l.ver)
	var isUp atomic.Bool
	cosigned := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !isUp.Load() {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		w.ServeHTTP(rw, r)
		cosigned <- struct{}{}
	}))
	defer srv.Close()
	c := l.client(t, srv.URL, w.vkey)
	clk := clock.NewFake(time.Unix(1e9, 0))
	c.opt.Clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	c.Checkpoint(l.grow(t, 50, "a"))
	<-clk.Armed(retryMin) // the first request failed: a retry is due in a second
	if c.ws[0].failures.Load() != 1 {
		t.Fatalf("%d failures", c.ws[0].failures.Load())
	}
	isUp.Store(true)
	clk.Advance(retryMin)
	<-cosigned
	// The client keeps the answer just after the witness sent it.
	for deadline := time.Now().Add(5 * time.Second); c.ws[0].cosigned.Load().Size != 50; {
		if time.Now().After(deadline) {
			t.Fatal("not cosigned after the witness came up")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

package main

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/signer/record"
)

// The auditor's flow: keygen --age, an agent given the recipient, no K0
// anywhere in the data dir, verify with the identity. A tampered record is
// a finding (exit 1); a wrong identity is a usage error (exit 2).
func TestSealedK0EndToEnd(t *testing.T) {
	dir := t.TempDir()
	idPath := filepath.Join(dir, "auditor.key")
	out, err := exec.Command(binPath, "keygen", "--age").Output()
	if err != nil {
		t.Fatalf("keygen --age: %v", err)
	}
	if err := os.WriteFile(idPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	_, recipient, ok := strings.Cut(string(out), "# public key: ")
	recipient, _, _ = strings.Cut(recipient, "\n")
	if !ok || !strings.HasPrefix(recipient, "age1") {
		t.Fatalf("keygen --age printed no recipient:\n%s", out)
	}

	e := newEnv(t, "TAILSEAL_VERIFY_RECIPIENT="+recipient, "TAILSEAL_EPOCH=1s", "TAILSEAL_SEGMENT_MAX_MB=1")
	p := e.start()
	w := newWriter(t, e.source)
	w.write(3000)
	e.waitStored(w.next)
	seals := countType(t, e.dataDir, "seal")
	waitFor(t, "an epoch to end", 10*time.Second, func() bool { return countType(t, e.dataDir, "seal") > seals })
	w.write(3000)
	e.waitStored(w.next)
	if _, err := p.stop(t); err != nil {
		t.Fatalf("agent exit: %v", err)
	}

	k0 := openSealed(t, e.dataDir, idPath)
	if where := findBytes(t, e.dataDir, k0, []byte(hex.EncodeToString(k0))); len(where) > 0 {
		t.Fatalf("K0 is in the data dir: %v", where)
	}
	if _, err := os.Stat(filepath.Join(e.dataDir, agent.KeysDir, agent.VerifyKeyFile)); err == nil {
		t.Error("keys/verify.key exists though K0 is sealed")
	}
	g, err := agent.ReadGenesis(e.dataDir)
	if err != nil || g.Details.SealedTo != recipient || g.Details.NextEpoch != 1 {
		t.Fatalf("genesis %+v, %v", g, err)
	}
	m, _ := record.ParseMeta(g.Line)
	if m.Seq != 1 || m.Epoch != 0 {
		t.Errorf("genesis at seq %d epoch %d, want seq 1 epoch 0", m.Seq, m.Epoch)
	}

	code, findings, stderr := verifyStore(t, e.dataDir, "TAILSEAL_VERIFY_IDENTITY_FILE="+idPath)
	if code != 0 || len(findings) > 0 {
		t.Fatalf("verify --identity: exit %d, %v\n%s", code, findings, stderr)
	}
	// The flag, and what it says: where K0 came from, which store this is.
	cmd := exec.Command(binPath, "verify", "--identity", idPath)
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+e.dataDir)
	out, err = cmd.CombinedOutput()
	host, _ := os.Hostname()
	for _, want := range []string{"intact", "K0 opened from the genesis record", "origin " + host} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("verify --identity: %v, no %q in\n%s", err, want, out)
		}
	}

	tampered := filepath.Join(t.TempDir(), "data")
	copyDir(t, e.dataDir, tampered)
	editEvent(t, tampered, `"lead_ingested"`, `"lead_rejected"`)
	if code, findings, stderr := verifyStore(t, tampered, "TAILSEAL_VERIFY_IDENTITY_FILE="+idPath); code != 1 || len(findings) == 0 {
		t.Errorf("tampered store: exit %d, %v, %s; want exit 1 with findings", code, findings, stderr)
	}

	wrong := filepath.Join(dir, "other.key")
	newAgeIdentity(t, wrong)
	code, _, stderr = verifyStore(t, e.dataDir, "TAILSEAL_VERIFY_IDENTITY_FILE="+wrong)
	if code != 2 || !strings.Contains(stderr, "does not open this store's sealed K0") || !strings.Contains(stderr, recipient) {
		t.Errorf("wrong identity: exit %d, %s; want exit 2 naming the recipient", code, stderr)
	}
	if code, _, stderr := verifyStore(t, e.dataDir, "TAILSEAL_VERIFY_IDENTITY_FILE="+filepath.Join(dir, "missing.key")); code != 2 {
		t.Errorf("missing identity file: exit %d, %s", code, stderr)
	}
}

// findBytes lists the files under dir (gzip segments decompressed) that
// hold any of the needles.
func findBytes(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var where []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		contents := [][]byte{data}
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return err
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				return err
			}
			contents = append(contents, plain)
		}
		for _, c := range contents {
			for _, n := range needles {
				if bytes.Contains(c, n) {
					where = append(where, path)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return where
}

// editEvent changes the first application event holding old in the
// store's first uncompressed segment, or its first segment.
func editEvent(t *testing.T, dataDir, old, repl string) {
	t.Helper()
	for _, seg := range segments(t, dataDir) {
		if editLine(t, seg, old, repl) {
			return
		}
	}
	t.Fatalf("no record holds %s", old)
}

// editLine replaces old by repl in the first line of the segment at path
// that holds it; false when none does.
func editLine(t *testing.T, path, old, repl string) bool {
	t.Helper()
	lines := segLines(t, path)
	for i, l := range lines {
		if strings.Contains(l, old) {
			lines[i] = strings.Replace(l, old, repl, 1)
			writeSeg(t, path, lines)
			return true
		}
	}
	return false
}

// An origin is fixed when the store is created: the same store refuses
// another TAILSEAL_ORIGIN (exit 2, saying how to proceed), keeps its own
// when the variable is unset, and names it in every checkpoint and in
// tailseal_build_info. A new store without TAILSEAL_ORIGIN is named after
// the host.
func TestOriginIsFixedAtCreation(t *testing.T) {
	e := newEnv(t, "TAILSEAL_ORIGIN=web-0.example")
	p := e.start()
	w := newWriter(t, e.source)
	w.write(10)
	e.waitStored(w.next)
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}

	e.extra = []string{"TAILSEAL_ORIGIN=web-1.example"}
	p = e.start()
	if code := p.waitExit(t, 10*time.Second); code != 2 {
		t.Fatalf("another origin on the store: exit %d, want 2\n%s", code, p.stderr.String())
	}
	for _, want := range []string{`created as origin \"web-0.example\"`, "unset TAILSEAL_ORIGIN", "TAILSEAL_DATA_DIR"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("the error does not say %s:\n%s", want, p.stderr.String())
		}
	}

	e.extra = []string{"TAILSEAL_LISTEN=127.0.0.1:0"}
	p = e.start()
	url := p.endpoint(t)
	w.write(10)
	e.waitStored(w.next)
	fams := scrape(t, url)
	info, ok := fams["tailseal_build_info"]
	if !ok || len(info.Metric) != 1 {
		t.Fatal("no tailseal_build_info")
	}
	labels := map[string]string{}
	for _, l := range info.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["origin"] != "web-0.example" || labels["version"] == "" {
		t.Errorf("tailseal_build_info labels %v", labels)
	}
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	origins := map[string]int{}
	for _, m := range readStore(t, e.dataDir).meta {
		if m.EventType == record.TypeCheckpoint {
			var d record.CheckpointDetails
			if err := json.Unmarshal(m.Details, &d); err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(d.Note, "\n")
			origins[first]++
		}
	}
	if len(origins) != 1 || origins["web-0.example"] == 0 {
		t.Errorf("checkpoint origins %v, want only web-0.example", origins)
	}

	host, _ := os.Hostname()
	e2 := newEnv(t)
	p = e2.start()
	w2 := newWriter(t, e2.source)
	w2.write(1)
	e2.waitStored(1)
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	if o, err := agent.StoreOrigin(e2.dataDir); err != nil || o != host {
		t.Errorf("default origin %q, %v; want the host name %q", o, err, host)
	}
}

// Two agents with their own origins post to one receiver, which keys what
// it takes by webhook-id, as the README recommends: every record of both
// arrives, no id of one agent is ever an id of the other, and each body
// names its origin.
func TestTwoAgentsOneReceiver(t *testing.T) {
	var mu sync.Mutex
	byID := map[string]string{}           // webhook-id -> origin of its body
	got := map[string]map[uint64]string{} // origin -> seq -> line
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var batch struct {
			Origin  string   `json:"origin"`
			Records []string `json:"records"`
		}
		if err := json.NewDecoder(req.Body).Decode(&batch); err != nil {
			return
		}
		id := req.Header.Get("webhook-id")
		mu.Lock()
		defer mu.Unlock()
		if o, ok := byID[id]; ok && o != batch.Origin {
			t.Errorf("webhook-id %s came from %q and from %q", id, o, batch.Origin)
		}
		byID[id] = batch.Origin
		if got[batch.Origin] == nil {
			got[batch.Origin] = map[uint64]string{}
		}
		for _, l := range batch.Records {
			seq, _ := record.Seq([]byte(l))
			got[batch.Origin][seq] = l
		}
	}))
	defer srv.Close()
	envs := map[string]*env{}
	procs := map[string]*proc{}
	for _, origin := range []string{"checkout-0", "checkout-1"} {
		e := newEnv(t, "TAILSEAL_ORIGIN="+origin, "TAILSEAL_WEBHOOK_URLS="+srv.URL, "TAILSEAL_WEBHOOK_BATCH=25", "TAILSEAL_WEBHOOK_BATCH_AGE=10ms")
		envs[origin], procs[origin] = e, e.start()
		w := newWriter(t, e.source)
		w.write(300)
		e.waitStored(w.next)
	}
	for origin, e := range envs {
		waitFor(t, "every record of "+origin+" at the receiver", 30*time.Second, func() bool {
			s := readStore(t, e.dataDir)
			mu.Lock()
			defer mu.Unlock()
			for i, m := range s.meta {
				if got[origin][m.Seq] != string(s.line[i]) {
					return false
				}
			}
			return true
		})
		if _, err := procs[origin].stop(t); err != nil {
			t.Error(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Errorf("bodies named origins %v, want the two agents'", slices.Collect(maps.Keys(got)))
	}
	t.Logf("%d distinct webhook-ids over 2 agents", len(byID))
}

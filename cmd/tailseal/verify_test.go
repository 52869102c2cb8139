package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/signer/verify"
	"golang.org/x/mod/sumdb/note"
)

// pristine is a store made once by the real agent: several segments (some
// compressed), several epochs with seals, checkpoints, and a snapshot of the
// store taken midway (for the rollback case). A sealed one has its K0
// sealed to an age recipient; keyEnv gives verify its K0 either way.
type pristine struct {
	dataDir  string
	snapshot string
	k0       string
	keyEnv   string
}

var pristines [2]struct {
	once sync.Once
	val  pristine
	err  string
}

// makePristine is the store of an agent that generated its keys on first
// start; makeSealedPristine of one given the auditor's age recipient.
func makePristine(t *testing.T) pristine       { return pristineStore(t, false) }
func makeSealedPristine(t *testing.T) pristine { return pristineStore(t, true) }

func pristineStore(t *testing.T, sealed bool) pristine {
	ps := &pristines[0]
	if sealed {
		ps = &pristines[1]
	}
	ps.once.Do(func() { ps.val, ps.err = newPristine(t, sealed) })
	if ps.err != "" {
		t.Fatal(ps.err)
	}
	return ps.val
}

func newPristine(t *testing.T, sealed bool) (pristine, string) {
	dir, err := os.MkdirTemp("", "tailseal-pristine")
	if err != nil {
		return pristine{}, err.Error()
	}
	e := &env{t: t, dir: dir, source: filepath.Join(dir, "logs", "audit.log"), dataDir: filepath.Join(dir, "data"),
		extra: []string{"TAILSEAL_EPOCH=1s", "TAILSEAL_SEGMENT_MAX_MB=1", "TAILSEAL_CHECKPOINT_EVERY=500"}}
	idPath := filepath.Join(dir, "auditor.key")
	if sealed {
		e.extra = append(e.extra, "TAILSEAL_VERIFY_RECIPIENT="+newAgeIdentity(t, idPath))
	}
	os.MkdirAll(filepath.Dir(e.source), 0o755)
	p := e.start()
	w := newWriter(t, e.source)
	for round := 0; round < 7; round++ {
		w.write(2000)
		e.waitStored(w.next)
		if round == 3 {
			copyDir(t, filepath.Join(e.dataDir, "store"), filepath.Join(dir, "snapshot"))
		}
		seals := countType(t, e.dataDir, "seal")
		waitFor(t, "an epoch to end", 10*time.Second, func() bool { return countType(t, e.dataDir, "seal") > seals })
	}
	// Two more epochs with no lines: whatever the batches and rotations
	// did, the last segment then holds two seals or more (the cases that
	// cut across past epochs need them).
	seals := countType(t, e.dataDir, "seal")
	waitFor(t, "two idle epochs to end", 10*time.Second, func() bool { return countType(t, e.dataDir, "seal") >= seals+2 })
	if _, err := p.stop(t); err != nil {
		return pristine{}, fmt.Sprintf("agent exit: %v", err)
	}
	val := pristine{dataDir: e.dataDir, snapshot: filepath.Join(dir, "snapshot")}
	if !sealed {
		k0, _ := os.ReadFile(filepath.Join(e.dataDir, "keys", "verify.key"))
		val.k0 = strings.TrimSpace(string(k0))
		val.keyEnv = "TAILSEAL_VERIFY_KEY=" + val.k0
		return val, ""
	}
	val.k0 = hex.EncodeToString(openSealed(t, e.dataDir, idPath))
	val.keyEnv = "TAILSEAL_VERIFY_IDENTITY_FILE=" + idPath
	return val, ""
}

// newAgeIdentity writes a new age identity to path, as the auditor would
// keep it, and returns its recipient.
func newAgeIdentity(t *testing.T, path string) string {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return id.Recipient().String()
}

// openSealed opens the K0 sealed in the store's genesis with the identity.
func openSealed(t *testing.T, dataDir, idPath string) []byte {
	t.Helper()
	g, err := agent.ReadGenesis(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := signer.ReadIdentities(idPath)
	if err != nil {
		t.Fatal(err)
	}
	k0, err := signer.OpenK0(g.Details.SealedK0, ids)
	if err != nil {
		t.Fatal(err)
	}
	return k0
}

func countType(t *testing.T, dataDir, typ string) int {
	n := 0
	for _, m := range readStore(t, dataDir).meta {
		if m.EventType == typ {
			n++
		}
	}
	return n
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// readFile reads a file, decompressing it if its name ends in .gz.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

// segLines reads a segment's lines, compressed or not.
func segLines(t *testing.T, path string) []string {
	t.Helper()
	return strings.Split(strings.TrimSuffix(string(readFile(t, path)), "\n"), "\n")
}

func writeSeg(t *testing.T, path string, lines []string) {
	t.Helper()
	data := []byte(strings.Join(lines, "\n") + "\n")
	if strings.HasSuffix(path, ".gz") {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		data = b.Bytes()
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rewriteSeg is writeSeg by a thief who covers their tracks: a
// compressed segment goes back to its uncompressed name (and loses its
// filter file) for store.CompressRotated to compress it again.
func rewriteSeg(t *testing.T, path string, lines []string) {
	t.Helper()
	base, ok := strings.CutSuffix(path, store.CompressedExt)
	if !ok {
		writeSeg(t, path, lines)
		return
	}
	dir := filepath.Dir(path)
	os.Remove(filepath.Join(dir, store.FilterPath(filepath.Base(path))))
	os.Remove(path)
	writeSeg(t, base+store.ActiveExt, lines)
}

func segments(t *testing.T, dataDir string) []string {
	t.Helper()
	segs, err := store.List(filepath.Join(dataDir, "store"))
	if err != nil || len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %v (%v)", segs, err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, filepath.Join(dataDir, "store", s.Name))
	}
	return out
}

func seqOf(line string) uint64 {
	seq, _ := record.Seq([]byte(line))
	return seq
}

type finding struct {
	Segment string `json:"segment"`
	Line    int    `json:"line"`
	Seq     uint64 `json:"seq"`
	Kind    string `json:"kind"`
}

// verifyStore runs `tailseal verify --json` on dataDir and returns the exit
// code, the findings and stderr.
func verifyStore(t *testing.T, dataDir string, env ...string) (int, []finding, string) {
	t.Helper()
	cmd := exec.Command(binPath, "verify", "--json")
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+dataDir)
	cmd.Env = append(cmd.Env, env...)
	stdout, stderr, code := runOutputs(t, cmd)
	var fs []finding
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var f finding
		if json.Unmarshal([]byte(l), &f) == nil && f.Kind != "" {
			fs = append(fs, f)
		}
	}
	return code, fs, stderr
}

func TestVerifyDetectsTampering(t *testing.T) {
	p := makePristine(t)
	withKey := "TAILSEAL_VERIFY_KEY=" + p.k0
	if code, fs, stderr := verifyStore(t, p.dataDir, withKey); code != 0 || len(fs) != 0 {
		t.Fatalf("untouched store: exit %d findings %v %s", code, fs, stderr)
	}

	// Each case edits a copy of the store and names the finding it expects:
	// the kind, and the seq (0: any) in the segment at index seg (-1: any).
	tests := []struct {
		name   string
		tamper func(t *testing.T, dataDir string) (seg int, seq uint64)
		kind   string
	}{
		{"flip one byte", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			lines := segLines(t, segs[1])
			i := len(lines) / 2
			lines[i] = strings.Replace(lines[i], `"lead_ingested"`, `"lead_ingestes"`, 1)
			writeSeg(t, segs[1], lines)
			return 1, seqOf(lines[i])
		}, "edited"},
		{"delete a line", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			lines := segLines(t, segs[0])
			i := 100
			gone := seqOf(lines[i])
			writeSeg(t, segs[0], append(lines[:i:i], lines[i+1:]...))
			return 0, gone + 1
		}, "deleted"},
		{"insert a copied line", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			lines := segLines(t, segs[0])
			copied := lines[10]
			lines = append(lines[:201], append([]string{copied}, lines[201:]...)...)
			writeSeg(t, segs[0], lines)
			return 0, seqOf(copied)
		}, "inserted"},
		{"swap two lines", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			lines := segLines(t, segs[1])
			lines[50], lines[51] = lines[51], lines[50]
			writeSeg(t, segs[1], lines)
			return 1, seqOf(lines[50])
		}, "reordered"},
		{"truncate the last 3 lines", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			last := segs[len(segs)-1]
			lines := segLines(t, last)
			writeSeg(t, last, lines[:len(lines)-3])
			return -1, 0
		}, "truncated"},
		{"truncate a line mid-way", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			last := segs[len(segs)-1]
			data, _ := os.ReadFile(last)
			os.WriteFile(last, data[:len(data)-40], 0o600)
			return -1, 0
		}, "truncated"},
		{"delete a rotated segment", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			os.Remove(segs[1])
			return 2, seqOf(segLines(t, segs[2])[0])
		}, "segment missing"},
		{"replace a segment with one from another store", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			lines := segLines(t, segs[1])
			foreign := resign(t, lines, bytes.Repeat([]byte{7}, 32)) // same seqs, another key
			writeSeg(t, segs[1], foreign)
			return 1, seqOf(lines[0])
		}, "segment replaced"},
		{"forge a checkpoint", func(t *testing.T, d string) (int, uint64) {
			path := filepath.Join(d, "checkpoints.jsonl")
			data, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			var cl struct {
				Size uint64 `json:"size"`
				Time string `json:"time"`
				Note string `json:"note"`
			}
			json.Unmarshal([]byte(lines[1]), &cl)
			cl.Note = strings.Replace(cl.Note, fmt.Sprintf("\n%d\n", cl.Size), fmt.Sprintf("\n%d\n", cl.Size+1), 1)
			cl.Size++
			b, _ := json.Marshal(cl)
			lines[1] = string(b)
			os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
			return -1, cl.Size
		}, "bad checkpoint"},
		{"a forked checkpoint: same size, another head, signed with the key", func(t *testing.T, d string) (int, uint64) {
			path := filepath.Join(d, "checkpoints.jsonl")
			data, _ := os.ReadFile(path)
			var cl record.CheckpointLine
			json.Unmarshal(data[:bytes.IndexByte(data, '\n')], &cl)
			skey, _ := os.ReadFile(filepath.Join(d, "keys", "checkpoint.key"))
			ns, err := note.NewSigner(strings.TrimSpace(string(skey)))
			if err != nil {
				t.Fatal(err)
			}
			c, _ := signer.ParseCheckpoint(cl.Note[:strings.Index(cl.Note, "\n\n")+1])
			c.Hash[0] ^= 1 // another log of the same size
			cl.Note, err = signer.SignCheckpoint(c, ns)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(cl)
			// First in the file, so that the honest line read after it
			// cannot hide it.
			os.WriteFile(path, append(append(b, '\n'), data...), 0o644)
			return -1, cl.Size
		}, "fork"},
		{"cut the tail across past epochs, and its checkpoints", func(t *testing.T, d string) (int, uint64) {
			// Keep the store up to the first seal of the last segment:
			// every record and checkpoint after it goes, later seals and
			// the clean stop too.
			segs := segments(t, d)
			last := segs[len(segs)-1]
			lines := segLines(t, last)
			cut, seals := 0, 0
			for i, l := range lines {
				if strings.Contains(l, `"event_type":"seal"`) {
					if seals++; seals == 1 {
						cut = i + 1
					}
				}
			}
			if seals < 2 {
				t.Fatalf("%d seals in the last segment, want 2 or more", seals)
			}
			writeSeg(t, last, lines[:cut])
			keep := seqOf(lines[cut-1])
			path := filepath.Join(d, "checkpoints.jsonl")
			data, _ := os.ReadFile(path)
			var kept []string
			for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var cl record.CheckpointLine
				if json.Unmarshal([]byte(l), &cl); cl.Size+1 <= keep {
					kept = append(kept, l)
				}
			}
			os.WriteFile(path, []byte(strings.Join(kept, "\n")+"\n"), 0o644)
			return len(segs) - 1, keep
		}, "tail missing"},
		{"roll the store back to an older copy", func(t *testing.T, d string) (int, uint64) {
			os.RemoveAll(filepath.Join(d, "store"))
			copyDir(t, p.snapshot, filepath.Join(d, "store"))
			return -1, 0
		}, "truncated"},
		// Damage to the first segment is a finding like any other, not a
		// failure to start: the genesis comes from genesis.json.
		{"make the first segment a directory", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			os.Remove(segs[0])
			if err := os.Mkdir(segs[0], 0o700); err != nil {
				t.Fatal(err)
			}
			return 0, 1
		}, "segment unreadable"},
		{"empty the first segment", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			if !strings.HasSuffix(segs[0], ".gz") {
				t.Fatalf("%s: want a compressed segment, whose header is missing", segs[0])
			}
			if err := os.WriteFile(segs[0], nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return 0, 1
		}, "segment unreadable"},
		// The records verify, but proofs through a damaged stored hash
		// would fail: verify says so.
		{"zero a stored Merkle hash", func(t *testing.T, d string) (int, uint64) {
			f, err := os.OpenFile(filepath.Join(d, "store", "hashes", "0"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 32), 500*32); err != nil {
				t.Fatal(err)
			}
			return -1, 501
		}, "tree hashes"},
		{"change an epoch number", func(t *testing.T, d string) (int, uint64) {
			segs := segments(t, d)
			last := segs[len(segs)-1]
			lines := segLines(t, last)
			i := len(lines) / 2
			m, _ := record.ParseMeta([]byte(lines[i]))
			lines[i] = strings.Replace(lines[i], fmt.Sprintf(`,"epoch":%d,`, m.Epoch), fmt.Sprintf(`,"epoch":%d,`, m.Epoch+1), 1)
			writeSeg(t, last, lines)
			return len(segs) - 1, m.Seq
		}, "edited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "data")
			copyDir(t, p.dataDir, d)
			seg, seq := tt.tamper(t, d)
			code, fs, stderr := verifyStore(t, d, withKey)
			if code != 1 {
				t.Fatalf("exit %d, want 1; findings %v; stderr %s", code, fs, stderr)
			}
			var segName string
			if seg >= 0 {
				segName = filepath.Base(segments(t, p.dataDir)[seg])
			}
			for _, f := range fs {
				if f.Kind == tt.kind && (seq == 0 || f.Seq == seq) && (segName == "" || f.Segment == segName) {
					return
				}
			}
			t.Errorf("no %q finding at seq %d in %q; got %+v", tt.kind, seq, segName, fs)
		})
	}
}

// resign re-chains and re-signs lines under key (epoch keys derived from it),
// keeping their seqs: what another store, or a thief holding key, produces.
func resign(t *testing.T, lines []string, key []byte) []string {
	t.Helper()
	out := make([]string, len(lines))
	var prev string
	for i, l := range lines {
		m, _ := record.ParseMeta([]byte(l))
		msg, _, _ := record.SplitSigned([]byte(l))
		s := string(msg)
		if i > 0 {
			s = strings.Replace(s, `,"prev":"`+m.Prev+`"`, `,"prev":"`+prev+`"`, 1)
		}
		mac := hmac.New(sha256.New, signer.Derive(key, m.Epoch))
		mac.Write([]byte(s))
		out[i] = s + record.SignatureSep + hex.EncodeToString(mac.Sum(nil)) + `"}`
		sum := sha256.Sum256([]byte(out[i]))
		prev = base64.StdEncoding.EncodeToString(sum[:])
	}
	return out
}

// A thief who takes the host at epoch 5 holds K(5) and can derive every
// later key, not an earlier one. Editing a record of an earlier epoch and
// re-signing and re-chaining everything after it is still reported, and only
// at the epochs before 5.
func TestStolenKeyCannotResignEarlierEpochs(t *testing.T) {
	t.Run("generated", func(t *testing.T) { stolenKeyCannotResign(t, makePristine(t)) })
	t.Run("sealed", func(t *testing.T) { stolenKeyCannotResign(t, makeSealedPristine(t)) })
}

func stolenKeyCannotResign(t *testing.T, p pristine) {
	d := filepath.Join(t.TempDir(), "data")
	copyDir(t, p.dataDir, d)
	k0, _ := hex.DecodeString(p.k0)
	k5 := signer.Derive(k0, 5)

	segs := segments(t, d)
	var prev string
	started := false
	firstEdited := uint64(0)
	for _, seg := range segs {
		lines := segLines(t, seg)
		for i, l := range lines {
			m, _ := record.ParseMeta([]byte(l))
			if !started && m.Epoch >= 1 && m.Epoch < 5 && m.EventType == "lead_ingested" {
				started, firstEdited = true, m.Seq
				l = strings.Replace(l, `"lead_ingested"`, `"lead_deleted!"`, 1)
			}
			if !started {
				sum := sha256.Sum256([]byte(l))
				prev = base64.StdEncoding.EncodeToString(sum[:])
				continue
			}
			msg, _, _ := record.SplitSigned([]byte(l))
			s := strings.Replace(string(msg), `,"prev":"`+m.Prev+`"`, `,"prev":"`+prev+`"`, 1)
			key := k5 // the best the thief has for epochs before 5
			if m.Epoch >= 5 {
				key = signer.Derive(k5, m.Epoch-5)
			}
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(s))
			lines[i] = s + record.SignatureSep + hex.EncodeToString(mac.Sum(nil)) + `"}`
			sum := sha256.Sum256([]byte(lines[i]))
			prev = base64.StdEncoding.EncodeToString(sum[:])
		}
		if started {
			rewriteSeg(t, seg, lines)
		}
	}
	if !started {
		t.Fatal("the store has no event in epochs 1 to 4")
	}
	// and compresses them as the agent does, so that the gzip members
	// are where the filter files say
	if err := store.CompressRotated(store.Options{Dir: filepath.Join(d, "store")}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(d, "checkpoints.jsonl")) // the thief drops the witnesses' evidence too
	code, fs, stderr := verifyStore(t, d, p.keyEnv)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, stderr)
	}
	first := fs[0]
	if first.Kind != "bad signature" || first.Seq != firstEdited {
		t.Errorf("first finding %+v, want bad signature at seq %d", first, firstEdited)
	}
	epochs := map[uint64]uint64{}
	for _, m := range readStore(t, d).meta {
		epochs[m.Seq] = m.Epoch
	}
	for _, f := range fs {
		if epochs[f.Seq] >= 5 {
			t.Errorf("finding at epoch %d (%+v): keys from epoch 5 on are the thief's to use", epochs[f.Seq], f)
		}
	}
}

func TestVerifyRejectsWrongKeys(t *testing.T) {
	p := makePristine(t)
	tests := []struct{ name, env, want string }{
		{"bad hex", "TAILSEAL_VERIFY_KEY=zz" + p.k0[2:], "not hex"},
		{"wrong length", "TAILSEAL_VERIFY_KEY=" + p.k0[:62], "want 32"},
		{"wrong key", "TAILSEAL_VERIFY_KEY=" + strings.Repeat("ab", 32), "does not match this store"},
		{"bad verifier", "TAILSEAL_VERIFIER=tailseal+1234+notbase64", "not a signed-note verifier key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, fs, stderr := verifyStore(t, p.dataDir, tt.env)
			if code != 2 || len(fs) != 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, %d findings, stderr %q; want exit 2, no findings, %q", code, len(fs), stderr, tt.want)
			}
		})
	}
	// Another store's checkpoint key: a clear error, not one finding per checkpoint.
	other := newEnv(t)
	other.start("keygen")
	waitFor(t, "keygen", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(other.dataDir, "keys", "checkpoint.pub"))
		return err == nil
	})
	vkey, _ := os.ReadFile(filepath.Join(other.dataDir, "keys", "checkpoint.pub"))
	code, _, stderr := verifyStore(t, p.dataDir, "TAILSEAL_VERIFIER="+strings.TrimSpace(string(vkey)))
	if code != 2 || !strings.Contains(stderr, "does not match any checkpoint") {
		t.Errorf("foreign verifier: exit %d stderr %q", code, stderr)
	}
}

// Ctrl-C while verifying a big store stops it within a second, with the
// context's error and no summary that could pass for "intact".
func TestVerifyStopsWhenCancelled(t *testing.T) {
	dir := bigStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelled time.Time
	src := newStoreSource(dir)
	src.progress = func(bytes int64) {
		if bytes > 0 && cancelled.IsZero() { // it is under way
			cancelled = time.Now()
			cancel()
		}
	}
	sum, err := verify.Run(ctx, verify.Options{Source: src, K0: cliHMACKey})
	if cancelled.IsZero() {
		t.Fatal("no progress was reported")
	}
	if took := time.Since(cancelled); took > time.Second {
		t.Errorf("verify went on for %v after the cancel", took)
	}
	if !errors.Is(err, context.Canceled) || sum != nil {
		t.Errorf("got %v and summary %+v; want context.Canceled and none", err, sum)
	}

	// The command says so and exits 130, printing no summary.
	t.Setenv("TAILSEAL_DATA_DIR", dir)
	t.Setenv("TAILSEAL_HMAC_KEY", hex.EncodeToString(cliHMACKey))
	if err := runVerify(ctx, nil); !errors.Is(err, context.Canceled) || exitCode(err) != 130 {
		t.Errorf("tailseal verify with a cancelled context: %v (exit %d)", err, exitCode(err))
	}
}

// A segment the running agent compresses between the listing and the read
// is read from its .gz, not reported as unreadable.
func TestVerifyReadsASegmentCompressedSinceTheListing(t *testing.T) {
	data, dir := handStore(t, "x") // rotated segments stay .jsonl
	src := newStoreSource(data)
	segs, err := src.Segments()
	if err != nil || len(segs) < 3 || src.segs[segs[len(segs)-2].Name].Compressed {
		t.Fatalf("want rotated segments not compressed yet: %+v (%v)", segs, err)
	}
	if err := store.CompressRotated(store.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, seg := range segs {
		if err := src.Lines(seg, func(int, []byte) error { n++; return nil }); err != nil {
			t.Fatalf("%s: %v", seg.Name, err)
		}
	}
	if n != 200 {
		t.Fatalf("%d lines read, want 200", n)
	}
}

// Retention leaves signed evidence: after it deletes old segments, verify
// still exits 0 on the honest store, and 1 when a segment vanishes
// without such a record.
func TestRetentionIsNotTampering(t *testing.T) {
	e := newEnv(t, "TAILSEAL_SEGMENT_MAX_MB=1", "TAILSEAL_RETENTION_DAYS=1")
	w := newWriter(t, e.source)
	p := e.start()
	w.write(12000) // about 4 MB: several rotated, compressed segments
	e.waitStored(12000)
	storeDir := filepath.Join(e.dataDir, "store")
	// Compression runs behind the rotations; on a loaded machine a stop
	// right away leaves the last ones for the next start.
	waitFor(t, "3 compressed segments", 20*time.Second, func() bool {
		gz, _ := filepath.Glob(filepath.Join(storeDir, "*.jsonl.gz"))
		return len(gz) >= 3
	})
	p.stop(t)
	gz, _ := filepath.Glob(filepath.Join(storeDir, "*.jsonl.gz"))
	if len(gz) < 3 {
		t.Fatalf("%d compressed segments, want 3 or more", len(gz))
	}
	old := time.Now().Add(-72 * time.Hour)
	for _, g := range gz[:2] {
		os.Chtimes(g, old, old)
	}
	p = e.start()
	waitFor(t, "retention to delete the two old segments", 20*time.Second, func() bool {
		_, err1 := os.Stat(gz[0])
		_, err2 := os.Stat(gz[1])
		return os.IsNotExist(err1) && os.IsNotExist(err2)
	})
	p.stop(t)
	code, fs, stderr := verifyStore(t, e.dataDir)
	if code != 0 {
		t.Fatalf("verify after honest retention: exit %d, %v, %s", code, fs, stderr)
	}
	// The same store with one more segment gone, by hand.
	d := filepath.Join(t.TempDir(), "data")
	copyDir(t, e.dataDir, d)
	left, _ := filepath.Glob(filepath.Join(d, "store", "*.jsonl.gz"))
	os.Remove(left[0])
	if code, fs, _ := verifyStore(t, d); code != 1 || len(fs) == 0 || fs[0].Kind != "deleted" {
		t.Errorf("a segment deleted by hand after retention: exit %d, %v", code, fs)
	}
}

// An edited store/index: verify holds every entry to its segment and
// exits 1; a query does not trust an entry that contradicts its segment,
// reads the segment and says so.
func TestEditedIndex(t *testing.T) {
	src := cliStore(t)
	edit := func(t *testing.T, change func(e map[string]any)) string {
		d := filepath.Join(t.TempDir(), "data")
		copyDir(t, src, d)
		path := filepath.Join(d, "store", "index")
		data, _ := os.ReadFile(path)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		var e map[string]any
		json.Unmarshal([]byte(lines[2]), &e)
		change(e)
		b, _ := json.Marshal(e)
		lines[2] = string(b)
		os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
		return d
	}
	errorsIn := func(d string) (int, int, string) {
		out, errOut, code := cli(t, d, "query", "--type", "error", "--limit", "100000", "--json")
		return strings.Count(out, "\n"), code, errOut
	}
	want, _, _ := errorsIn(src)

	// Consistent seqs, but the error type is gone from one entry: queries
	// cannot tell, verify can.
	d := edit(t, func(e map[string]any) { delete(e["types"].(map[string]any), "error") })
	if code, fs, stderr := verifyStore(t, d); code != 1 || len(fs) != 1 || fs[0].Kind != "index mismatch" {
		t.Errorf("verify with an edited index: exit %d, %v, %s", code, fs, stderr)
	}

	// A count that contradicts the segment: the entry is not used.
	d = edit(t, func(e map[string]any) { e["count"] = e["count"].(float64) - 5 })
	got, code, errOut := errorsIn(d)
	if got != want || code != 1 || !strings.Contains(errOut, "contradicts the segment") {
		t.Errorf("query with a contradicting entry: %d of %d errors, exit %d, %s", got, want, code, errOut)
	}
	if code, fs, _ := verifyStore(t, d); code != 1 || len(fs) != 1 || fs[0].Kind != "index mismatch" {
		t.Errorf("verify with a wrong count: exit %d, %v", code, fs)
	}
}

// In a store the agent wrote, every index line is attested by a signed
// index record: verify finds an edited line without reading the segment
// again.
func TestEditedIndexAttested(t *testing.T) {
	p := makePristine(t)
	d := filepath.Join(t.TempDir(), "data")
	copyDir(t, p.dataDir, d)
	path := filepath.Join(d, "store", "index")
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if n := countType(t, d, "index"); n < len(lines) {
		t.Fatalf("%d index records for %d index lines", n, len(lines))
	}
	if code, fs, stderr := verifyStore(t, d, "TAILSEAL_VERIFY_KEY="+p.k0); code != 0 {
		t.Fatalf("untouched: exit %d %v %s", code, fs, stderr)
	}
	// An attested line deleted: queries read the segment whole, and
	// verify says so (a note, not a finding: a collector leaves out the
	// lines it would write otherwise than its agent).
	os.WriteFile(path, []byte(strings.Join(lines[1:], "\n")+"\n"), 0o600)
	code, sum, _ := verifySummary(t, d, "TAILSEAL_VERIFY_KEY="+p.k0)
	var first struct {
		Segment string `json:"segment"`
	}
	json.Unmarshal([]byte(lines[0]), &first)
	if code != 0 || len(sum.Unindexed) != 1 || sum.Unindexed[0] != first.Segment {
		t.Errorf("attested index line deleted: exit %d, unindexed %v, want [%s]", code, sum.Unindexed, first.Segment)
	}
	cmd := exec.Command(binPath, "verify")
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+d, "TAILSEAL_VERIFY_KEY="+p.k0)
	if out, _, _ := runOutputs(t, cmd); !strings.Contains(out, "note: store/index has no entry for 1 segment(s) the agent indexed and attested ("+first.Segment+")") {
		t.Errorf("verify's summary does not name the segment without an entry:\n%s", out)
	}

	lines[0] = strings.Replace(lines[0], `"types":{`, `"types":{"forged":1,`, 1)
	os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	code, fs, _ := verifyStore(t, d, "TAILSEAL_VERIFY_KEY="+p.k0)
	if code != 1 || len(fs) != 1 || fs[0].Kind != "index mismatch" {
		t.Errorf("edited attested index line: exit %d, %v", code, fs)
	}
}

// A store indexed before the agent attested its index lines: verify holds
// each unattested line to its segment, read again.
func TestEditedIndexUnattested(t *testing.T) {
	data, dir := handStore(t, "stop")
	if err := store.CompressRotated(store.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	key := "TAILSEAL_HMAC_KEY=" + hex.EncodeToString(cliHMACKey)
	if code, fs, stderr := verifyStore(t, data, key); code != 0 {
		t.Fatalf("untouched: exit %d %v %s", code, fs, stderr)
	}
	path := filepath.Join(dir, "index")
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), `"types":{"x":`, `"types":{"y":`, 1)), 0o600)
	if code, fs, _ := verifyStore(t, data, key); code != 1 || len(fs) != 1 || fs[0].Kind != "index mismatch" {
		t.Errorf("edited unattested index line: exit %d, %v", code, fs)
	}
}

// handStore writes 200 signed records in 8 KiB segments by hand, not
// compressed, the last of type lastType, and returns the data dir and its
// store dir.
func handStore(t *testing.T, lastType string) (data, dir string) {
	data = filepath.Join(t.TempDir(), "data")
	dir = filepath.Join(data, "store")
	os.MkdirAll(dir, 0o700)
	st, _, err := store.Open(store.Options{Dir: dir, SegmentMax: 8 << 10, SegmentMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var raw []string
	for i := 1; i <= 200; i++ {
		typ := "x"
		if i == 200 {
			typ = lastType
		}
		raw = append(raw, fmt.Sprintf(`{"seq":%d,"timestamp":"2026-02-01T00:00:00Z","event_type":"%s","actor":"","lead_id":"","workflow":"","details":{"pad":%q},"epoch":0,"prev":"","signature":"00"}`,
			i, typ, strings.Repeat("p", 150)))
	}
	for i, l := range resign(t, raw, cliHMACKey) {
		if err := st.Append([]byte(l+"\n"), uint64(i+1), uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close() // before any compression
	return data, dir
}

// entryHolding is the index entry of the segment of the store in dir
// that holds seq (a zero entry when there is none).
func entryHolding(dir string, seq uint64) store.IndexEntry {
	segs, _ := store.List(dir)
	index, _ := store.ReadIndex(dir)
	var e store.IndexEntry
	for _, seg := range segs {
		if seg.First <= seq {
			e = index[seg.Name]
		}
	}
	return e
}

// A Bloom filter file changed by hand: verify says so; a lead lookup does
// not trust it, reads the segment, finds every record and says why.
func TestChangedFilterFile(t *testing.T) {
	src := cliStore(t)
	const lead = "LEAD-0000600" // events 3000 to 3004
	want, _, _ := cli(t, src, "query", "--lead", lead, "--json")
	d := filepath.Join(t.TempDir(), "data")
	copyDir(t, src, d)
	dir := filepath.Join(d, "store")
	e := entryHolding(dir, 3002)
	if e.Filters == nil || strings.Count(want, "\n") != 5 {
		t.Fatalf("entry %+v, %q", e, want)
	}
	path := filepath.Join(dir, store.FilterPath(e.Segment))
	b, _ := os.ReadFile(path)
	clear(b[:8*e.Filters.Leads.Words]) // rules every lead out
	os.WriteFile(path, b, 0o600)

	got, errOut, code := cli(t, d, "query", "--lead", lead, "--json")
	if got != want || code != 1 || !strings.Contains(errOut, "cannot be used") {
		t.Errorf("query with a changed filter: exit %d, %d records, %s", code, strings.Count(got, "\n"), errOut)
	}
	if code, fs, stderr := verifyStore(t, d); code != 1 || len(fs) != 1 || fs[0].Kind != "index mismatch" || fs[0].Seq != e.FirstSeq {
		t.Errorf("verify with a changed filter: exit %d, %v, %s", code, fs, stderr)
	}
}

// memberStore builds the cli store's events with compression cutting
// members at memberBytes (negative: one member, an index v3 store).
func memberStore(t *testing.T, memberBytes int) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "data")
	err := benchdata.BuildStore(benchdata.StoreOptions{DataDir: d, Events: 6000,
		Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Step: time.Minute,
		SegmentMax: 64 << 10, HMACKey: cliHMACKey, PIIKey: cliPIIKey, MemberBytes: memberBytes})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Segments in gzip members answer lead and subject queries as a store of
// one-member segments (index v3) does. A member table or member filter
// changed by hand, or offsets that point elsewhere: the query reads the
// segment, finds every record and says why; verify reports it.
func TestChangedMemberTable(t *testing.T) {
	v3, members := memberStore(t, -1), memberStore(t, 2<<10)
	queries := [][]string{
		{"query", "--lead", "LEAD-0000600", "--json"},
		{"query", "--subject", "Lead7@Example.com", "--json"},
		{"query", "--subject", "nobody@example.com", "--json"},
		{"query", "--lead", "LEAD-0000600", "--subject", "lead3000@example.com", "--json"},
	}
	for _, q := range queries {
		want, wantErr, wantCode := cli(t, v3, q...)
		got, errOut, code := cli(t, members, q...)
		if got != want || code != wantCode || errOut != wantErr {
			t.Errorf("%v: exit %d, %d lines (%s); the v3 store: exit %d, %d lines", q, code, strings.Count(got, "\n"), errOut, wantCode, strings.Count(want, "\n"))
		}
	}
	if code, fs, stderr := verifyStore(t, members); code != 0 {
		t.Fatalf("untouched: exit %d %v %s", code, fs, stderr)
	}
	const lead = "LEAD-0000600" // events 3000 to 3004
	want, _, _ := cli(t, v3, "query", "--lead", lead, "--json")
	for _, c := range []struct {
		name, problem string
		edit          func(b []byte, f *store.Filters)
	}{
		{"member filters cleared", "cannot be used", func(b []byte, f *store.Filters) {
			rows := 8*(f.Leads.Words+f.Pseudonyms.Words) + 32*f.Members.Count
			clear(b[rows : rows+f.Members.Bytes-32*f.Members.Count])
		}},
		{"compressed offsets shifted", "member", func(b []byte, f *store.Filters) {
			off := b[8*(f.Leads.Words+f.Pseudonyms.Words)+f.Members.Bytes:]
			for i := 8; i < 8*f.Members.Count; i++ {
				off[i]++
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "data")
			copyDir(t, members, d)
			dir := filepath.Join(d, "store")
			e := entryHolding(dir, 3002)
			if e.Filters == nil || e.Filters.Members == nil || e.Filters.Members.Count < 10 || strings.Count(want, "\n") != 5 {
				t.Fatalf("entry %+v, %q", e, want)
			}
			path := filepath.Join(dir, store.FilterPath(e.Segment))
			b, _ := os.ReadFile(path)
			c.edit(b, e.Filters)
			os.WriteFile(path, b, 0o600)
			got, errOut, code := cli(t, d, "query", "--lead", lead, "--json")
			if got != want || code != 1 || !strings.Contains(errOut, c.problem) {
				t.Errorf("query: exit %d, %d records, %s", code, strings.Count(got, "\n"), errOut)
			}
			if code, fs, stderr := verifyStore(t, d); code != 1 || len(fs) != 1 || fs[0].Kind != "index mismatch" || fs[0].Seq != e.FirstSeq {
				t.Errorf("verify: exit %d, %v, %s", code, fs, stderr)
			}
		})
	}
}

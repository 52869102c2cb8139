package verify

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
)

var k0 = bytes.Repeat([]byte{1}, 32)

// chain builds n signed lines with the real chain code.
func chain(n int) []byte {
	c := signer.NewChain(signer.NewStaticKey(k0), 0, [sha256.Size]byte{})
	var buf []byte
	for i := 0; i < n; i++ {
		buf = c.Begin(buf)
		buf = append(buf, `"timestamp":"2026-01-01T00:00:00Z","event_type":"e","actor":"","lead_id":"","workflow":"","details":{"i":1}`...)
		buf = c.Finish(buf)
	}
	return buf
}

func writeStore(t testing.TB, data []byte) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, store.SegmentName(1, store.ActiveExt)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestIntactChain(t *testing.T) {
	sum, err := Run(Options{StoreDir: writeStore(t, chain(50)), K0: k0})
	if err != nil || len(sum.Findings) != 0 || sum.Records != 50 {
		t.Fatalf("err %v, summary %+v", err, sum)
	}
}

// FuzzVerify feeds arbitrary segment contents to the verifier: it must
// report, never panic or fail.
func FuzzVerify(f *testing.F) {
	good := chain(5)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(append([]byte{}, good...), good[:40]...))
	f.Add([]byte("{\"seq\":1,\"epoch\":9,\"prev\":\"\",\"signature\":\"zz\"}\n\x00\xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, store.SegmentName(1, store.ActiveExt)), data, 0o600)
		if _, err := Run(Options{StoreDir: dir}); err != nil {
			t.Fatalf("error without keys: %v", err)
		}
		Run(Options{StoreDir: dir, K0: k0}) // may say the key is wrong; must not panic
	})
}

// A record that claims an absurd epoch is reported at once, not derived to.
func TestHugeEpochIsBoundedWork(t *testing.T) {
	data := chain(3)
	line := []byte(`{"seq":4,"timestamp":"t","event_type":"e","actor":"","lead_id":"","workflow":"","details":{},"epoch":999999999999,"prev":"","signature":"` + strings.Repeat("0", 64) + `"}` + "\n")
	done := make(chan *Summary, 1)
	go func() {
		sum, _ := Run(Options{StoreDir: writeStore(t, append(data, line...)), K0: k0})
		done <- sum
	}()
	select {
	case sum := <-done:
		if len(sum.Findings) == 0 {
			t.Error("a forged epoch went unreported")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("verification of one record with a huge epoch did not finish in 10s")
	}
}

func TestEpochKeyEvolves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.json")
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := signer.WriteSealState(path, signer.NewSealState(k0, start, time.Minute)); err != nil {
		t.Fatal(err)
	}
	k, err := signer.LoadEpochKey(path, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n := k.Due(start.Add(30 * time.Second)); n != 0 {
		t.Errorf("due %d in the middle of epoch 0", n)
	}
	if n := k.Due(start.Add(3*time.Minute + time.Second)); n != 3 {
		t.Errorf("due %d after three epoch ends, want 3", n)
	}
	if err := k.Advance(3); err != nil {
		t.Fatal(err)
	}
	reloaded, err := signer.LoadEpochKey(path, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := signer.NewStaticKey(signer.Derive(k0, 3)).MAC(nil, []byte("m"))
	if reloaded.Epoch() != 3 || !bytes.Equal(reloaded.MAC(nil, []byte("m")), want) {
		t.Errorf("after Advance(3): epoch %d, MAC differs from K(3)", reloaded.Epoch())
	}
	state, _ := os.ReadFile(path)
	if bytes.Contains(state, []byte("0101010101")) {
		t.Error("K0 is still in the state file")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v", fi.Mode().Perm())
	}
}

func BenchmarkVerify(b *testing.B) {
	data := chain(100000)
	dir := writeStore(b, data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if sum, err := Run(Options{StoreDir: dir, K0: k0}); err != nil || len(sum.Findings) > 0 {
			b.Fatal(err, sum.Findings)
		}
	}
}

// A segment the running agent compresses between the listing and the read
// is read from its .gz, not reported as unreadable.
func TestSegmentCompressedWhileVerifying(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	os.MkdirAll(dir, 0o700)
	st, _, err := store.Open(store.Options{Dir: dir, SegmentMax: 8 << 10, SegmentMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 200; i++ {
		line := fmt.Sprintf(`{"seq":%d,"event_type":"x","pad":%q}`+"\n", i, strings.Repeat("p", 150))
		if err := st.Append([]byte(line), uint64(i), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	segs, _ := store.List(dir)
	if len(segs) < 3 || segs[len(segs)-2].Compressed {
		t.Fatalf("want rotated segments not compressed yet: %+v", segs)
	}
	l := &lines{dir: dir, segs: segs}
	if err := store.CompressRotated(dir); err != nil {
		t.Fatal(err)
	}
	n := 0
	var buf []byte
	for {
		it, ok := l.next(buf)
		if !ok {
			break
		}
		buf = it.data[:0]
		n++
	}
	if n != 200 || l.broken != nil {
		t.Fatalf("%d lines read, broken %v (%v)", n, l.broken, l.brokenErr)
	}
}

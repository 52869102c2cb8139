package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// memStore is a Source over segments held in memory: the verifier needs
// no files.
type memStore struct {
	segs        []Segment
	data        map[string][]byte
	broken      map[string]error // segments that fail after their lines
	checkpoints []byte
}

// oneSegment is a store of one segment holding data.
func oneSegment(data []byte) *memStore {
	m := &memStore{data: map[string][]byte{}}
	m.add(1, data)
	return m
}

func (m *memStore) add(first uint64, data []byte) {
	name := fmt.Sprintf("%016d.jsonl", first)
	m.segs = append(m.segs, Segment{Name: name, First: first})
	m.data[name] = data
}

func (m *memStore) Segments() ([]Segment, error) { return m.segs, nil }

func (m *memStore) Lines(seg Segment, fn func(int, []byte) error) error {
	data := m.data[seg.Name]
	for n := 1; len(data) > 0; n++ {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		if err := fn(n, line); err != nil {
			return err
		}
		data = rest
	}
	return m.broken[seg.Name]
}

func (m *memStore) Checkpoints() (io.ReadCloser, error) {
	if m.checkpoints == nil {
		return nil, nil
	}
	return io.NopCloser(bytes.NewReader(m.checkpoints)), nil
}

func TestIntactChain(t *testing.T) {
	sum, err := Run(context.Background(), Options{Source: oneSegment(chain(50)), K0: k0})
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
		src := oneSegment(data)
		if _, err := Run(context.Background(), Options{Source: src}); err != nil {
			t.Fatalf("error without keys: %v", err)
		}
		Run(context.Background(), Options{Source: src, K0: k0}) // may say the key is wrong; must not panic
	})
}

// A record that claims an absurd epoch is reported at once, not derived to.
func TestHugeEpochIsBoundedWork(t *testing.T) {
	data := chain(3)
	line := []byte(`{"seq":4,"timestamp":"t","event_type":"e","actor":"","lead_id":"","workflow":"","details":{},"epoch":999999999999,"prev":"","signature":"` + strings.Repeat("0", 64) + `"}` + "\n")
	done := make(chan *Summary, 1)
	go func() {
		sum, _ := Run(context.Background(), Options{Source: oneSegment(append(data, line...)), K0: k0})
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
	src := oneSegment(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if sum, err := Run(context.Background(), Options{Source: src, K0: k0}); err != nil || len(sum.Findings) > 0 {
			b.Fatal(err, sum.Findings)
		}
	}
}

// A segment that cannot be read to its end is reported where it breaks,
// and the check goes on with the next segment.
func TestUnreadableSegment(t *testing.T) {
	data := chain(30)
	lines := bytes.SplitAfter(data, []byte("\n"))
	src := &memStore{data: map[string][]byte{}, broken: map[string]error{}}
	src.add(1, bytes.Join(lines[:10], nil))
	src.add(11, bytes.Join(lines[10:15], nil)) // lines 16 to 20 cannot be read
	src.broken[src.segs[1].Name] = errors.New("unexpected EOF")
	src.add(21, bytes.Join(lines[20:], nil))
	sum, err := Run(context.Background(), Options{Source: src, K0: k0})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"0000000000000011.jsonl:0 seq 11: segment unreadable: unexpected EOF",
		"0000000000000021.jsonl:1 seq 21: segment missing: a segment before this one is gone: records 16..20 are missing",
	}
	if got := fmt.Sprint(sum.Findings); got != fmt.Sprint(want) {
		t.Errorf("findings\n%s\nwant\n%s", got, want)
	}
	if sum.Segments != 3 || sum.Records != 25 {
		t.Errorf("summary %+v", sum)
	}
}

// A wrong key is told from edited records by the first few records: a
// clear error, whether the store has more records than the probe or fewer.
func TestWrongKey(t *testing.T) {
	other := bytes.Repeat([]byte{2}, 32)
	for _, n := range []int{3, keyProbe, 100} {
		_, err := Run(context.Background(), Options{Source: oneSegment(chain(n)), K0: other})
		if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), fmt.Sprintf("first %d records", min(n, keyProbe))) {
			t.Errorf("%d records: %v", n, err)
		}
	}
	// The right key with the first records edited is findings, not an error.
	data := chain(20)
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i := range 15 {
		lines[i] = bytes.Replace(lines[i], []byte(`{"i":1}`), []byte(`{"i":2}`), 1)
	}
	sum, err := Run(context.Background(), Options{Source: oneSegment(bytes.Join(lines, nil)), K0: k0})
	if err != nil || len(sum.Findings) != 15 {
		t.Errorf("%v, %d findings", err, len(sum.Findings))
	}
}

// A cancelled check stops at the next look at the context and says so,
// without a summary.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sum, err := Run(ctx, Options{Source: oneSegment(chain(2 * checkEvery)), K0: k0})
	if !errors.Is(err, context.Canceled) || sum != nil {
		t.Errorf("got %+v, %v", sum, err)
	}
}

// orderStore records the order of its calls.
type orderStore struct {
	*memStore
	calls []string
}

func (s *orderStore) Segments() ([]Segment, error) {
	s.calls = append(s.calls, "segments")
	return s.memStore.Segments()
}

func (s *orderStore) Checkpoints() (io.ReadCloser, error) {
	s.calls = append(s.calls, "checkpoints")
	return s.memStore.Checkpoints()
}

// On a live store the checkpoints are read before the segments are
// listed: a checkpoint read after the listing may cover records the agent
// wrote into a segment rotated in since, and the store would look cut
// short before it.
func TestCheckpointsReadBeforeSegments(t *testing.T) {
	src := &orderStore{memStore: oneSegment(chain(5))}
	if _, err := Run(context.Background(), Options{Source: src, K0: k0}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(src.calls, ","); got != "checkpoints,segments" {
		t.Errorf("calls %s, want checkpoints,segments", got)
	}
}

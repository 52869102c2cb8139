package agent

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
)

// sealedRig is a rig whose agent seals K0 to a new age identity.
func sealedRig(t *testing.T) (*rig, *age.X25519Identity) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, "")
	r.cfg.VerifyRecipient = id.Recipient().String()
	return r, id
}

// checkSealed opens the genesis's K0 and checks the store against it: the
// genesis at epoch 0 under K0, every later record under the key of its
// epoch, the key state past epoch 0, and K0 in no file of the data dir.
func checkSealed(t *testing.T, r *rig, id age.Identity) []byte {
	t.Helper()
	recs := r.all()
	if len(recs) == 0 || recs[0].EventType != record.TypeGenesis || recs[0].Epoch != 0 {
		t.Fatalf("the store does not start with a genesis at epoch 0: %v", types(recs))
	}
	g, err := record.ParseGenesis(recs[0].Line)
	if err != nil || g.Origin != "test" || g.NextEpoch != 1 || g.SealedTo != r.cfg.VerifyRecipient || g.CheckpointVerifier == "" {
		t.Fatalf("genesis %+v, %v", g, err)
	}
	k0, err := signer.OpenK0(g.SealedK0, []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range recs {
		msg, sig, _ := record.SplitSigned(m.Line)
		mac := hmac.New(sha256.New, signer.Derive(k0, m.Epoch))
		mac.Write(msg)
		if hex.EncodeToString(mac.Sum(nil)) != string(sig) {
			t.Errorf("seq %d (%s, epoch %d) does not verify under K(%d) from the sealed K0", m.Seq, m.EventType, m.Epoch, m.Epoch)
		}
		if m.Seq > 1 && m.Epoch == 0 {
			t.Errorf("seq %d is signed with K0", m.Seq)
		}
	}
	st, err := signer.ReadSealState(filepath.Join(r.cfg.DataDir, StateDir, SealStateFile))
	if err != nil || st.Epoch == 0 {
		t.Errorf("key state %+v, %v: want an epoch past 0", st, err)
	}
	hexK0 := []byte(hex.EncodeToString(k0))
	filepath.WalkDir(r.cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); bytes.Contains(b, k0) || bytes.Contains(b, hexK0) {
				t.Errorf("K0 is in %s", path)
			}
		}
		return nil
	})
	copyLine, err := os.ReadFile(filepath.Join(r.cfg.DataDir, GenesisFile))
	if err != nil || !bytes.Equal(bytes.TrimSuffix(copyLine, []byte("\n")), recs[0].Line) {
		t.Errorf("%s is not the genesis record: %v", GenesisFile, err)
	}
	return k0
}

func TestSealedGenesis(t *testing.T) {
	r, id := sealedRig(t)
	r.start()
	r.write(5, 100)
	r.allDurable()
	r.stop()
	checkSealed(t, r, id)
	r.start() // a restart goes on with K1's state
	r.write(5, 100)
	r.allDurable()
	r.stop()
	checkSealed(t, r, id)
}

// A first start killed after K1's state was written and before the
// genesis was stored leaves an empty store and a key no record uses: the
// next start draws a new K0 rather than sign with a key sealed nowhere.
func TestSealedGenesisAfterCutShortStart(t *testing.T) {
	r, id := sealedRig(t)
	orphan, _ := signer.NewRandomKey()
	os.MkdirAll(filepath.Join(r.cfg.DataDir, StateDir), 0o700)
	if err := signer.WriteSealState(filepath.Join(r.cfg.DataDir, StateDir, SealStateFile),
		signer.SealState{Epoch: 1, Key: hex.EncodeToString(orphan), EndsAt: t0.Add(epochLength)}); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.write(3, 100)
	r.allDurable()
	r.stop()
	k0 := checkSealed(t, r, id)
	if bytes.Equal(signer.Evolve(k0), orphan) {
		t.Error("the orphaned key state was used")
	}
}

// Keys made by keygen before the first start: its K0 is the one sealed.
func TestSealedGenesisOfKeygenKeys(t *testing.T) {
	r, id := sealedRig(t)
	k0Hex, _, err := Keygen(r.cfg.DataDir, r.cfg.Epoch, t0)
	if err != nil {
		t.Fatal(err)
	}
	r.start()
	r.write(3, 100)
	r.allDurable()
	r.stop()
	if k0 := checkSealed(t, r, id); hex.EncodeToString(k0) != k0Hex {
		t.Error("the sealed K0 is not keygen's")
	}
}

// A store with records whose key state is gone does not start with a new
// K0 (exit 2 in cmd), whatever the key mode: keys/verify.key is never
// overwritten; TAILSEAL_NEW_STORE moves the store aside, genesis copy too.
func TestKeyStateLost(t *testing.T) {
	t.Run("generated", func(t *testing.T) {
		r := newRig(t, "")
		r.start()
		r.write(3, 100)
		r.allDurable()
		r.stop()
		vpath := filepath.Join(r.cfg.DataDir, KeysDir, VerifyKeyFile)
		before, _ := os.ReadFile(vpath)
		os.Remove(filepath.Join(r.cfg.DataDir, StateDir, SealStateFile))
		if _, err := New(r.cfg, r.log(), WithClock(r.clk)); !errors.Is(err, ErrKeysLost) {
			t.Fatalf("New: %v, want ErrKeysLost", err)
		}
		if after, _ := os.ReadFile(vpath); !bytes.Equal(before, after) {
			t.Error("keys/verify.key was rewritten")
		}
	})
	t.Run("static key dropped", func(t *testing.T) {
		r := newRig(t, "")
		r.cfg.HMACKey = hex.EncodeToString(bytes.Repeat([]byte{5}, 32))
		r.start()
		r.write(3, 100)
		r.allDurable()
		r.stop()
		r.cfg.HMACKey = ""
		if _, err := New(r.cfg, r.log(), WithClock(r.clk)); !errors.Is(err, ErrKeysLost) {
			t.Fatalf("New: %v, want ErrKeysLost", err)
		}
	})
	r, _ := sealedRig(t)
	r.start()
	r.write(3, 100)
	r.allDurable()
	r.stop()
	os.Remove(filepath.Join(r.cfg.DataDir, StateDir, SealStateFile))
	if _, err := New(r.cfg, r.log(), WithClock(r.clk)); !errors.Is(err, ErrKeysLost) {
		t.Fatalf("New: %v, want ErrKeysLost", err)
	}
	r.cfg.NewStore = true
	r.start()
	r.stop()
	if recs := r.all(); len(recs) == 0 || recs[0].EventType != record.TypeGenesis {
		t.Errorf("the new store: %v", types(recs))
	}
	if lost, _ := filepath.Glob(filepath.Join(r.cfg.DataDir, GenesisFile+".lost-*")); len(lost) != 1 {
		t.Errorf("the old genesis copy was not moved aside: %v", lost)
	}
}

// The origin is the store's: another TAILSEAL_ORIGIN is refused, none
// keeps the store's, and genesis.json comes back when it is lost.
func TestOriginOfAStore(t *testing.T) {
	r := newRig(t, "")
	r.start()
	r.write(2, 100)
	r.allDurable()
	r.stop()
	r.cfg.Origin = "other"
	if _, err := New(r.cfg, r.log(), WithClock(r.clk)); !errors.Is(err, ErrOriginChanged) {
		t.Fatalf("New with another origin: %v", err)
	}
	r.cfg.Origin = ""
	os.Remove(filepath.Join(r.cfg.DataDir, GenesisFile))
	r.start()
	if r.a.Origin() != "test" {
		t.Errorf("origin %q, want the store's", r.a.Origin())
	}
	r.stop()
	if g, err := ReadGenesis(r.cfg.DataDir); err != nil || g.Details.Origin != "test" {
		t.Errorf("genesis %+v, %v", g, err)
	}
	if _, err := os.Stat(filepath.Join(r.cfg.DataDir, GenesisFile)); err != nil {
		t.Errorf("%s not written again: %v", GenesisFile, err)
	}
}

// A first segment that cannot be read leaves the genesis to its copy, so
// that verify reports the segment instead of failing to start; without a
// copy the segment's error is returned.
func TestGenesisOfAnUnreadableFirstSegment(t *testing.T) {
	r := newRig(t, "")
	r.start()
	r.write(2, 100)
	r.allDurable()
	r.stop()
	segs, err := store.List(filepath.Join(r.cfg.DataDir, StoreDir))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	first := filepath.Join(r.cfg.DataDir, StoreDir, segs[0].Name)
	if err := os.Remove(first); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(first, 0o700); err != nil {
		t.Fatal(err)
	}
	g, err := ReadGenesis(r.cfg.DataDir)
	if err != nil || g.InStore || g.FirstUnreadable == nil || g.Details.Origin != "test" {
		t.Fatalf("genesis %+v, %v: want the copy's, and why seq 1 was not read", g, err)
	}
	r.cfg.Origin = "other"
	if _, err := New(r.cfg, r.log(), WithClock(r.clk)); !errors.Is(err, ErrOriginChanged) {
		t.Fatalf("New with another origin: %v", err)
	}
	os.Remove(filepath.Join(r.cfg.DataDir, GenesisFile))
	var se *store.SegmentError
	if g, err := ReadGenesis(r.cfg.DataDir); !errors.As(err, &se) {
		t.Fatalf("without a copy: %+v, %v; want the segment's error", g, err)
	}
}

// A sealed first start cut short, then started without the recipient: the
// leftover state's K0 exists nowhere, so a new K0 is made and kept.
func TestCutShortSealedStartWithoutRecipient(t *testing.T) {
	r := newRig(t, "")
	orphan, _ := signer.NewRandomKey()
	os.MkdirAll(filepath.Join(r.cfg.DataDir, StateDir), 0o700)
	if err := signer.WriteSealState(filepath.Join(r.cfg.DataDir, StateDir, SealStateFile),
		signer.SealState{Epoch: 1, Key: hex.EncodeToString(orphan), EndsAt: t0.Add(epochLength), Sealed: true}); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.write(2, 100)
	r.allDurable()
	r.stop()
	k0, err := readHexKeyFile(filepath.Join(r.cfg.DataDir, KeysDir, VerifyKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range r.all() {
		msg, sig, _ := record.SplitSigned(m.Line)
		mac := hmac.New(sha256.New, signer.Derive(k0, m.Epoch))
		mac.Write(msg)
		if m.Epoch != 0 || hex.EncodeToString(mac.Sum(nil)) != string(sig) {
			t.Errorf("seq %d at epoch %d does not verify under keys/verify.key", m.Seq, m.Epoch)
		}
	}
}

// A genesis copy from another store, read once retention deleted seq 1,
// does not rename this one.
func TestForeignGenesisCopy(t *testing.T) {
	r := newRig(t, "")
	r.start()
	r.write(2, 100)
	r.allDurable()
	r.stop()
	other := newRig(t, "")
	other.cfg.Origin = "other"
	other.start()
	other.stop()
	foreign, _ := os.ReadFile(filepath.Join(other.cfg.DataDir, GenesisFile))
	os.WriteFile(filepath.Join(r.cfg.DataDir, GenesisFile), foreign, 0o644)
	// As retention leaves it: the first segment gone.
	segs, _ := filepath.Glob(filepath.Join(r.cfg.DataDir, StoreDir, "0000000000000001.jsonl*"))
	for _, s := range segs {
		os.Rename(s, filepath.Join(r.cfg.DataDir, "moved-"+filepath.Base(s)))
	}
	os.WriteFile(filepath.Join(r.cfg.DataDir, StoreDir, "0000000000000009.jsonl"), nil, 0o644)
	if _, err := New(r.cfg, r.log(), WithClock(r.clk)); !errors.Is(err, ErrOriginChanged) {
		t.Fatalf("New with another store's genesis copy: %v", err)
	}
}

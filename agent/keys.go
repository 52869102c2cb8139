package agent

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/lock"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
	"golang.org/x/mod/sumdb/note"
)

// Layout of the data directory (DESIGN.md).
const (
	StoreDir        = "store"
	KeysDir         = "keys"
	StateDir        = "state"
	CheckpointsFile = "checkpoints.jsonl"
	SealStateFile   = "seal.json"      // in state/: current epoch and key
	VerifyKeyFile   = "verify.key"     // in keys/: K0, only when generated on first start
	NoteKeyFile     = "checkpoint.key" // in keys/: Ed25519 signer key
	NotePubFile     = "checkpoint.pub" // in keys/: verifier key, one line
	PIIKeyFile      = "pii.key"        // in keys/: pseudonymization key, when not configured
	noteKeyName     = "tailseal"       // name in the signed-note key
)

// keys are the agent's signing keys.
type keys struct {
	sign     signer.Key       // nil until sealFresh with a recipient and no state
	epoch    *signer.EpochKey // nil with a static key
	note     note.Signer
	verifier string // the checkpoint verifier key, for the genesis record
	sealed   string // K0 sealed to the recipient, until the genesis is written
}

// ErrNotNew reports that keygen was asked for keys of a data dir that is
// in use or holds something already: it never overwrites keys.
var ErrNotNew = errors.New("the data dir is not new")

// Keygen creates K0, the sealing state and the checkpoint key pair in
// dataDir and returns K0 (hex) and the checkpoint verifier key, which the
// operator keeps off the host. K0 itself is not stored.
func Keygen(dataDir string, epoch time.Duration, now time.Time) (k0Hex, vkey string, err error) {
	if lock.Held(dataDir) {
		return "", "", fmt.Errorf("%w: an agent is running on %s (pid %d); keys are made before the first start", ErrNotNew, dataDir, lock.Holder(dataDir))
	}
	if ok, holds := newDataDir(dataDir); !ok {
		return "", "", fmt.Errorf("%w: %s holds %s already; keygen makes the keys of a new data dir before its first start (use an empty or new TAILSEAL_DATA_DIR)", ErrNotNew, dataDir, holds)
	}
	sealPath := filepath.Join(dataDir, StateDir, SealStateFile)
	k0, err := signer.NewRandomKey()
	if err != nil {
		return "", "", err
	}
	if err := signer.WriteSealState(sealPath, signer.NewSealState(k0, now, epoch)); err != nil {
		return "", "", err
	}
	vkey, err = writeNoteKeys(dataDir)
	if err != nil {
		return "", "", err
	}
	return hex.EncodeToString(k0), vkey, nil
}

// newDataDir reports whether dataDir is new: missing, empty, or holding
// nothing but a lock file, which is what a first start that failed leaves
// (see undoFirstStart). Else holds names an entry it holds.
func newDataDir(dataDir string) (ok bool, holds string) {
	entries, _ := os.ReadDir(dataDir)
	for _, e := range entries {
		if e.Name() != lock.File {
			return false, e.Name()
		}
	}
	return true, ""
}

// undoFirstStart removes what a first start that failed before its store
// held a record made in the data dir: the dir was new and this start
// held its lock, so the layout's entries are its own, and nothing was
// signed with the keys. Without it the keys it made would stop keygen,
// which makes the keys of a new data dir only. Other entries (a data dir
// shared with something else, by mistake) are left alone.
func undoFirstStart(dataDir string, log *slog.Logger) {
	var removed []string
	for _, name := range []string{KeysDir, StateDir, StoreDir, CheckpointsFile, GenesisFile} {
		path := filepath.Join(dataDir, name)
		if _, err := os.Lstat(path); err != nil {
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			log.Warn("a first start failed and cannot remove what it made; tailseal keygen will refuse this data dir", "error", err)
			continue
		}
		removed = append(removed, name)
	}
	if len(removed) > 0 {
		log.Info("the first start failed: removed the keys and state it had made, so that the data dir is new again", "data_dir", dataDir, "removed", removed)
	}
}

func writeNoteKeys(dataDir string) (vkey string, err error) {
	skey, vkey, err := signer.GenerateNoteKey(noteKeyName)
	if err != nil {
		return "", err
	}
	if err := signer.WriteKeyFile(filepath.Join(dataDir, KeysDir, NoteKeyFile), skey, 0o600); err != nil {
		return "", err
	}
	if err := signer.WriteKeyFile(filepath.Join(dataDir, KeysDir, NotePubFile), vkey, 0o644); err != nil {
		return "", err
	}
	return vkey, nil
}

// loadKeys returns the configured keys and the key state of the data dir.
// It makes no signing key: that waits for the store (keyFor), since a
// store with records needs the key it was signed with, and only a new
// store gets a new K0.
func loadKeys(cfg *config.Config, log *slog.Logger) (*keys, error) {
	var k keys
	if cfg.HMACKey != "" {
		// config.Validate has checked the configured keys' shape; an error
		// here means a Config that skipped it.
		key, err := signer.ParseHexKey(cfg.HMACKey)
		if err != nil {
			return nil, fmt.Errorf("%w: TAILSEAL_HMAC_KEY: %w", config.ErrInvalid, err)
		}
		log.Warn("static signing key configured: no forward security (see README)")
		k.sign = signer.NewStaticKey(key)
	} else {
		sealPath := filepath.Join(cfg.DataDir, StateDir, SealStateFile)
		if _, err := os.Stat(sealPath); err == nil {
			ek, err := signer.LoadEpochKey(sealPath, cfg.Epoch)
			if err != nil {
				return nil, err
			}
			k.sign, k.epoch = ek, ek
		}
	}
	if err := k.loadNoteKey(cfg, log); err != nil {
		return nil, err
	}
	return &k, nil
}

// firstKey makes the epoch key of a new store without a recipient: K0
// from keys/verify.key when it is there (never overwritten), else a new
// one kept there, with a warning; the first epoch starts at now.
func (k *keys) firstKey(cfg *config.Config, log *slog.Logger, now time.Time) error {
	sealPath := filepath.Join(cfg.DataDir, StateDir, SealStateFile)
	vpath := filepath.Join(cfg.DataDir, KeysDir, VerifyKeyFile)
	k0, err := readHexKeyFile(vpath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if k0, err = signer.NewRandomKey(); err != nil {
			return err
		}
		if err := signer.WriteKeyFile(vpath, hex.EncodeToString(k0), 0o600); err != nil {
			return err
		}
		log.Warn("generated signing keys on first start; the verification key is stored next to the data, which is convenient and weaker: "+
			"production should seal K0 to the auditor (TAILSEAL_VERIFY_RECIPIENT) or run `tailseal keygen` and keep its output off this host",
			"verify_key", vpath)
	case err != nil:
		return err
	default:
		log.Warn("a new store starts with the K0 already in keys/verify.key", "verify_key", vpath)
	}
	if err := signer.WriteSealState(sealPath, signer.NewSealState(k0, now, cfg.Epoch)); err != nil {
		return err
	}
	ek, err := signer.LoadEpochKey(sealPath, cfg.Epoch)
	if err != nil {
		return err
	}
	k.sign, k.epoch = ek, ek
	return nil
}

func readHexKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := signer.ParseHexKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// loadNoteKey sets the checkpoint signer and its verifier key: configured,
// or kept in keys/ (generated on first start with a warning).
func (k *keys) loadNoteKey(cfg *config.Config, log *slog.Logger) error {
	skey, src := cfg.CheckpointKey, "TAILSEAL_CHECKPOINT_KEY"
	if skey == "" {
		path := filepath.Join(cfg.DataDir, KeysDir, NoteKeyFile)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			var vkey string
			if vkey, err = writeNoteKeys(cfg.DataDir); err == nil {
				log.Warn("generated a checkpoint signing key on first start", "verifier_key", vkey)
				b, err = os.ReadFile(path)
			}
		}
		if err != nil {
			return fmt.Errorf("checkpoint key: %w", err)
		}
		skey, src = strings.TrimSpace(string(b)), "checkpoint key "+NoteKeyFile
	}
	n, err := note.NewSigner(skey)
	if err == nil {
		k.verifier, err = signer.VerifierKey(skey)
	}
	if err != nil {
		// Checked by config.Validate; the key's text stays out of errors.
		return fmt.Errorf("%w: %s is not an Ed25519 signed-note signer key (PRIVATE+KEY+name+hash+base64)", config.ErrInvalid, src)
	}
	k.note = n
	if cfg.CheckpointKey == "" {
		// A first start killed between the two files left the key alone.
		pub := filepath.Join(cfg.DataDir, KeysDir, NotePubFile)
		if _, err := os.Stat(pub); errors.Is(err, os.ErrNotExist) {
			return signer.WriteKeyFile(pub, k.verifier, 0o644)
		}
	}
	return nil
}

// sealFresh makes the key of a new store whose K0 is sealed to the
// auditor: K0 is drawn now (or is the one keygen left in state/, epoch
// 0), sealed to the recipient for the genesis record, and kept in memory
// only, as epoch 0 ending at once: the genesis is its one record, and
// writing it evolves the key to K1 (see Agent.genesis). A state of a
// later epoch with an empty store is what a crash during that leaves:
// nothing was signed with it, and it is replaced.
func (k *keys) sealFresh(cfg *config.Config, log *slog.Logger, now time.Time) error {
	sealPath := filepath.Join(cfg.DataDir, StateDir, SealStateFile)
	var k0 []byte
	if k.epoch != nil {
		st, err := signer.ReadSealState(sealPath)
		if err != nil {
			return err
		}
		if st.Epoch == 0 {
			if k0, err = signer.ParseHexKey(st.Key); err != nil {
				return fmt.Errorf("seal state %s: %w", sealPath, err)
			}
		} else {
			log.Warn("the store is empty and its key state is of epoch >0: a first start was cut short before its genesis record; starting the store again with a new K0",
				"state_epoch", st.Epoch)
		}
	}
	if k0 == nil {
		var err error
		if k0, err = signer.NewRandomKey(); err != nil {
			return err
		}
	}
	sealed, err := signer.SealK0(k0, cfg.VerifyRecipient)
	if err != nil { // checked by config.Validate; the value stays out of errors
		return fmt.Errorf("%w: TAILSEAL_VERIFY_RECIPIENT is not an age recipient", config.ErrInvalid)
	}
	ek, err := signer.NewEpochKey(sealPath, cfg.Epoch, signer.SealState{Epoch: 0, Key: hex.EncodeToString(k0), EndsAt: now, Sealed: true})
	clear(k0)
	if err != nil {
		return err
	}
	k.sign, k.epoch, k.sealed = ek, ek, sealed
	return nil
}

// unfinishedSeal is how many epochs the key must still evolve by when an
// epoch change was cut short (by a crash, or a disk too full for the key
// state): the last record is a seal, and the key is still the epoch's it
// ends. Run evolves it before anything is signed.
func (k *keys) unfinishedSeal(last record.Meta) (uint64, error) {
	if k.epoch == nil || last.EventType != record.TypeSeal || last.Epoch != k.epoch.Epoch() {
		return 0, nil
	}
	var d record.SealDetails
	if err := json.Unmarshal(last.Details, &d); err != nil || d.NextEpoch <= d.Epoch {
		return 0, fmt.Errorf("last record is a seal with bad details: %s", last.Details)
	}
	return d.NextEpoch - d.Epoch, nil
}

// loadPIIKey returns the pseudonymization key: configured, or kept in
// keys/pii.key (generated on first start with a warning). It is not the
// signing key: pseudonyms stay stable across epochs.
func loadPIIKey(cfg *config.Config, log *slog.Logger) ([]byte, error) {
	k, err := ReadPIIKey(cfg)
	if !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	path := filepath.Join(cfg.DataDir, KeysDir, PIIKeyFile)
	k, err = signer.NewRandomKey()
	if err != nil {
		return nil, err
	}
	if err := signer.WriteKeyFile(path, hex.EncodeToString(k), 0o600); err != nil {
		return nil, err
	}
	log.Warn("generated a pseudonymization key on first start; production should provide one (TAILSEAL_PII_KEY_FILE) and back it up: without it, data-subject lookups are impossible",
		"path", path)
	return k, nil
}

// ReadPIIKey returns the configured pseudonymization key, or the one kept
// in keys/pii.key; an error wrapping os.ErrNotExist when there is neither.
func ReadPIIKey(cfg *config.Config) ([]byte, error) {
	if cfg.PIIKey != "" {
		k, err := signer.ParseHexKey(cfg.PIIKey)
		if err != nil { // checked by config.Validate
			return nil, fmt.Errorf("%w: TAILSEAL_PII_KEY: %w", config.ErrInvalid, err)
		}
		return k, nil
	}
	path := filepath.Join(cfg.DataDir, KeysDir, PIIKeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return signer.ParseHexKey(string(b))
}

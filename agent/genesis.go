package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tailseal/tailseal/agent/atomicfile"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

// GenesisFile, at the top of the data dir, holds a copy of the store's
// genesis record (the stored line), written once that record is durable:
// the origin and the sealed K0 outlive the first segment's retention, and
// read commands find them without opening the store.
const GenesisFile = "genesis.json"

// ErrOriginChanged means TAILSEAL_ORIGIN names another store than the one
// in the data dir: an origin is fixed when a store is created.
var ErrOriginChanged = errors.New("TAILSEAL_ORIGIN differs from the store's origin")

// ErrKeysLost means a store with records has lost the key state it is
// signed with: a new key would sign records that verify under no K0.
var ErrKeysLost = errors.New("the store's signing key state is gone")

// Genesis is a store's genesis record.
type Genesis struct {
	Line    []byte // the stored line, without its newline
	Details record.GenesisDetails
	InStore bool // read from the store's seq 1, not only from GenesisFile
	// FirstUnreadable is why the store's first segment could not be read,
	// when the record is GenesisFile's for that reason (verify reports the
	// segment).
	FirstUnreadable error
}

// Hash is the genesis record's SHA-256, standard base64: what verify
// prints and retention records name.
func (g *Genesis) Hash() string {
	h := sha256.Sum256(g.Line)
	return base64.StdEncoding.EncodeToString(h[:])
}

// ReadGenesis returns the genesis record of the store in dataDir: its seq 1
// when the store still has it, else the copy in GenesisFile, which also
// stands in for a first segment that cannot be read. An error wrapping
// os.ErrNotExist means the store has none (it is new, or was created before
// origins existed); a *store.SegmentError, that the first segment cannot be
// read and there is no copy.
func ReadGenesis(dataDir string) (*Genesis, error) {
	first, err := firstRecord(filepath.Join(dataDir, StoreDir))
	var se *store.SegmentError
	if errors.As(err, &se) {
		g, cerr := readGenesisCopy(dataDir)
		if cerr != nil {
			return nil, err
		}
		g.FirstUnreadable = err
		return g, nil
	}
	if err != nil {
		return nil, err
	}
	if first != nil {
		if seq, _ := record.Seq(first); seq == 1 {
			d, err := record.ParseGenesis(first)
			if err != nil {
				return nil, fmt.Errorf("the store's first record is not a genesis record: %w", os.ErrNotExist)
			}
			return &Genesis{Line: first, Details: d, InStore: true}, nil
		}
	}
	return readGenesisCopy(dataDir)
}

func readGenesisCopy(dataDir string) (*Genesis, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, GenesisFile))
	if err != nil {
		return nil, err
	}
	line := bytes.TrimSuffix(b, []byte("\n"))
	d, err := record.ParseGenesis(line)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", GenesisFile, err)
	}
	return &Genesis{Line: line, Details: d}, nil
}

// firstRecord is the first complete line of the store's first segment
// (a copy), or nil when the store has none.
func firstRecord(dir string) ([]byte, error) {
	segs, err := store.List(dir)
	if err != nil || len(segs) == 0 {
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		return nil, err
	}
	r, err := store.OpenSegment(dir, segs[0])
	if err != nil {
		return nil, err
	}
	defer r.Close()
	line, err := r.Next()
	if errors.Is(err, io.EOF) || r.Torn() {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return bytes.Clone(line), nil
}

// StoreOrigin is the origin of the store in dataDir: its genesis record's,
// or for a store older than origins, the one its newest checkpoint names;
// "" when it has neither.
func StoreOrigin(dataDir string) (string, error) {
	g, err := ReadGenesis(dataDir)
	if err == nil {
		return g.Details.Origin, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	note, ok, err := newestCheckpointNote(filepath.Join(dataDir, CheckpointsFile))
	if err != nil || !ok {
		return "", err
	}
	origin, _, _ := strings.Cut(note, "\n")
	return origin, nil
}

// resolveOrigin decides the origin of the store this agent runs: the
// store's, which TAILSEAL_ORIGIN, when set, must equal; for a new store
// TAILSEAL_ORIGIN or else the host name. It returns the genesis of an
// existing store (nil for a new or an old one).
func resolveOrigin(cfg *config.Config) (string, *Genesis, error) {
	g, err := ReadGenesis(cfg.DataDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("read the store's genesis: %w", err)
	}
	stored := ""
	if g != nil {
		stored = g.Details.Origin
		if err := copyNamesTheStore(cfg.DataDir, g); err != nil {
			return "", nil, err
		}
	} else if stored, err = StoreOrigin(cfg.DataDir); err != nil {
		return "", nil, err
	}
	switch {
	case stored != "" && cfg.Origin != "" && cfg.Origin != stored:
		return "", nil, fmt.Errorf("%w: the store in %s was created as origin %+q, and TAILSEAL_ORIGIN is %+q. "+
			"An origin names one store for good: unset TAILSEAL_ORIGIN or set it to %+q to go on with this store, "+
			"or give origin %+q its own TAILSEAL_DATA_DIR", ErrOriginChanged, cfg.DataDir, stored, cfg.Origin, stored, cfg.Origin)
	case stored != "":
		return stored, g, nil
	case cfg.Origin != "":
		return cfg.Origin, nil, nil
	}
	host, err := os.Hostname()
	if err == nil {
		err = config.CheckOrigin(host)
	}
	if err != nil {
		return "", nil, fmt.Errorf("%w: TAILSEAL_ORIGIN is not set and the host name cannot serve as the origin (%w); set TAILSEAL_ORIGIN", config.ErrInvalid, err)
	}
	return host, nil, nil
}

// copyNamesTheStore checks a genesis read from GenesisFile alone (retention
// deleted seq 1) against the store's newest checkpoint: a copy from
// another store would rename this one.
func copyNamesTheStore(dataDir string, g *Genesis) error {
	if g.InStore {
		return nil
	}
	note, ok, err := newestCheckpointNote(filepath.Join(dataDir, CheckpointsFile))
	if err != nil || !ok {
		return err
	}
	if origin, _, _ := strings.Cut(note, "\n"); origin != g.Details.Origin {
		return fmt.Errorf("%w: %s names origin %+q, but the store's newest checkpoint names %+q: the copy is not this store's genesis. "+
			"Put back the right copy (a backup, or the collector's copy of this origin)", ErrOriginChanged, GenesisFile, g.Details.Origin, origin)
	}
	return nil
}

// keepGenesisCopy writes GenesisFile from the store's genesis when it is
// missing or differs (a crash after the record was stored, a file edited
// by hand): the store is what counts.
func keepGenesisCopy(dataDir string, g *Genesis) error {
	if g == nil || !g.InStore {
		return nil
	}
	path := filepath.Join(dataDir, GenesisFile)
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(bytes.TrimSuffix(b, []byte("\n")), g.Line) {
		return nil
	}
	if err := atomicfile.WriteFile(path, append(bytes.Clone(g.Line), '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", GenesisFile, err)
	}
	return nil
}

// keyFor settles the signing key once the store's state is known. A store
// with records goes on with the key state it was signed with, and refuses
// to start without it: a new K0 would sign records that verify under no
// K0 anyone has. A new store gets its first key: sealed to the recipient,
// or kept in keys/; a key state left by a sealed first start that was cut
// short is of no use (its K0 was never stored) and is replaced.
func (a *Agent) keyFor(lastSeq uint64) error {
	k, cfg := a.keys, a.cfg
	if cfg.HMACKey != "" {
		return nil
	}
	if lastSeq > 0 {
		if k.sign == nil {
			return fmt.Errorf("%w: the store in %s holds records up to seq %d, but %s is missing, and a new K0 would sign records no one can verify with this store's. "+
				"Restore it from a backup if there is one. %s", ErrKeysLost, cfg.DataDir, lastSeq, filepath.Join(StateDir, SealStateFile), newStoreHint)
		}
		a.noteRecipient()
		return nil
	}
	if cfg.VerifyRecipient != "" {
		return k.sealFresh(cfg, a.log, a.clk.Now())
	}
	if k.epoch != nil && k.epoch.Sealed() {
		a.log.Warn("the store is empty and its key state is from a sealed first start cut short (its K0 exists nowhere); without TAILSEAL_VERIFY_RECIPIENT a new K0 is made")
		k.sign, k.epoch = nil, nil
	}
	if k.epoch == nil {
		return k.firstKey(cfg, a.log, a.clk.Now())
	}
	return nil
}

// noteRecipient says when TAILSEAL_VERIFY_RECIPIENT does not apply to the
// store: it seals the K0 of new stores only.
func (a *Agent) noteRecipient() {
	r := strings.TrimSpace(a.cfg.VerifyRecipient)
	sealedTo := ""
	if g := a.genesis.Load(); g != nil {
		sealedTo = g.Details.SealedTo
	}
	switch {
	case r == "" || r == sealedTo:
	case sealedTo == "":
		a.log.Warn("TAILSEAL_VERIFY_RECIPIENT seals the K0 of new stores; this store was created without it, and its K0 is where it was made (keygen or keys/)")
	default:
		a.log.Warn("TAILSEAL_VERIFY_RECIPIENT differs from the recipient this store's K0 is sealed to; it applies to new stores only", "sealed_to", sealedTo)
	}
}

// writeGenesis stores a new store's first record, signed with K0. With a
// recipient it carries K0 sealed, and ends epoch 0: the key evolves to K1,
// made durable before the record is stored, so that K0 is never on disk
// and a crash leaves either an empty store (sealFresh starts again) or
// the genesis with K1's state.
func (a *Agent) writeGenesis(ctx context.Context) error {
	now := a.clk.Now().UTC()
	d := record.GenesisDetails{Origin: a.origin, Created: now.Format(time.RFC3339Nano), Version: a.version, CheckpointVerifier: a.keys.verifier}
	if a.keys.epoch != nil {
		d.EpochSeconds = int64(a.cfg.Epoch / time.Second)
	}
	sealed := a.keys.sealed != ""
	if sealed {
		d.SealedK0, d.SealedTo, d.NextEpoch = a.keys.sealed, strings.TrimSpace(a.cfg.VerifyRecipient), 1
	}
	details, err := json.Marshal(d)
	if err != nil {
		return err
	}
	line := a.internalLine(record.TypeGenesis, details)
	if sealed {
		if err := a.keys.epoch.Advance(1); err != nil {
			return fmt.Errorf("evolve K0 to K1: %w", err)
		}
		a.keys.sealed = ""
	}
	if err := a.storeInternal(ctx, line, 1); err != nil {
		return err
	}
	g := &Genesis{Line: bytes.Clone(line[:len(line)-1]), Details: d, InStore: true}
	a.genesis.Store(g)
	a.log.Info("new store", "origin", a.origin, "k0_sealed", sealed, "genesis_sha256", g.Hash())
	return keepGenesisCopy(a.cfg.DataDir, g)
}

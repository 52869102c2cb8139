package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/lock"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/agent/witness"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/verify"
	"golang.org/x/mod/sumdb/note"
)

func runVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "one JSON object per finding, then a summary object")
	identity := fs.String("identity", "", "age identity `file` that opens the K0 sealed in the store's genesis record (default $TAILSEAL_VERIFY_IDENTITY_FILE)")
	var origins originFlag
	fs.Var(&origins, "origin", originUsage)
	var flags config.Flags
	dataDirFlag(fs, &flags)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: tailseal verify [--json] [--identity FILE] [--origin ORIGIN ...] [--data-dir DIR]

Checks the whole store in $TAILSEAL_DATA_DIR: seq contiguity, the hash chain,
every signature under its epoch key, epoch seals, the genesis record, and
every checkpoint (TAILSEAL_VERIFIER: one key, or several separated by commas
or newlines, a checkpoint verifies under any of them). K0 comes from
--identity (the auditor's age identity, when the store sealed K0 to
TAILSEAL_VERIFY_RECIPIENT), or TAILSEAL_VERIFY_KEY (K0 from keygen); without
either, from keys/ if the agent generated it there on first start.
Exit 0 when intact, 1 with findings, 2 on usage or key errors.

On a collector's data dir (one with origins/), every origin's store, or
those --origin names, each with its own keys: K0 opened from its genesis
with --identity (one file may hold several identities; an origin whose K0
is not sealed is checked without it), TAILSEAL_VERIFY_KEY only with one
origin selected, and of the TAILSEAL_VERIFIER keys those no other origin's
genesis names. Findings and summary lines start with "<origin>: ", and a
last line covers all origins (--json: "origin" in each finding, a summary
object per origin, then {"fleet":{…}}). Exit 0 when every origin is intact,
1 when any has findings, else 2 when any could not be checked with the keys
given (each such origin is named).

A progress bar is drawn on stderr when it is a terminal, and cleared before
the findings and the summary.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tailseal verify: unexpected argument %q: the store is $TAILSEAL_DATA_DIR or --data-dir DIR; see tailseal verify --help\n", fs.Arg(0))
		return errUsage
	}
	cfg, err := loadConfig(flags)
	if err != nil {
		return err
	}
	if *identity != "" {
		cfg.VerifyIdentityFile = *identity
	}
	srcs, err := selectSources("verify", cfg.DataDir, origins)
	if err != nil {
		return err
	}
	if srcs.fleet {
		return verifyFleet(ctx, cfg, srcs, *asJSON)
	}
	storeDir := filepath.Join(cfg.DataDir, agent.StoreDir)
	if _, err := os.Stat(storeDir); err != nil {
		fmt.Fprintf(os.Stderr, "tailseal verify: no store in %s (set TAILSEAL_DATA_DIR or --data-dir)\n", cfg.DataDir)
		return errUsage
	}
	opt, notes, err := verifyOptions(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailseal verify:", err)
		return errUsage
	}
	if !*asJSON {
		for _, n := range notes {
			fmt.Fprintln(os.Stderr, "note:", n)
		}
	}
	bar := newProgressBar("verifying", diskBytes(storeDir))
	src := newStoreSource(cfg.DataDir)
	src.progress = bar.set // a nil bar draws nothing
	sum, err := src.run(ctx, opt)
	bar.finish()
	return verifyOutcome(ctx, sum, err, *asJSON)
}

// verifyOutcome prints a run's result and maps it to the exit code.
func verifyOutcome(ctx context.Context, sum *verify.Summary, err error, asJSON bool) error {
	switch {
	case errors.Is(err, verify.ErrWrongKey) || errors.Is(err, verify.ErrWrongVerifier):
		fmt.Fprintln(os.Stderr, "tailseal verify:", err)
		return errUsage
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		fmt.Fprintln(os.Stderr, "tailseal verify: interrupted; the store was not checked to its end")
		return fmt.Errorf("%w: %w", errInterrupted, err)
	case err != nil:
		return fmt.Errorf("verify: %w", err)
	}
	printVerify(sum, asJSON)
	if len(sum.Findings) > 0 {
		return errFinding
	}
	return nil
}

func printVerify(sum *verify.Summary, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		for _, f := range sum.Findings {
			enc.Encode(f)
		}
		enc.Encode(struct {
			Summary *verify.Summary `json:"summary"`
		}{sum})
		return
	}
	for _, f := range sum.Findings {
		fmt.Println(f)
	}
	for _, line := range summaryLines(sum) {
		fmt.Println(line)
	}
}

// summaryLines say what a run checked and whether the store is intact.
func summaryLines(sum *verify.Summary) []string {
	status := "intact"
	if len(sum.Findings) > 0 {
		status = "NOT intact"
	}
	lines := []string{fmt.Sprintf("%s: %d records (%.1f MB) in %d segments, %d checkpoints, %d findings",
		status, sum.Records, float64(sum.Bytes)/1e6, sum.Segments, sum.Checkpoints, len(sum.Findings))}
	if sum.Origin != "" {
		lines = append(lines, fmt.Sprintf("origin %s, genesis record sha256 %s", sum.Origin, sum.Genesis))
	}
	if sum.Checkpoints > 0 {
		lines = append(lines, checkpointKinds(sum))
	}
	if sum.WitnessQuorum > 0 {
		w := fmt.Sprintf("witnesses: %d cosignatures of trusted witnesses; ", sum.Cosignatures)
		if sum.WitnessedSize > 0 {
			w += fmt.Sprintf("the log up to size %d is cosigned by a quorum of %d", sum.WitnessedSize, sum.WitnessQuorum)
		} else {
			w += fmt.Sprintf("no checkpoint has a quorum of %d", sum.WitnessQuorum)
		}
		lines = append(lines, w)
	}
	if sum.RetainedThrough > 0 {
		lines = append(lines, fmt.Sprintf("records 1 to %d were deleted by retention (signed retention records say so)", sum.RetainedThrough))
	}
	if n := len(sum.Unindexed); n > 0 {
		lines = append(lines, fmt.Sprintf("note: store/index has no entry for %d segment(s) the agent indexed and attested (%s): queries read them whole; "+
			"a collector leaves out entries it would write otherwise than the agent, anything else removed them", n, strings.Join(sum.Unindexed, ", ")))
	}
	return lines
}

// checkpointKinds says what the checkpoints were held to.
func checkpointKinds(sum *verify.Summary) string {
	var parts []string
	if sum.TreeHeads > 0 {
		parts = append(parts, fmt.Sprintf("%d Merkle tree heads (each the RFC 6962 root of the records before it, recomputed)", sum.TreeHeads))
	}
	if sum.ChainHeads > 0 {
		parts = append(parts, fmt.Sprintf("%d chain heads (the older kind: the SHA-256 of line #size)", sum.ChainHeads))
	}
	if sum.Consistent > 0 {
		parts = append(parts, fmt.Sprintf("%d consistency proofs between successive tree heads", sum.Consistent))
	}
	if sum.Unchecked > 0 {
		parts = append(parts, fmt.Sprintf("%d not checked (their records are gone and the stored hashes do not give their root)", sum.Unchecked))
	}
	if len(parts) == 0 {
		return "checkpoints: none held to the records"
	}
	return "checkpoints: " + strings.Join(parts, "; ")
}

// verifyOptions finds the keys to verify the configured store with, and
// notes on what they are and what cannot be checked without them.
func verifyOptions(cfg *config.Config) (verify.Options, []string, error) {
	k, err := newKeyring(cfg, nil)
	if err != nil {
		return verify.Options{}, nil, err
	}
	return k.options(cfg.DataDir, "")
}

// keyring is what verify was given to check stores with, to be matched to
// each store: K0's sources and the trusted checkpoint verifier keys.
type keyring struct {
	cfg     *config.Config
	trusted []note.Verifier // TAILSEAL_VERIFIER; none: keys/ or the genesis name one
	// fleet: the stores are origins of a collector's data dir. owners are
	// the origins whose genesis names each trusted key (by signer.KeyID):
	// such a key vouches for their checkpoints and no other origin's.
	fleet   bool
	owners  map[string][]string
	running bool // the collector holds its data dir's lock: records may be arriving
}

// newKeyring reads the keys of cfg; fleet lists every origin of a
// collector's data dir (nil for a single store).
func newKeyring(cfg *config.Config, fleet []agent.FleetOrigin) (*keyring, error) {
	k := &keyring{cfg: cfg, fleet: fleet != nil, owners: map[string][]string{}}
	if cfg.Verifier != "" {
		vs, err := signer.ParseVerifiers(cfg.Verifier)
		if err != nil {
			return nil, fmt.Errorf("TAILSEAL_VERIFIER: %w", err)
		}
		k.trusted = vs
	}
	for _, o := range fleet {
		g, err := agent.ReadGenesis(o.DataDir)
		if err != nil || g.Details.CheckpointVerifier == "" {
			continue // its options say why, if it is selected
		}
		if v, err := note.NewVerifier(strings.TrimSpace(g.Details.CheckpointVerifier)); err == nil {
			id := signer.KeyID(v)
			k.owners[id] = append(k.owners[id], o.Origin)
		}
	}
	if fleet != nil {
		k.running = lock.Held(cfg.DataDir)
	}
	return k, nil
}

// options are the verify options of the store in dataDir, kept as origin
// ("" for a single store), and notes on its keys.
func (k *keyring) options(dataDir, origin string) (verify.Options, []string, error) {
	opt := verify.Options{Origin: origin}
	var notes []string
	g, err := agent.ReadGenesis(dataDir)
	var se *store.SegmentError
	switch {
	case errors.As(err, &se):
		// The scan reports the segment; what its seq 1 said is unknown.
		notes = append(notes, fmt.Sprintf("the first segment cannot be read (%v) and there is no %s: the store's genesis record is unknown", err, agent.GenesisFile))
		g = nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return opt, nil, err
	case g != nil && g.FirstUnreadable != nil:
		notes = append(notes, fmt.Sprintf("the first segment cannot be read (%v): the genesis record is the copy in %s", g.FirstUnreadable, agent.GenesisFile))
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, agent.GenesisFile)); err == nil {
		opt.Genesis = bytes.TrimSuffix(b, []byte("\n"))
	}
	k0, knotes, err := k.verifyKey(dataDir, g)
	if err != nil {
		return opt, nil, err
	}
	notes = append(notes, knotes...)
	vs, vnotes, err := k.checkpointVerifiers(dataDir, origin, g)
	if err != nil {
		return opt, nil, err
	}
	opt.K0, opt.Verifiers = k0, vs
	opt.WitnessKeys, opt.WitnessQuorum = k.cfg.Witnesses()
	opt.K0FromGenesis = k.cfg.VerifyIdentityFile != "" && g != nil && !g.InStore
	// How the store ends is held to the clock and to whether an agent runs
	// on it now (one holds the data dir's lock), or, for an origin of a
	// collector, whether the collector runs and records may be arriving.
	opt.Now, opt.Epoch, opt.AgentRunning = time.Now(), k.cfg.Epoch, lock.Held(dataDir) || k.running
	return opt, append(notes, vnotes...), nil
}

// verifyKey returns K0: opened from the genesis with the auditor's
// identity, given, the static key, or the one generated on first start.
// Without any, signatures are not checked (the chain still is). Over a
// collector's origins, an identity opens the K0 of those that sealed it,
// and the others are checked without.
func (k *keyring) verifyKey(dataDir string, g *agent.Genesis) ([]byte, []string, error) {
	cfg := k.cfg
	sealed := g != nil && g.Details.SealedK0 != ""
	switch {
	case cfg.VerifyIdentityFile != "" && cfg.VerifyKey != "":
		return nil, nil, errors.New("give K0 one way: an age identity (--identity, TAILSEAL_VERIFY_IDENTITY_FILE) or TAILSEAL_VERIFY_KEY, not both")
	case cfg.VerifyIdentityFile != "" && (sealed || !k.fleet):
		return openSealedK0(cfg.VerifyIdentityFile, g)
	case cfg.VerifyKey != "":
		k, err := signer.ParseHexKey(cfg.VerifyKey)
		if err != nil {
			return nil, nil, fmt.Errorf("TAILSEAL_VERIFY_KEY: %w", err)
		}
		return k, nil, nil
	case cfg.HMACKey != "":
		k, err := signer.ParseHexKey(cfg.HMACKey)
		if err != nil {
			return nil, nil, fmt.Errorf("TAILSEAL_HMAC_KEY: %w", err)
		}
		return k, []string{"checking signatures with the static TAILSEAL_HMAC_KEY"}, nil
	}
	path := filepath.Join(dataDir, agent.KeysDir, agent.VerifyKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err != nil && sealed:
		return nil, []string{"K0 is sealed to " + g.Details.SealedTo + ": pass its identity with --identity to check signatures; only the chain and checkpoints are checked"}, nil
	case err != nil && cfg.VerifyIdentityFile != "":
		return nil, []string{"its K0 is not sealed in its genesis (created without TAILSEAL_VERIFY_RECIPIENT): signatures are not checked, only the chain and checkpoints"}, nil
	case err != nil:
		return nil, []string{"no TAILSEAL_VERIFY_KEY: signatures are not checked, only the chain and checkpoints"}, nil
	}
	key, err := signer.ParseHexKey(string(b))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, []string{"using the key generated on first start in " + path + " (whoever can change the store can change it too; see README)"}, nil
}

// openSealedK0 opens the K0 sealed in the genesis with the identity file.
func openSealedK0(path string, g *agent.Genesis) ([]byte, []string, error) {
	switch {
	case g == nil:
		return nil, nil, fmt.Errorf("--identity %s: %w: the store has no genesis record to open it from (its seq 1 is not one, and there is no %s: "+
			"a store made before origins, or retention deleted seq 1 and the copy is lost)", path, signer.ErrNotSealed, agent.GenesisFile)
	case g.Details.SealedK0 == "":
		return nil, nil, fmt.Errorf("--identity %s: %w (it was created without TAILSEAL_VERIFY_RECIPIENT; give K0 with TAILSEAL_VERIFY_KEY)", path, signer.ErrNotSealed)
	}
	ids, err := signer.ReadIdentities(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--identity: %w", err)
	}
	k0, err := signer.OpenK0(g.Details.SealedK0, ids)
	if errors.Is(err, signer.ErrWrongIdentity) {
		return nil, nil, fmt.Errorf("%w: %s (K0 was sealed to %s)", err, path, g.Details.SealedTo)
	}
	if err != nil {
		return nil, nil, err
	}
	return k0, []string{"K0 opened from the genesis record with the identity in " + path}, nil
}

// checkpointVerifiers returns the checkpoint verifier keys: the trusted
// ones given (over a collector's origins, those no other origin's genesis
// names), or the one kept in keys/, or the one the genesis record names
// (which whoever could rewrite the store could rewrite too:
// TAILSEAL_VERIFIER is the trusted one).
func (k *keyring) checkpointVerifiers(dataDir, origin string, g *agent.Genesis) ([]note.Verifier, []string, error) {
	if len(k.trusted) > 0 {
		var mine []note.Verifier
		for _, v := range k.trusted {
			if owners := k.owners[signer.KeyID(v)]; len(owners) == 0 || slices.Contains(owners, origin) {
				mine = append(mine, v)
			}
		}
		if len(mine) == 0 {
			named := "no key"
			if g != nil {
				named = g.Details.CheckpointVerifier
			}
			return nil, nil, fmt.Errorf("%w: TAILSEAL_VERIFIER holds no key for this origin: each key listed is another origin's, and its genesis names %s "+
				"(add the origin's keys/checkpoint.pub to the list)", verify.ErrWrongVerifier, named)
		}
		return mine, nil, nil
	}
	var notes []string
	src := filepath.Join(dataDir, agent.KeysDir, agent.NotePubFile)
	b, err := os.ReadFile(src)
	vkey := string(b)
	switch {
	case err == nil:
		notes = append(notes, "using the checkpoint verifier key in "+src)
	case g != nil && g.Details.CheckpointVerifier != "":
		vkey, src = g.Details.CheckpointVerifier, "the genesis record's checkpoint_verifier"
		notes = append(notes, "using the checkpoint verifier key the genesis record names; set TAILSEAL_VERIFIER to the one you trust")
	default:
		return nil, []string{"no TAILSEAL_VERIFIER: checkpoint signatures are not checked"}, nil
	}
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a signed-note verifier key (name+hash+base64): %w", src, err)
	}
	return []note.Verifier{v}, notes, nil
}

// diskBytes is the size on disk of the store's segments.
func diskBytes(dir string) int64 {
	var total int64
	segs, _ := store.List(dir)
	for _, s := range segs {
		if fi, err := os.Stat(filepath.Join(dir, s.Name)); err == nil {
			total += fi.Size()
		}
	}
	return total
}

// storeSource is the verifier's view of a data dir: the segments of its
// store, read through store.OpenSegment, and its checkpoints file.
type storeSource struct {
	dir, checkpoints string
	cosignatures     string
	segs             map[string]store.Segment
	index            map[string]store.IndexEntry
	progress         func(bytes int64) // told the bytes read from disk; nil: nobody

	mu   sync.Mutex // Lines runs for several segments at once
	read int64      // bytes read from disk, by every Lines so far
}

var _ verify.Source = (*storeSource)(nil)

func newStoreSource(dataDir string) *storeSource {
	return &storeSource{dir: filepath.Join(dataDir, agent.StoreDir), checkpoints: filepath.Join(dataDir, agent.CheckpointsFile),
		cosignatures: filepath.Join(dataDir, witness.CosignaturesFile)}
}

var _ verify.Cosigned = (*storeSource)(nil)

// Cosignatures opens cosignatures.jsonl; a store without one has none.
func (s *storeSource) Cosignatures() (io.ReadCloser, error) {
	f, err := os.Open(s.cosignatures)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return f, nil
}

func (s *storeSource) Segments() ([]verify.Segment, error) {
	segs, err := store.List(s.dir)
	if err != nil {
		return nil, err
	}
	if s.index, err = store.ReadIndex(s.dir); err != nil {
		return nil, err
	}
	s.segs = make(map[string]store.Segment, len(segs))
	out := make([]verify.Segment, len(segs))
	for i, seg := range segs {
		s.segs[seg.Name] = seg
		out[i] = verify.Segment{Name: seg.Name, First: seg.First}
	}
	return out, nil
}

// progressEvery is how many lines go by between progress reports, besides
// one at the end of each segment.
const progressEvery = 1 << 16

// Lines reads a segment with its torn last line, if any: the verifier
// reports it.
func (s *storeSource) Lines(seg verify.Segment, fn func(lineNo int, data []byte) error) error {
	r, err := store.OpenSegment(s.dir, s.segs[seg.Name])
	if err != nil {
		return unreadable(err)
	}
	defer r.Close()
	r.IncludeTorn = true
	var told int64
	report := func() {
		s.report(r.Bytes() - told)
		told = r.Bytes()
	}
	for {
		line, err := r.Next()
		if err == io.EOF {
			report()
			return nil
		}
		if err != nil {
			report()
			return unreadable(err)
		}
		if err := fn(r.LineNo(), line); err != nil {
			return err
		}
		if r.LineNo()%progressEvery == 0 {
			report()
		}
	}
}

// run verifies the store with opt, holding store/index to the index
// records (see verify.Options.IndexDigests) and, for entries no record
// attests (stores indexed before the agent attested its index), to their
// segments, read a second time.
func (s *storeSource) run(ctx context.Context, opt verify.Options) (*verify.Summary, error) {
	digests, err := store.ReadIndexDigests(s.dir)
	if err != nil {
		return nil, err
	}
	opt.Source, opt.IndexDigests = s, digests
	if fi, err := os.Stat(filepath.Join(s.dir, store.HashDir)); err == nil && fi.IsDir() {
		opt.Hashes = os.DirFS(filepath.Join(s.dir, store.HashDir))
	}
	sum, err := verify.Run(ctx, opt)
	if err != nil {
		return sum, err
	}
	for _, name := range sum.Unattested {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if f, bad := s.rebuildIndex(name); bad {
			sum.Findings = append(sum.Findings, f)
		}
	}
	sum.Findings = append(sum.Findings, s.checkFilters()...)
	return sum, nil
}

// checkFilters holds the Bloom filter files to the index entries that
// attest them. A filter that does not match is not used (queries read the
// segment whole), so it hides nothing: still, something changed it.
func (s *storeSource) checkFilters() []verify.Finding {
	var out []verify.Finding
	for _, name := range slices.Sorted(maps.Keys(s.index)) {
		e := s.index[name]
		seg, listed := s.segs[name]
		if !listed {
			continue // deleted by retention, or never there: verify says which
		}
		if err := store.CheckFilters(s.dir, &e); err != nil {
			out = append(out, verify.Finding{Segment: store.IndexFile, Seq: seg.First, Kind: verify.IndexMismatch,
				Detail: "entry for " + name + ": " + err.Error() + "; queries read the segment whole"})
		}
	}
	return out
}

// rebuildIndex holds a segment's index entry to the segment's records.
func (s *storeSource) rebuildIndex(name string) (verify.Finding, bool) {
	e, ok := s.index[name]
	seg, listed := s.segs[name]
	if !ok || !listed {
		return verify.Finding{}, false
	}
	check := store.NewIndexCheck(e)
	if err := store.ScanSegment(s.dir, seg, func(_ store.Segment, _ int, line []byte) error { check.Add(line); return nil }); err != nil {
		return verify.Finding{}, false // the scan reported the segment unreadable
	}
	if d := check.Mismatch(); d != "" {
		return verify.Finding{Segment: store.IndexFile, Seq: seg.First, Kind: verify.IndexMismatch,
			Detail: "entry for " + name + ": " + d + "; queries may skip or misread it"}, true
	}
	return verify.Finding{}, false
}

// unreadable says why a segment could not be read, in the words verify
// has always used: the cause alone when reading failed part way (the
// finding names the segment), the file and the step when opening did.
func unreadable(err error) error {
	var se *store.SegmentError
	var pe *fs.PathError
	switch {
	case !errors.As(err, &se):
		return err
	case se.Line > 0:
		return se.Err
	case errors.As(se.Err, &pe) && pe.Op == "open":
		return fmt.Errorf("open %s: %w", se.Segment, se.Err)
	}
	return fmt.Errorf("%s: %w", se.Segment, se.Err) // a gzip header
}

// report adds n bytes read and tells the progress.
func (s *storeSource) report(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read += n
	if s.progress != nil {
		s.progress(s.read)
	}
}

// Checkpoints opens checkpoints.jsonl; a store without one has none.
func (s *storeSource) Checkpoints() (io.ReadCloser, error) {
	f, err := os.Open(s.checkpoints)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err // not a nil *os.File in a non-nil interface
	}
	return f, nil
}

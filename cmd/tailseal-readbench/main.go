// Command tailseal-readbench measures the operator commands on a big store.
// It builds a store of -events operator events (10 million by default,
// through the agent's own parse, anonymize and sign code, in 50 MB
// segments as the agent writes them), then runs the real binary: stats,
// query --lead, --type, --subject (a person in every segment, and one in
// none), --since, performance, export and verify, -runs times each, and
// prints min / median / max of wall time and CPU time and the peak RSS.
// With -baseline it alternates another build (the parent commit's) with
// this one, each on a store it built (-baseline-data): a store in this
// build's index format would not be indexed for an older one. The store
// ends with a signed checkpoint of its Merkle tree: it also times
// inclusion and consistency proofs from the stored hashes in process
// (target under 10 ms each), and `tailseal prove` and `verify-proof`.
//
//	go build -o /tmp/tailseal ./cmd/tailseal
//	go run ./cmd/tailseal-readbench -bin /tmp/tailseal -data /tmp/rb10m/data
//	go run ./cmd/tailseal-readbench -bin /tmp/tailseal -data /tmp/rb10m/data \
//		-baseline /tmp/tailseal-old -baseline-data /tmp/rb10m/base-data -runs 5 -only stats,lead,type,subject
//
// Building a store of 10M events takes minutes: -data keeps it for the
// next run, -rebuild makes it again (after a change of the index format;
// build the baseline's store with the baseline's own readbench), and
// -member-bytes builds it in members of another size, -compression zstd
// in zstd instead of gzip.
//
// With -verify OLD it only times `tailseal verify` of the store instead,
// -bin against the binary OLD (a build of an earlier commit), alternated
// for -rounds rounds (see verify.go).
//
// Peak RSS comes from wait4: Go starts children with CLONE_VFORK, so a
// child's figure can include this process's own resident memory at the
// start; that is printed too, and the figures are upper bounds.
package main

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/store"
)

// memberBytes is -member-bytes, compression -compression.
var (
	memberBytes int
	compression string
)

var (
	hmacKey = bytes.Repeat([]byte{1}, 32)
	piiKey  = bytes.Repeat([]byte{2}, 32)
	start   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	step    = 5 * time.Second // 10M events span about 19 months
)

func main() {
	bin := flag.String("bin", "tailseal", "path to the tailseal binary")
	events := flag.Int("events", 10_000_000, "events in the store")
	dataDir := flag.String("data", "", "use (or build, if missing) the store in this data dir and keep it; default: a temporary one")
	proofsOnly := flag.Bool("proofs", false, "only the proof figures (with -data: on a store built before)")
	runs := flag.Int("runs", 3, "runs of each command (per build)")
	baseline := flag.String("baseline", "", "another tailseal binary to alternate with -bin (the parent build)")
	baselineData := flag.String("baseline-data", "", "the data dir -baseline reads (default -data)")
	only := flag.String("only", "", "only these `commands`, comma-separated: stats,lead,type,subject,subject-absent,since,performance,export,verify (no proofs then)")
	rebuild := flag.Bool("rebuild", false, "with -data: remove the store there and build it again")
	verifyOld := flag.String("verify", "", "only time `verify` of the store: -bin against this other binary, alternated")
	rounds := flag.Int("rounds", 5, "with -verify: rounds, each verifying with both binaries")
	flag.StringVar(&compression, "compression", "gzip", "when building a store: compress rotated segments with gzip or zstd (TAILSEAL_COMPRESSION)")
	flag.IntVar(&memberBytes, "member-bytes", 0, "when building a store: cut compressed segments into gzip members of this many bytes (0: the store's default, store.DefaultMemberBytes)")
	flag.Parse()
	if _, err := store.ParseCompression(compression); err != nil {
		fmt.Fprintln(os.Stderr, "tailseal-readbench: -compression:", err)
		os.Exit(2)
	}
	if *proofsOnly && *dataDir != "" {
		if err := proofs(*bin, *dataDir, *events); err != nil {
			fmt.Fprintln(os.Stderr, "tailseal-readbench:", err)
			os.Exit(1)
		}
		return
	}
	if *verifyOld != "" {
		if err := verifyRounds(*bin, *verifyOld, *events, *dataDir, *rounds); err != nil {
			fmt.Fprintln(os.Stderr, "tailseal-readbench:", err)
			os.Exit(1)
		}
		return
	}
	cases, err := selectCases(readCases(*events, step), *only)
	if err == nil && *rebuild && *dataDir != "" {
		err = os.RemoveAll(*dataDir)
	}
	if err == nil && *runs < 1 {
		err = fmt.Errorf("-runs %d: at least 1", *runs)
	}
	if err == nil {
		err = run(*bin, *events, *dataDir, bench{cases: cases, runs: *runs, baseline: *baseline, baselineData: *baselineData, proofs: *only == ""})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailseal-readbench:", err)
		os.Exit(1)
	}
}

// bench is what to run once the store is there.
type bench struct {
	cases                  []benchCase
	runs                   int
	baseline, baselineData string
	proofs                 bool
}

func run(bin string, events int, data string, b bench) error {
	data, cleanup, err := ensureStore(events, data)
	if err != nil {
		return err
	}
	defer cleanup()
	debug.FreeOSMemory()
	fmt.Printf("this process's RSS when starting the commands: %.1f MiB (see the note on peak RSS)\n\n", selfRSS())
	cs := []contender{{"this", bin, data}}
	if b.baseline != "" {
		cs = append(cs, contender{"baseline", b.baseline, cmp.Or(b.baselineData, data)})
	}
	fmt.Printf("%d runs of each command per build, alternated\n", b.runs)
	if err := repeated(cs, b.cases, b.runs); err != nil {
		return err
	}
	if !b.proofs {
		return nil
	}
	fmt.Printf("\n%-44s %8s %8s %10s  %s\n", "command", "wall s", "CPU s", "peak RSS", "result")
	return proofs(bin, data, events)
}

// ensureStore builds the store of events in data, unless there is one;
// data "" is a temporary directory, which cleanup removes.
func ensureStore(events int, data string) (string, func(), error) {
	cleanup := func() {}
	if data == "" {
		dir, err := os.MkdirTemp("", "tailseal-readbench")
		if err != nil {
			return "", nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		data = filepath.Join(dir, "data")
	}
	if _, err := os.Stat(filepath.Join(data, "store")); err == nil {
		printStore(data)
		return data, cleanup, nil
	}
	t0 := time.Now()
	cs, err := checkpointKey(data)
	if err == nil {
		err = benchdata.BuildStore(benchdata.StoreOptions{DataDir: data, Events: events, Start: start, Step: step,
			SegmentMax: 50 << 20, HMACKey: hmacKey, PIIKey: piiKey, Checkpoint: cs, MemberBytes: memberBytes, Compression: store.Compression(compression)})
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	fmt.Printf("built a store of %d events in %.1fs\n", events, time.Since(t0).Seconds())
	printStore(data)
	return data, cleanup, nil
}

// printStore says how big the store in data is.
func printStore(data string) {
	disk, segs := du(filepath.Join(data, "store"))
	fmt.Printf("store: %d segments, %.0f MB on disk\n", segs, disk/1e6)
}

// env is the environment the commands run in: the store, its keys.
func env(data string) []string {
	e := append(os.Environ(), "TAILSEAL_DATA_DIR="+data, "TAILSEAL_PII_KEY="+hex.EncodeToString(piiKey),
		"TAILSEAL_HMAC_KEY="+hex.EncodeToString(hmacKey))
	if vkey, err := os.ReadFile(filepath.Join(data, "keys", "checkpoint.pub")); err == nil {
		e = append(e, "TAILSEAL_VERIFIER="+strings.TrimSpace(string(vkey)))
	}
	return e
}

// measure runs one command to completion and prints its row.
func measure(bin, data string, args []string, check func(*counter, time.Duration) string) error {
	cmd := exec.Command(bin, args...)
	cmd.Env = env(data)
	var out counter
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("%-44s %8.2f %8.2f %6.1f MiB  %s\n", strings.Join(args, " "), wall.Seconds(), cpu.Seconds(), float64(ru.Maxrss)/1024, check(&out, wall))
	return nil
}

// counter keeps the first MiB of output and counts the rest.
type counter struct {
	head  []byte
	n     int64
	lines int
	sum   hash.Hash // of everything, when set
}

func (c *counter) Write(p []byte) (int, error) {
	if room := 1<<20 - len(c.head); room > 0 {
		c.head = append(c.head, p[:min(room, len(p))]...)
	}
	if c.sum != nil {
		c.sum.Write(p)
	}
	c.n += int64(len(p))
	c.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

func countLines(out *counter, _ time.Duration) string {
	return fmt.Sprintf("%d lines", out.lines)
}

func scanRate(out *counter, wall time.Duration) string {
	var st struct {
		Events int   `json:"events"`
		Bytes  int64 `json:"bytes"`
	}
	if err := json.Unmarshal(out.head, &st); err != nil {
		return "bad output: " + err.Error()
	}
	return fmt.Sprintf("%d events, %.0f MB of records: %.0f MB/s", st.Events, float64(st.Bytes)/1e6, float64(st.Bytes)/1e6/wall.Seconds())
}

func outSize(out *counter, wall time.Duration) string {
	return fmt.Sprintf("%d lines, %.0f MB: %.0f MB/s", out.lines, float64(out.n)/1e6, float64(out.n)/1e6/wall.Seconds())
}

func du(dir string) (float64, int) {
	entries, _ := os.ReadDir(dir)
	var total float64
	n := 0
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			total += float64(fi.Size())
			if _, ok := store.CutCompressedExt(e.Name()); ok || strings.HasSuffix(e.Name(), ".jsonl") {
				n++
			}
		}
	}
	return total, n
}

func selfRSS() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}

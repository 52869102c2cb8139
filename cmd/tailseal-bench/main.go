// Command tailseal-bench measures the real binary: it writes a file of
// realistic audit lines, runs `tailseal run` on it until the last line is
// durable in the store, and prints lines/s, MB/s, CPU seconds and peak RSS
// of the agent process (from wait4 rusage); then it times `tailseal verify`
// over that store on one core.
//
//	go build -o /tmp/tailseal ./cmd/tailseal
//	go run ./cmd/tailseal-bench -bin /tmp/tailseal -lines 1000000
//
// With -baseline /tmp/tailseal-old (a build of an earlier commit) the
// older binary ingests in the same rounds and verifies the store it made
// of the same input, so a change is measured against its parent in one
// run; the median ratio of CPU per line is printed too.
//
// With -nats embedded (a nats-server with JetStream in this process, on
// the same cores) or -nats nats://host:4222 (an external server), one more
// contender runs -bin in the first -pii mode with the JetStream sink on,
// publishing into the stream TAILSEAL_BENCH (deleted before each of its
// runs); its row also gives how long publishing every record took, and
// the run ends with the median ratio of ingest with the sink on to off:
//
//	go run ./cmd/tailseal-bench -bin /tmp/tailseal -pii hash -nats embedded -rsyslogd none -runs 3
//
// With -latency 30s it instead runs the agent in process while a writer
// appends -rate lines a second, and prints the percentiles of the time from
// each line's write() to the fsync that made it durable.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

func main() {
	bin := flag.String("bin", "tailseal", "path to the tailseal binary")
	lines := flag.Int("lines", 1000000, "lines to ingest")
	keep := flag.String("keep", "", "copy the resulting data dir here (for other benchmarks)")
	modes := flag.String("pii", "hash,off", "PII modes to ingest with, in this order, in one run")
	rsyslogd := flag.String("rsyslogd", "", "path to rsyslogd to compare with (imfile -> omfile, plain copy); empty: look in PATH, none: skip")
	lat := flag.Duration("latency", 0, "instead: measure write-to-fsync latency for this long, in process, at -rate lines/s")
	rate := flag.Int("rate", 10000, "lines per second for -latency")
	runs := flag.Int("runs", 1, "rounds: each contender runs once per round, in reversed order every other round; ratios are medians")
	baseline := flag.String("baseline", "", "another tailseal binary (an older build) to run as one more contender, in the first -pii mode, and to verify beside -bin")
	natsSpec := flag.String("nats", "", "one more contender, -bin in the first -pii mode with the JetStream sink on: embedded (a nats-server in this process) or a server URL")
	flag.Parse()
	if *lat > 0 {
		if err := latency(*rate, *lat); err != nil {
			fmt.Fprintln(os.Stderr, "tailseal-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *rsyslogd == "" {
		if p, err := exec.LookPath("rsyslogd"); err == nil {
			*rsyslogd = p
		}
	}
	if err := run(*bin, *baseline, *natsSpec, *lines, *keep, strings.Split(*modes, ","), *rsyslogd, max(*runs, 1)); err != nil {
		fmt.Fprintln(os.Stderr, "tailseal-bench:", err)
		os.Exit(1)
	}
}

func run(bin, baseline, natsSpec string, n int, keep string, modes []string, rsyslogd string, runs int) error {
	dir, err := os.MkdirTemp("", "tailseal-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var js *natsTarget
	if natsSpec != "" {
		if js, err = startNATS(natsSpec, dir); err != nil {
			return err
		}
		defer js.close()
		fmt.Printf("JetStream: %s, stream %s\n", js.url, benchStream)
	}
	src := filepath.Join(dir, "logs", "audit.log")
	os.MkdirAll(filepath.Dir(src), 0o755)
	f, err := os.Create(src)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		w.WriteString(benchdata.Line(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fi, _ := f.Stat()
	f.Close()
	size := fi.Size()
	fmt.Printf("%d lines, %.1f MB\n", n, float64(size)/1e6)
	fmt.Printf("%-16s %12s %8s %8s %10s\n", "", "lines/s", "MB/s", "CPU s", "peak RSS")
	contenders := slices.Clone(modes)
	if baseline != "" {
		contenders = append(contenders, "baseline")
	}
	if js != nil {
		contenders = append(contenders, "nats")
	}
	if rsyslogd != "" && rsyslogd != "none" {
		contenders = append(contenders, "rsyslog")
	}
	// Several rounds, the order reversed every other round, so that neither
	// side always runs on a warmer page cache or a quieter machine.
	rates, cpus := map[string][]float64{}, map[string][]float64{}
	var data string
	for round := 1; round <= runs; round++ {
		if runs > 1 {
			fmt.Printf("round %d\n", round)
		}
		order := slices.Clone(contenders)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, c := range order {
			var rate float64
			var err error
			// What the last contender wrote (its store, a stream) is written
			// back now, not during the next one's run.
			syscall.Sync()
			switch c {
			case "rsyslog":
				out := filepath.Join(dir, "rsyslog")
				os.RemoveAll(out)
				rate, err = rsyslog(rsyslogd, src, out, size)
			case "baseline":
				data = filepath.Join(dir, "data-baseline")
				os.RemoveAll(data)
				rate, err = ingest(baseline, "baseline pii="+modes[0], src, data, modes[0], n, size, nil)
			case "nats":
				data = filepath.Join(dir, "data-nats")
				os.RemoveAll(data)
				if err = js.reset(); err == nil {
					rate, err = ingest(bin, "tailseal +nats pii="+modes[0], src, data, modes[0], n, size, js)
				}
			default:
				data = filepath.Join(dir, "data-"+c)
				os.RemoveAll(data)
				rate, err = ingest(bin, "tailseal pii="+c, src, data, c, n, size, nil)
			}
			if err != nil {
				return err
			}
			rates[c] = append(rates[c], rate)
			cpus[c] = append(cpus[c], lastCPU)
		}
	}
	printRatios(contenders, rates, cpus)
	if js != nil {
		printRatio("JetStream sink on / off, pii="+modes[0], rates["nats"], rates[modes[0]])
	}
	data = filepath.Join(dir, "data-"+modes[0]) // from the last round
	if keep != "" {
		if out, err := exec.Command("cp", "-a", data, keep).CombinedOutput(); err != nil {
			return fmt.Errorf("keep data dir: %v %s", err, out)
		}
	}
	if baseline == "" {
		return verify(bin, data)
	}
	return verifyBoth(bin, baseline, data, filepath.Join(dir, "data-baseline"), runs)
}

// printRatios prints the median ratio of the first contender's rates to
// each other's, round by round, and of its CPU per line to the
// baseline's (the cost of a change, when the machine is busy: the rates
// move with the load, the CPU a line takes much less).
func printRatios(contenders []string, rates, cpus map[string][]float64) {
	first := contenders[0]
	median := func(a, b []float64) (float64, float64, float64, int) {
		var ratios []float64
		for i := range a {
			ratios = append(ratios, a[i]/b[i])
		}
		slices.Sort(ratios)
		return ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1], len(ratios)
	}
	for _, c := range contenders[1:] {
		m, lo, hi, n := median(rates[first], rates[c])
		fmt.Printf("ratio %s / %s: median %.2f over %d rounds (min %.2f, max %.2f)\n", label(first), label(c), m, n, lo, hi)
		if c == "baseline" {
			m, lo, hi, n = median(cpus[first], cpus[c])
			fmt.Printf("CPU per line %s / %s: median %.3f over %d rounds (min %.3f, max %.3f)\n", label(first), label(c), m, n, lo, hi)
		}
	}
}

// printRatio prints the median ratio of a's rates to b's, round by round.
func printRatio(what string, a, b []float64) {
	var ratios []float64
	for i := range a {
		ratios = append(ratios, a[i]/b[i])
	}
	slices.Sort(ratios)
	fmt.Printf("ratio %s: median %.2f over %d rounds (min %.2f, max %.2f)\n",
		what, ratios[len(ratios)/2], len(ratios), ratios[0], ratios[len(ratios)-1])
}

// verifyBoth has both binaries verify, in alternated order, each the
// store it made of the same input in the last round (an older build may
// not know a newer store's checkpoints: the Merkle tree heads).
func verifyBoth(bin, baseline, data, baselineData string, runs int) error {
	for round := 1; round <= runs; round++ {
		pair := [][3]string{{"bin", bin, data}, {"baseline", baseline, baselineData}}
		if round%2 == 0 {
			pair[0], pair[1] = pair[1], pair[0]
		}
		for _, b := range pair {
			fmt.Printf("%-9s ", b[0])
			if err := verify(b[1], b[2]); err != nil {
				return err
			}
		}
	}
	return nil
}

// ingest runs the agent on src until all n lines are durable and prints a
// row. With js, the agent publishes to it, and after the ingest it waits
// until the stream holds every stored record and prints how fast they
// were published; the row's CPU then includes that wait.
func ingest(bin, name, src, data, mode string, n int, size int64, js *natsTarget) (float64, error) {
	// Default settings otherwise: epoch keys generated on first start (K0 in
	// keys/, which verify then uses to check every signature), checkpoints on.
	cmd := exec.Command(bin, "run")
	cmd.Env = append(os.Environ(), "TAILSEAL_SOURCE="+src, "TAILSEAL_DATA_DIR="+data, "TAILSEAL_LOG_LEVEL=error",
		"TAILSEAL_LISTEN=", "TAILSEAL_PII_MODE="+mode)
	if js != nil {
		cmd.Env = append(cmd.Env, js.env()...)
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	last := uint64(0)
	for ; last < uint64(n); time.Sleep(10 * time.Millisecond) {
		last = lastSeq(filepath.Join(data, "store"))
	}
	wall := time.Since(start)
	var pubWall time.Duration
	var pubAtEnd uint64 // published when the ingest ended
	if js != nil {
		pubAtEnd = js.published()
		var err error
		if pubWall, err = js.waitPublished(last, start); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, err
		}
	}
	_, cpu, peak := stop(cmd, start)
	rate := row(name, n, size, wall, cpu, peak)
	if js != nil {
		after := (pubWall - wall).Seconds()
		fmt.Printf("%-16s published %d records in %.2fs = %.0f records/s: %d during the ingest, the rest in %.2fs after it = %.0f records/s\n",
			"", last, pubWall.Seconds(), float64(last)/pubWall.Seconds(), pubAtEnd, after, float64(last-pubAtEnd)/after)
	}
	return rate, nil
}

// rsyslog runs rsyslogd (imfile in inotify mode -> omfile with a %msg%
// template: a plain copy, no parsing or signing) over the same file until
// its output holds every byte, and prints a row like ingest.
func rsyslog(bin, src, dir string, size int64) (float64, error) {
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o755); err != nil {
		return 0, err
	}
	out := filepath.Join(dir, "out.log")
	conf := filepath.Join(dir, "rsyslog.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`global(workDirectory="%s/work" maxMessageSize="1m")
module(load="imfile" mode="inotify")
template(name="msg" type="string" string="%%msg%%\n")
ruleset(name="copy") { action(type="omfile" file="%s" template="msg") }
input(type="imfile" file="%s" tag="audit" ruleset="copy" freshStartTail="off")
`, dir, out, src)), 0o644)
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "pid"))
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	deadline := start.Add(5 * time.Minute)
	for {
		fi, err := os.Stat(out)
		if err == nil && fi.Size() >= size {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return 0, fmt.Errorf("rsyslog: output incomplete after 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wall, cpu, peak := stop(cmd, start)
	lines, err := countLines(out)
	if err != nil {
		return 0, err
	}
	return row("rsyslog", lines, size, wall, cpu, peak), nil
}

// stop ends a process that has done its work and returns the time since
// start, its CPU time and its peak RSS in MiB.
func stop(cmd *exec.Cmd, start time.Time) (wall, cpu time.Duration, peakMiB float64) {
	wall = time.Since(start)
	peakMiB = vmHWM(cmd.Process.Pid) // before it exits
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return wall, time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), peakMiB
}

// row prints one line of the table and returns lines/s.
// lastCPU is the CPU per line of the row printed last.
var lastCPU float64

func row(name string, lines int, size int64, wall, cpu time.Duration, peakMiB float64) float64 {
	rate := float64(lines) / wall.Seconds()
	lastCPU = cpu.Seconds() / float64(lines)
	fmt.Printf("%-16s %12.0f %8.1f %8.2f %7.1f MiB\n", name, rate, float64(size)/1e6/wall.Seconds(), cpu.Seconds(), peakMiB)
	return rate
}

// countLines counts newlines without holding the file in memory.
func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	n := 0
	for {
		m, err := f.Read(buf)
		n += bytes.Count(buf[:m], []byte("\n"))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// vmHWM is a running process's peak resident set in MiB, counted from its
// exec. (wait4's ru_maxrss is not used for it: a child started with
// CLONE_VM|CLONE_VFORK also counts the parent's resident memory before exec.)
func vmHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return -1
}

// verify times `tailseal verify` on the store just made, on one core.
func verify(bin, data string) error {
	cmd := exec.Command(bin, "verify", "--json")
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+data, "GOMAXPROCS=1")
	var out bytes.Buffer
	cmd.Stdout = &out
	debug.FreeOSMemory() // keep this process small: the child's ru_maxrss counts it until exec
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("verify: %v\n%s", err, out.String())
	}
	wall := time.Since(start)
	var sum struct {
		Summary struct {
			Records    int   `json:"records"`
			Bytes      int64 `json:"bytes"`
			Signatures bool  `json:"signatures_checked"`
		} `json:"summary"`
	}
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], &sum); err != nil {
		return fmt.Errorf("verify output: %v", err)
	}
	if !sum.Summary.Signatures {
		return fmt.Errorf("verify did not check signatures: the measurement would flatter it")
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	fmt.Printf("verify: %d records, %.1f MB of records in %.2fs = %.0f MB/s (GOMAXPROCS=1, CPU %.2fs, peak RSS %.1f MiB)\n",
		sum.Summary.Records, float64(sum.Summary.Bytes)/1e6, wall.Seconds(), float64(sum.Summary.Bytes)/1e6/wall.Seconds(),
		time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds(), float64(ru.Maxrss)/1024)
	return nil
}

// lastSeq reads the seq of the last durable line of the newest segment.
func lastSeq(dir string) uint64 {
	segs, err := store.List(dir)
	if err != nil || len(segs) == 0 {
		return 0
	}
	f, err := os.Open(filepath.Join(dir, segs[len(segs)-1].Name))
	if err != nil {
		return 0
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	b := make([]byte, min(fi.Size(), 8<<10)) // only the tail: cheap to poll
	f.ReadAt(b, fi.Size()-int64(len(b)))
	b = bytes.TrimRight(b, "\n")
	seq, _ := record.Seq(b[bytes.LastIndexByte(b, '\n')+1:])
	return seq
}

func label(c string) string {
	switch c {
	case "rsyslog", "baseline":
		return c
	case "nats":
		return "tailseal +nats"
	}
	return "tailseal pii=" + c
}

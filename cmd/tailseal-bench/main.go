// Command tailseal-bench measures the real binary: it writes a file of
// realistic audit lines, runs `tailseal run` on it until the last line is
// durable in the store, and prints lines/s, MB/s, CPU seconds and peak RSS
// of the agent process (from wait4 rusage); then it times `tailseal verify`
// over that store on one core.
//
//	go build -o /tmp/tailseal ./cmd/tailseal
//	go run ./cmd/tailseal-bench -bin /tmp/tailseal -lines 1000000
//
// Log daemons that copy the same file, line for line, run beside it as
// more rows (-rows, see copiers.go): by default rsyslog tuned for
// throughput with sync="on" (durable like the agent) and without, and
// rsyslog's defaults; syslog-ng when -rows names it. A daemon that is not
// installed is skipped with a message. Every row gives lines/s and the
// child's CPU seconds per million lines (user and system, from wait4),
// the agent's too; the run ends with each contender's median over
// the rounds and the ratios of the first contender (tailseal in the first
// -pii mode) to each other one, round by round, of lines/s and of CPU per
// line:
//
//	go run ./cmd/tailseal-bench -bin /tmp/tailseal -pii hash -runs 5 \
//		-rows tailseal,rsyslog-tuned-sync,rsyslog-tuned,rsyslog-default,syslog-ng
//
// With -baseline /tmp/tailseal-old (a build of an earlier commit) the
// older binary ingests in the same rounds and verifies the store it made
// of the same input, so a change is measured against its parent in one
// run.
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
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "tailseal", "path to the tailseal binary")
	flag.IntVar(&o.lines, "lines", 1000000, "lines to ingest")
	flag.StringVar(&o.keep, "keep", "", "copy the resulting data dir here (for other benchmarks)")
	modes := flag.String("pii", "hash,off", "PII modes to ingest with, in this order, in one run (the tailseal row); hash+zstd is hash with TAILSEAL_COMPRESSION=zstd")
	rows := flag.String("rows", "tailseal,rsyslog-tuned-sync,rsyslog-tuned,rsyslog-default",
		"contenders, in this order, of tailseal (one per -pii mode), rsyslog-tuned-sync, rsyslog-tuned, rsyslog-default and syslog-ng; one not installed is skipped with a message")
	rsyslogd := flag.String("rsyslogd", "", "path to rsyslogd for the rsyslog rows; empty: look in PATH, none: skip them")
	syslogNG := flag.String("syslog-ng", "", "path to syslog-ng, or the prefix it was unpacked into (dpkg -x); empty: PATH, then /opt/syslog-ng; none: skip")
	lat := flag.Duration("latency", 0, "instead: measure write-to-fsync latency for this long, in process, at -rate lines/s")
	rate := flag.Int("rate", 10000, "lines per second for -latency")
	flag.IntVar(&o.runs, "runs", 1, "rounds: each contender runs once per round, in reversed order every other round; ratios are medians")
	flag.StringVar(&o.baseline, "baseline", "", "another tailseal binary (an older build) to run as one more contender, in the first -pii mode, and to verify beside -bin")
	flag.StringVar(&o.natsSpec, "nats", "", "one more contender, -bin in the first -pii mode with the JetStream sink on: embedded (a nats-server in this process) or a server URL")
	flag.Parse()
	if *lat > 0 {
		if err := latency(*rate, *lat); err != nil {
			fmt.Fprintln(os.Stderr, "tailseal-bench:", err)
			os.Exit(1)
		}
		return
	}
	o.modes = strings.Split(*modes, ",")
	o.runs = max(o.runs, 1)
	var err error
	if o.rows, o.copiers, err = contenders(strings.Split(*rows, ","), *rsyslogd, *syslogNG); err == nil {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tailseal-bench:", err)
		os.Exit(1)
	}
}

// options are the benchmark's settings, from its flags.
type options struct {
	bin, baseline, natsSpec, keep string
	lines, runs                   int
	modes                         []string
	rows                          []string // "tailseal" and the copiers' names, in -rows order
	copiers                       map[string]copier
}

// contenders checks the -rows names and finds the daemons they need. A
// daemon that is not installed takes its rows out, with one line that
// says so (and, for syslog-ng, how to install it beside rsyslog).
func contenders(names []string, rsyslogd, syslogNG string) ([]string, map[string]copier, error) {
	if rsyslogd == "" {
		if p, err := exec.LookPath("rsyslogd"); err == nil {
			rsyslogd = p
		}
	}
	var rows []string
	copiers := map[string]copier{}
	for _, name := range names {
		switch {
		case name == "tailseal":
			rows = append(rows, name)
		case strings.HasPrefix(name, "rsyslog-"):
			c, ok := rsyslogCopiers(rsyslogd)[name]
			if !ok {
				return nil, nil, fmt.Errorf("-rows: no contender %q", name)
			}
			switch rsyslogd {
			case "none":
				continue
			case "":
				fmt.Printf("%s: skipped, no rsyslogd in PATH (apt-get install rsyslog)\n", name)
				continue
			}
			rows, copiers[name] = append(rows, name), c
		case name == "syslog-ng":
			c, msg := findSyslogNG(syslogNG)
			fmt.Println(msg)
			if c.name != "" {
				rows, copiers[name] = append(rows, name), c
			}
		default:
			return nil, nil, fmt.Errorf("-rows: no contender %q (tailseal, rsyslog-tuned-sync, rsyslog-tuned, rsyslog-default, syslog-ng)", name)
		}
	}
	if rsyslogd != "" && rsyslogd != "none" && slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(r, "rsyslog-") }) {
		if out, err := exec.Command(rsyslogd, "-v").CombinedOutput(); err == nil {
			fmt.Printf("rsyslog: %s (%s)\n", rsyslogd, firstLine(out))
		}
	}
	return rows, copiers, nil
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "tailseal-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var js *natsTarget
	if o.natsSpec != "" {
		if js, err = startNATS(o.natsSpec, dir); err != nil {
			return err
		}
		defer js.close()
		fmt.Printf("JetStream: %s, stream %s\n", js.url, benchStream)
	}
	n, modes := o.lines, o.modes
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
	var contenders []string
	for _, r := range o.rows {
		if r != "tailseal" {
			contenders = append(contenders, r)
			continue
		}
		contenders = append(contenders, modes...)
		if o.baseline != "" {
			contenders = append(contenders, "baseline")
		}
		if js != nil {
			contenders = append(contenders, "nats")
		}
	}
	if len(contenders) == 0 {
		return fmt.Errorf("no contender to run")
	}
	fmt.Printf("load average %s at the start\n", loadavg())
	printHeader()
	// Several rounds, the order reversed every other round, so that neither
	// side always runs on a warmer page cache or a quieter machine.
	results := map[string][]result{}
	var data string
	for round := 1; round <= o.runs; round++ {
		if o.runs > 1 {
			fmt.Printf("round %d (load average %s)\n", round, loadavg())
		}
		order := slices.Clone(contenders)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, c := range order {
			var r result
			var err error
			// What the last contender wrote (its store, a stream) is written
			// back now, not during the next one's run.
			syscall.Sync()
			switch c {
			case "baseline":
				data = filepath.Join(dir, "data-baseline")
				os.RemoveAll(data)
				r, err = ingest(o.baseline, "baseline pii="+modes[0], src, data, modes[0], n, size, nil)
			case "nats":
				data = filepath.Join(dir, "data-nats")
				os.RemoveAll(data)
				if err = js.reset(); err == nil {
					r, err = ingest(o.bin, "tailseal +nats pii="+modes[0], src, data, modes[0], n, size, js)
				}
			default:
				if cp, ok := o.copiers[c]; ok {
					r, err = cp.copy(filepath.Join(dir, c), src, n, size)
					break
				}
				data = filepath.Join(dir, "data-"+c)
				os.RemoveAll(data)
				r, err = ingest(o.bin, "tailseal pii="+c, src, data, c, n, size, nil)
			}
			if err != nil {
				return err
			}
			results[c] = append(results[c], r)
		}
	}
	fmt.Printf("load average %s at the end\n", loadavg())
	printSummary(contenders, results)
	if js != nil {
		printRatio("JetStream sink on / off, pii="+modes[0], rate(results["nats"]), rate(results[modes[0]]))
	}
	if !slices.Contains(contenders, modes[0]) {
		return nil // no store to verify
	}
	data = filepath.Join(dir, "data-"+modes[0]) // from the last round
	if o.keep != "" {
		if out, err := exec.Command("cp", "-a", data, o.keep).CombinedOutput(); err != nil {
			return fmt.Errorf("keep data dir: %v %s", err, out)
		}
	}
	if o.baseline == "" {
		return verify(o.bin, data)
	}
	return verifyBoth(o.bin, o.baseline, data, filepath.Join(dir, "data-baseline"), o.runs)
}

func rate(rs []result) []float64 {
	var a []float64
	for _, r := range rs {
		a = append(a, r.rate())
	}
	return a
}

func cpuPerM(rs []result) []float64 {
	var a []float64
	for _, r := range rs {
		a = append(a, r.cpuPerM())
	}
	return a
}

// spread is the median, min and max of a.
func spread(a []float64) (median, lo, hi float64) {
	s := slices.Sorted(slices.Values(a))
	return s[len(s)/2], s[0], s[len(s)-1]
}

// ratios is a[i]/b[i], round by round.
func ratios(a, b []float64) []float64 {
	var r []float64
	for i := range a {
		r = append(r, a[i]/b[i])
	}
	return r
}

// printSummary prints each contender's median (min–max) over the rounds,
// then the ratios of the first contender to each other one, round by
// round: of lines/s and of CPU per line. Within a round the contenders
// ran minutes apart at most, so on a busy machine the ratios hold better
// than the rates, and the CPU a line takes moves much less than either.
func printSummary(contenders []string, results map[string][]result) {
	first := contenders[0]
	fmt.Printf("over %d rounds: median (min-max)\n", len(results[first]))
	for _, c := range contenders {
		rm, rlo, rhi := spread(rate(results[c]))
		cm, clo, chi := spread(cpuPerM(results[c]))
		var rss []float64
		for _, r := range results[c] {
			rss = append(rss, r.peakMiB)
		}
		_, slo, shi := spread(rss)
		fmt.Printf("%-20s lines/s %.0f (%.0f-%.0f)  CPU s/1M %.2f (%.2f-%.2f)  peak RSS %.1f-%.1f MiB\n",
			label(c), rm, rlo, rhi, cm, clo, chi, slo, shi)
	}
	for _, c := range contenders[1:] {
		m, lo, hi := spread(ratios(rate(results[first]), rate(results[c])))
		fmt.Printf("%s / %s: lines/s median %.2f (min %.2f, max %.2f)", label(first), label(c), m, lo, hi)
		m, lo, hi = spread(ratios(cpuPerM(results[first]), cpuPerM(results[c])))
		fmt.Printf(", CPU per line median %.3f (min %.3f, max %.3f)\n", m, lo, hi)
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
func ingest(bin, name, src, data, mode string, n int, size int64, js *natsTarget) (result, error) {
	// Default settings otherwise: epoch keys generated on first start (K0 in
	// keys/, which verify then uses to check every signature), checkpoints on.
	cmd := exec.Command(bin, "run")
	mode, compression, _ := strings.Cut(mode, "+") // hash+zstd
	cmd.Env = append(os.Environ(), "TAILSEAL_SOURCE="+src, "TAILSEAL_DATA_DIR="+data, "TAILSEAL_LOG_LEVEL=error",
		"TAILSEAL_LISTEN=", "TAILSEAL_PII_MODE="+mode)
	if compression != "" {
		cmd.Env = append(cmd.Env, "TAILSEAL_COMPRESSION="+compression)
	}
	if js != nil {
		cmd.Env = append(cmd.Env, js.env()...)
	}
	cmd.Stderr = os.Stderr
	p, err := startProc(cmd)
	if err != nil {
		return result{}, err
	}
	last := uint64(0)
	for ; last < uint64(n); time.Sleep(10 * time.Millisecond) {
		last = lastSeq(filepath.Join(data, "store"))
		if err := p.exited(); err != nil {
			return result{}, fmt.Errorf("%s: exited with %d of %d lines stored: %v", name, last, n, err)
		}
	}
	wall := time.Since(p.start)
	var pubWall time.Duration
	var pubAtEnd uint64 // published when the ingest ended
	if js != nil {
		pubAtEnd = js.published()
		var err error
		if pubWall, err = js.waitPublished(last, p.start); err != nil {
			p.kill()
			return result{}, err
		}
	}
	r := p.stop()
	r.wall, r.lines = wall, n
	r.print(name, size, "")
	if js != nil {
		after := (pubWall - wall).Seconds()
		fmt.Printf("%-20s published %d records in %.2fs = %.0f records/s: %d during the ingest, the rest in %.2fs after it = %.0f records/s\n",
			"", last, pubWall.Seconds(), float64(last)/pubWall.Seconds(), pubAtEnd, after, float64(last-pubAtEnd)/after)
	}
	return r, nil
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
	case "baseline", "rsyslog-tuned-sync", "rsyslog-tuned", "rsyslog-default", "syslog-ng":
		return c
	case "nats":
		return "tailseal +nats"
	}
	return "tailseal pii=" + c
}

// Command tailseal-bench measures the real binary: it writes a file of
// realistic audit lines, runs `tailseal run` on it until the last line is
// durable in the store, and prints lines/s, MB/s, CPU seconds and peak RSS
// of the agent process (from wait4 rusage); then it times `tailseal verify`
// over that store on one core.
//
//	go build -o /tmp/tailseal ./cmd/tailseal
//	go run ./cmd/tailseal-bench -bin /tmp/tailseal -lines 1000000
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
	"strings"
	"syscall"
	"time"

	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/record"
	"github.com/tailseal/tailseal/agent/store"
)

func main() {
	bin := flag.String("bin", "tailseal", "path to the tailseal binary")
	lines := flag.Int("lines", 1000000, "lines to ingest")
	keep := flag.String("keep", "", "copy the resulting data dir here (for other benchmarks)")
	modes := flag.String("pii", "hash,off", "PII modes to ingest with, in this order, in one run")
	flag.Parse()
	if err := run(*bin, *lines, *keep, strings.Split(*modes, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "tailseal-bench:", err)
		os.Exit(1)
	}
}

func run(bin string, n int, keep string, modes []string) error {
	dir, err := os.MkdirTemp("", "tailseal-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
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
	var first float64
	var data string
	for i, mode := range modes {
		data = filepath.Join(dir, "data-"+mode)
		rate, err := ingest(bin, src, data, mode, n, size)
		if err != nil {
			return err
		}
		if i == 0 {
			first = rate
		} else {
			fmt.Printf("ratio %s/%s: %.2f\n", modes[0], mode, first/rate)
		}
	}
	data = filepath.Join(dir, "data-"+modes[0])
	if keep != "" {
		if out, err := exec.Command("cp", "-a", data, keep).CombinedOutput(); err != nil {
			return fmt.Errorf("keep data dir: %v %s", err, out)
		}
	}
	return verify(bin, data)
}

// ingest runs the agent on src until all n lines are durable and prints a row.
func ingest(bin, src, data, mode string, n int, size int64) (float64, error) {
	// Default settings otherwise: epoch keys generated on first start (K0 in
	// keys/, which verify then uses to check every signature), checkpoints on.
	cmd := exec.Command(bin, "run")
	cmd.Env = append(os.Environ(), "TAILSEAL_SOURCE="+src, "TAILSEAL_DATA_DIR="+data, "TAILSEAL_LOG_LEVEL=error",
		"TAILSEAL_LISTEN=", "TAILSEAL_PII_MODE="+mode)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	for last := uint64(0); last < uint64(n); time.Sleep(10 * time.Millisecond) {
		last = lastSeq(filepath.Join(data, "store"))
	}
	wall := time.Since(start)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rate := float64(n) / wall.Seconds()
	fmt.Printf("%-16s %12.0f %8.1f %8.2f %7.1f MiB\n", "tailseal pii="+mode, rate,
		float64(size)/1e6/wall.Seconds(), cpu.Seconds(), float64(ru.Maxrss)/1024)
	return rate, nil
}

// verify times `tailseal verify` on the store just made, on one core.
func verify(bin, data string) error {
	cmd := exec.Command(bin, "verify", "--json")
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+data, "GOMAXPROCS=1")
	var out bytes.Buffer
	cmd.Stdout = &out
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

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
	"syscall"
	"time"

	"github.com/tailseal/tailseal/agent/record"
	"github.com/tailseal/tailseal/agent/store"
)

func main() {
	bin := flag.String("bin", "tailseal", "path to the tailseal binary")
	lines := flag.Int("lines", 1000000, "lines to ingest")
	keep := flag.String("keep", "", "copy the resulting data dir here (for other benchmarks)")
	flag.Parse()
	if err := run(*bin, *lines, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "tailseal-bench:", err)
		os.Exit(1)
	}
}

var types = []string{"lead_ingested", "crm_write", "email_sent", "workflow_started", "performance", "error"}

func line(n int) string {
	if n%1000 == 999 {
		return fmt.Sprintf("WARN plain text line %d from a misconfigured logger", n)
	}
	return fmt.Sprintf(`{"timestamp":"2026-02-04T20:%02d:%02d.%06dZ","event_type":"%s","actor":"system","lead_id":"LEAD-%07d","workflow":"sales_lead_management","details":{"source":"web_form","campaign":"spring_2026","duration_ms":%d,"status":"ok"}}`,
		n/60000%60, n/1000%60, n%1000000, types[n%len(types)], n, n%900+20)
}

func run(bin string, n int, keep string) error {
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
		w.WriteString(line(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fi, _ := f.Stat()
	f.Close()
	size := fi.Size()

	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "run")
	// Default settings: epoch keys generated on first start (K0 in keys/,
	// which verify then uses to check every signature), checkpoints on.
	cmd.Env = append(os.Environ(), "TAILSEAL_SOURCE="+src, "TAILSEAL_DATA_DIR="+data, "TAILSEAL_LOG_LEVEL=error", "TAILSEAL_LISTEN=")
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	for last := uint64(0); last < uint64(n); time.Sleep(10 * time.Millisecond) {
		last = lastSeq(filepath.Join(data, "store"))
	}
	wall := time.Since(start)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("%-10s %12s %8s %8s %10s\n", "", "lines/s", "MB/s", "CPU s", "peak RSS")
	fmt.Printf("%-10s %12.0f %8.1f %8.2f %7.1f MiB\n", "tailseal", float64(n)/wall.Seconds(),
		float64(size)/1e6/wall.Seconds(), cpu.Seconds(), float64(ru.Maxrss)/1024)
	fmt.Printf("(%d lines, %.1f MB, wall %.2fs)\n", n, float64(size)/1e6, wall.Seconds())
	if keep != "" {
		if out, err := exec.Command("cp", "-a", data, keep).CombinedOutput(); err != nil {
			return fmt.Errorf("keep data dir: %v %s", err, out)
		}
	}
	return verify(bin, data)
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

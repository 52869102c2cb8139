package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/benchdata"
)

var (
	bigStoreOnce sync.Once
	bigStoreDir  string
	bigStoreErr  error
)

// bigStore is a store that takes a read command a second or more to scan
// on this machine: 300,000 events in 8 MB segments.
func bigStore(t *testing.T) string {
	if raceEnabled {
		t.Skip("building a big store under the race detector takes minutes; the plain run covers this")
	}
	bigStoreOnce.Do(func() {
		bigStoreDir, bigStoreErr = os.MkdirTemp("", "tailseal-big")
		if bigStoreErr == nil {
			bigStoreErr = benchdata.BuildStore(benchdata.StoreOptions{DataDir: bigStoreDir, Events: 300_000,
				Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Step: time.Second,
				SegmentMax: 8 << 20, HMACKey: cliHMACKey, PIIKey: cliPIIKey})
		}
	})
	if bigStoreErr != nil {
		t.Fatal(bigStoreErr)
	}
	return bigStoreDir
}

// readingStore reports whether process pid has a segment of the store open:
// the command is past its start-up and reading.
func readingStore(pid int, storeDir string) bool {
	fds, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "fd", "*"))
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, storeDir) && strings.Contains(target, ".jsonl") {
			return true
		}
	}
	return false
}

// Ctrl-C stops a read command on a big store within a second, with exit
// code 130 and nothing written: no export file, no temporary file, no
// report page.
func TestReadCommandsStopOnInterrupt(t *testing.T) {
	data := bigStore(t)
	out := t.TempDir()
	cases := []struct {
		name string
		args []string
	}{
		{"export csv", []string{"export", "--format", "csv", "--output", filepath.Join(out, "all.csv")}},
		{"export jsonl", []string{"export", "--format", "jsonl", "--output", filepath.Join(out, "all.jsonl")}},
		// Without filters stats adds up the index's summaries and ends at
		// once; a filter makes it read every segment.
		{"stats", []string{"stats", "--json", "--workflow", "crm_sync"}},
		{"query", []string{"query", "--type", "error", "--workflow", "crm_sync", "--limit", "1000000", "--json"}},
		{"errors", []string{"errors", "--workflow", "crm_sync", "--limit", "1000000"}},
		{"performance", []string{"performance"}},
		{"report", []string{"report", "--verify=false", "--output", filepath.Join(out, "reports")}},
		{"report verifying", []string{"report", "--output", filepath.Join(out, "reports")}},
		{"verify", []string{"verify"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(binPath, c.args...)
			cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+data, "TAILSEAL_PII_KEY=0202020202020202020202020202020202020202020202020202020202020202")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			waitFor(t, "the command to read the store", 10*time.Second, func() bool {
				return readingStore(cmd.Process.Pid, filepath.Join(data, "store"))
			})
			cmd.Process.Signal(syscall.SIGINT)
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("still running 1 s after SIGINT; stderr: %s", stderr.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 130 {
				t.Errorf("exit: %v, want code 130; stderr: %s", err, stderr.String())
			}
			left, _ := filepath.Glob(filepath.Join(out, "*"))
			left2, _ := filepath.Glob(filepath.Join(out, ".*"))
			if len(left)+len(left2) > 0 {
				t.Errorf("left behind: %v %v", left, left2)
			}
		})
	}
}

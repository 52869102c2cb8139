package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"runtime/debug"
	"slices"
	"syscall"
	"time"
)

// verifyRun is one `tailseal verify` of the store.
type verifyRun struct {
	wall, cpu time.Duration
	rssMiB    float64
	bytes     int64 // of records, uncompressed: what verify read
}

func (r verifyRun) mbps() float64 { return float64(r.bytes) / 1e6 / r.wall.Seconds() }

// verifyRounds times `tailseal verify --json` of the store with bin and
// with old, alternated round by round (the order reversed every other
// round, so that neither always runs second), then prints each one's
// throughput and the ratio of their speeds, round by round: the machine
// may be shared, and the ratio of two runs a few seconds apart moves
// less than either.
func verifyRounds(bin, old string, events int, data string, rounds int) error {
	data, cleanup, err := ensureStore(events, data)
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Printf("%-5s %-4s %8s %8s %8s %10s\n", "round", "bin", "wall s", "CPU s", "MB/s", "peak RSS")
	runs := map[string][]verifyRun{}
	for round := 1; round <= rounds; round++ {
		order := []string{"new", "old"}
		if round%2 == 0 {
			order = []string{"old", "new"}
		}
		for _, which := range order {
			path := map[string]string{"new": bin, "old": old}[which]
			r, err := verifyOnce(path, data)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			runs[which] = append(runs[which], r)
			fmt.Printf("%-5d %-4s %8.2f %8.2f %8.0f %6.1f MiB\n", round, which, r.wall.Seconds(), r.cpu.Seconds(), r.mbps(), r.rssMiB)
		}
	}
	fmt.Printf("\nrecords: %.1f MB, uncompressed (min / median / max over %d rounds)\n", float64(runs["new"][0].bytes)/1e6, rounds)
	for _, which := range []string{"new", "old"} {
		rs := runs[which]
		fmt.Printf("%s: %s MB/s wall, %s s CPU, %s MiB peak RSS\n", which,
			spreadRuns(rs, func(r verifyRun) float64 { return r.mbps() }, "%.0f"),
			spreadRuns(rs, func(r verifyRun) float64 { return r.cpu.Seconds() }, "%.2f"),
			spreadRuns(rs, func(r verifyRun) float64 { return r.rssMiB }, "%.1f"))
	}
	var speedup, cpu []float64
	for i := range rounds {
		n, o := runs["new"][i], runs["old"][i]
		speedup = append(speedup, o.wall.Seconds()/n.wall.Seconds())
		cpu = append(cpu, n.cpu.Seconds()/o.cpu.Seconds())
	}
	fmt.Printf("speed new/old (wall), round by round: %s\n", spreadOf(speedup, "%.2f"))
	fmt.Printf("CPU new/old, round by round: %s\n", spreadOf(cpu, "%.2f"))
	return nil
}

// verifyOnce runs `tailseal verify --json` on the store and reads its
// summary: it must have checked every signature and found nothing, or
// the figure would not be verify's.
func verifyOnce(bin, data string) (verifyRun, error) {
	cmd := exec.Command(bin, "verify", "--json")
	cmd.Env = env(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	debug.FreeOSMemory() // keep this process small: the child's ru_maxrss counts it until exec
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		return verifyRun{}, fmt.Errorf("verify: %v\n%s%s", err, out.String(), stderr.String())
	}
	r := verifyRun{wall: time.Since(t0)}
	var sum struct {
		Summary struct {
			Bytes      int64 `json:"bytes"`
			Signatures bool  `json:"signatures_checked"`
			Notes      bool  `json:"checkpoint_signatures_checked"`
			TreeHeads  int   `json:"tree_heads"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &sum); err != nil {
		return r, fmt.Errorf("verify output (one summary, no findings, expected): %v\n%s", err, out.String())
	}
	if s := sum.Summary; !s.Signatures || !s.Notes || s.TreeHeads == 0 {
		return r, fmt.Errorf("verify did not check every signature and a tree head: the figure would flatter it: %s", out.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	r.rssMiB = float64(ru.Maxrss) / 1024
	r.bytes = sum.Summary.Bytes
	return r, nil
}

func spreadRuns(rs []verifyRun, f func(verifyRun) float64, format string) string {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return spreadOf(xs, format)
}

// spreadOf is "min / median / max".
func spreadOf(xs []float64, format string) string {
	xs = slices.Sorted(slices.Values(xs))
	median := xs[len(xs)/2]
	if len(xs)%2 == 0 {
		median = (xs[len(xs)/2-1] + median) / 2
	}
	return fmt.Sprintf(format+" / "+format+" / "+format, xs[0], median, xs[len(xs)-1])
}

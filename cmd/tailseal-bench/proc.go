package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a contender's process: started, polled until its work is done,
// then stopped and measured.
type proc struct {
	cmd   *exec.Cmd
	start time.Time
	done  chan struct{} // closed when the process has exited and been waited for
	err   error         // Wait's, once done is closed
}

func startProc(cmd *exec.Cmd) (*proc, error) {
	p := &proc{cmd: cmd, start: time.Now(), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited returns an error if the process has ended by itself, before
// it was stopped: it will not finish its work.
func (p *proc) exited() error {
	select {
	case <-p.done:
		if p.err == nil {
			return fmt.Errorf("exit status 0")
		}
		return p.err
	default:
		return nil
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// stop ends a process that has done its work and measures it: the time
// since its start, its CPU time (user and system, from wait4's rusage)
// and its peak RSS.
func (p *proc) stop() result {
	r := result{wall: time.Since(p.start), peakMiB: vmHWM(p.cmd.Process.Pid)} // VmHWM before it exits
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	ru := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return r
}

// result is one contender's run: one row of the table.
type result struct {
	lines   int
	wall    time.Duration
	cpu     time.Duration
	peakMiB float64
}

func (r result) rate() float64 { return float64(r.lines) / r.wall.Seconds() }

// cpuPerM is CPU seconds per million lines.
func (r result) cpuPerM() float64 { return r.cpu.Seconds() / float64(r.lines) * 1e6 }

const rowFormat = "%-20s %12s %8s %8s %10s %10s\n"

func printHeader() {
	fmt.Printf(rowFormat, "", "lines/s", "MB/s", "CPU s", "CPU s/1M", "peak RSS")
}

// print prints the row, with a note after it.
func (r result) print(name string, size int64, note string) {
	fmt.Printf("%-20s %12.0f %8.1f %8.2f %10.2f %6.1f MiB%s\n", name, r.rate(), float64(size)/1e6/r.wall.Seconds(),
		r.cpu.Seconds(), r.cpuPerM(), r.peakMiB, note)
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

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

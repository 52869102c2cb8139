package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's quick start, run exactly as written: its first shell block
// under "## Quick start", in a copy of the repository (it builds the
// binary and writes logs/ and data/ where it runs), with nothing of the
// test's environment that tailseal reads.
func TestReadmeQuickStart(t *testing.T) {
	root, block := shellBlock(t, "README.md", "## Quick start", "./tailseal verify")
	dir := copyRepo(t, root)
	out, err := runBlock(t, dir, block, 3*time.Minute, nil)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
		t.Fatalf("the quick start failed: %v\n%s\nagent.log:\n%s", err, out, log)
	}
	for _, want := range []string{"LEAD-1", "<email:", "intact"} {
		if !strings.Contains(out, want) {
			t.Errorf("the quick start printed no %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ana@example.com") {
		t.Errorf("the email came out in clear:\n%s", out)
	}
}

// The fleet walkthrough of docs/fleet.md, run exactly as written in a copy
// of the repository: a NATS server built with go install (once; the build
// cache keeps it), two agents, a collector, then verify and query over
// both origins. NATS_PORT, which the block reads, is a free port.
func TestFleetWalkthrough(t *testing.T) {
	root, block := shellBlock(t, filepath.Join("docs", "fleet.md"), "## The whole fleet on one machine", "tailseal collect")
	dir := copyRepo(t, root)
	out, err := runBlock(t, dir, block, 5*time.Minute, []string{"NATS_PORT=" + freePort(t)})
	if err != nil {
		var logs strings.Builder
		for _, f := range []string{"nats.log", "web-0/agent.log", "web-1/agent.log", "collect.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, "fleet", f))
			fmt.Fprintf(&logs, "\nfleet/%s:\n%s", f, b)
		}
		t.Fatalf("the fleet walkthrough failed: %v\n%s%s", err, out, logs.String())
	}
	for _, want := range []string{"web-0: intact", "web-1: intact", "all 2 origins: intact", "LEAD-web-0", "LEAD-web-1", "<email:"} {
		if !strings.Contains(out, want) {
			t.Errorf("the walkthrough printed no %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ana@example.com") {
		t.Errorf("the email came out in clear:\n%s", out)
	}
}

// shellBlock is the repository's root and the first shell block under the
// heading in the repository file name, which must contain want.
func shellBlock(t *testing.T, name, heading, want string) (root, block string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no section %q", name, heading)
	}
	_, block, ok = strings.Cut(after, "```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 || !strings.Contains(block, want) {
		t.Fatalf("no shell block with %q under %q in %s:\n%s", want, heading, name, after)
	}
	return root, block
}

// runBlock runs block with bash -e -o pipefail in dir, with extra and
// nothing of the test's environment that tailseal reads, and returns what
// it printed. The block and whatever it started in the background are one
// process group, killed when the block ends or runs out of time, so that
// no server or agent outlives a failed run.
func runBlock(t *testing.T, dir, block string, timeout time.Duration, extra []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// A file, not a pipe: a background process that keeps the output open
	// cannot hold up the wait.
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", block)
	cmd.Dir = dir
	cmd.Env = append(withoutTailsealEnv(), extra...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w after %v: %w", err, timeout, ctx.Err())
	}
	out, rerr := os.ReadFile(f.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	return string(out), err
}

// freePort is a TCP port on 127.0.0.1 that nothing listened on a moment
// ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// copyRepo copies the files git tracks under root into a new directory.
func copyRepo(t *testing.T, root string) string {
	t.Helper()
	files, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dir := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(files), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

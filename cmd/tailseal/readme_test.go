package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The README's quick start, run exactly as written: its first shell block
// under "## Quick start", in a copy of the repository (it builds the
// binary and writes logs/ and data/ where it runs), with nothing of the
// test's environment that tailseal reads.
func TestReadmeQuickStart(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "\n## Quick start\n")
	if !ok {
		t.Fatal("the README has no Quick start section")
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 || !strings.Contains(block, "./tailseal verify") {
		t.Fatalf("no shell block in the quick start:\n%s", after)
	}
	dir := copyRepo(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", block)
	cmd.Dir = dir
	cmd.Env = withoutTailsealEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
		t.Fatalf("the quick start failed: %v\n%s\nagent.log:\n%s", err, out.String(), log)
	}
	for _, want := range []string{"LEAD-1", "<email:", "intact"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the quick start printed no %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "ana@example.com") {
		t.Errorf("the email came out in clear:\n%s", out.String())
	}
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

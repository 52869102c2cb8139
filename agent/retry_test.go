package agent

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// A full disk (a real one: the data dir is on a tiny tmpfs) pauses
// ingestion; the same batch is retried with a growing backoff, stepped by
// the fake clock, and once space is back no line is lost or repeated.
func TestRetryAfterFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	r := newRig(t, filepath.Join(mnt, "data"))
	r.start()
	r.write(400, 500) // 200 KB for a 64 KB disk
	r.wait(r.clk.Armed(firstBackoff), "the first retry")
	if r.a.Stats.AppendErrors.Load() != 1 {
		t.Fatalf("%d append errors before the first retry, want 1", r.a.Stats.AppendErrors.Load())
	}
	paused := r.a.Store().Durable()
	if paused >= 400 {
		t.Fatalf("all %d lines stored on a 64 KB disk", paused)
	}
	r.clk.Advance(firstBackoff) // still full: fails again, waits twice as long
	r.wait(r.clk.Armed(2*firstBackoff), "the second retry")
	if n := r.a.Stats.AppendErrors.Load(); n != 2 || r.a.Store().Durable() != paused {
		t.Fatalf("after the first retry: %d errors, durable %d (was %d)", n, r.a.Store().Durable(), paused)
	}
	if r.a.Healthy() {
		t.Error("healthy (so /readyz ready) while ingestion is paused on a full disk")
	}
	if out, err := exec.Command("mount", "-o", "remount,size=16m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("grow tmpfs: %v %s", err, out)
	}
	r.clk.Advance(2 * firstBackoff)
	r.allDurable()
	r.write(10, 500) // and the application goes on
	r.allDurable()
	if !r.a.Healthy() {
		t.Error("not healthy once the disk has room again")
	}
	r.stop()
	r.checkEvents(r.all())
}

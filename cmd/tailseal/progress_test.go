package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// drawn are the lines a progress bar drew, as a terminal shows each one
// after the "\r" that starts it: erase-line sequences taken out.
func drawn(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\r") {
		if l = strings.ReplaceAll(l, "\033[K", ""); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Every line the bar draws fits the terminal without reaching its last
// column (a longer one wraps onto a row that "\r" does not go back to),
// however narrow; finish erases it.
func TestProgressBarFitsTheTerminal(t *testing.T) {
	for _, cols := range []int{120, 80, 50, 40, 24, 10, 0} {
		var out bytes.Buffer
		p := &progressBar{out: &out, cols: func() int { return cols }, label: "verifying", total: 5_000_000_000, start: time.Now().Add(-time.Second)}
		for _, at := range []int64{0, 1, 2_500_000_000, 4_999_999_999, 5_000_000_000} {
			p.at = at
			p.draw()
		}
		p.finish()
		width := cols
		if width == 0 {
			width = 80
		}
		for _, l := range drawn(out.String()) {
			if len(l) >= width {
				t.Errorf("%d columns: drew %q (%d)", cols, l, len(l))
			}
		}
		if !strings.HasSuffix(out.String(), "\r\033[K") {
			t.Errorf("%d columns: finish did not erase the line: %q", cols, out.String())
		}
		if lines := drawn(out.String()); cols >= 50 && !strings.Contains(lines[len(lines)-1], "[##########") {
			t.Errorf("%d columns: no bar in %q", cols, lines[len(lines)-1])
		}
	}
}

// openPTY opens a pseudo-terminal of cols × rows: the master side, which
// reads what is written to the terminal, and the terminal itself.
func openPTY(t *testing.T, cols, rows uint16) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// verify on a 40-column terminal: the progress bar it draws fits a row,
// and is erased before the summary line.
func TestVerifyClearsItsProgressBar(t *testing.T) {
	data := cliStore(t)
	master, tty := openPTY(t, 40, 24)
	cmd := exec.Command(binPath, "verify")
	cmd.Env = append(withoutTailsealEnv(), "TAILSEAL_DATA_DIR="+data, "TAILSEAL_HMAC_KEY="+hex.EncodeToString(cliHMACKey))
	cmd.Stdout, cmd.Stderr = tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close() // the child holds it; reading ends when it exits
	var screen bytes.Buffer
	read := make(chan error, 1)
	go func() {
		_, err := screen.ReadFrom(master)
		read <- err
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("verify: %v\n%q", err, screen.String())
	}
	select {
	case err := <-read: // EIO once the terminal is closed
		if err != nil && !errors.Is(err, syscall.EIO) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the terminal did not close")
	}
	out := screen.String()
	bar, summary := strings.Index(out, "verifying"), strings.Index(out, "intact:")
	if bar < 0 || summary < bar {
		t.Fatalf("no bar before the summary:\n%q", out)
	}
	if !regexp.MustCompile(`\r\x1b\[K(\r\n)*intact:`).MatchString(out[bar:]) {
		t.Errorf("the bar is not erased right before the summary:\n%q", out[bar:])
	}
	for _, l := range drawn(out[bar:strings.LastIndex(out[:summary], "\r\033[K")]) {
		if len(l) >= 40 {
			t.Errorf("the bar drew %d columns on a 40-column terminal: %q", len(l), l)
		}
	}
}

package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progressBar draws one line on stderr when it is a terminal. Methods on a
// nil *progressBar do nothing, so callers need no checks.
type progressBar struct {
	label       string
	total, at   int64
	start, last time.Time
}

// newProgressBar returns nil when stderr is not a terminal.
func newProgressBar(label string, total int64) *progressBar {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return &progressBar{label: label, total: total, start: time.Now()}
}

// set records progress, done out of total, and redraws at most 5 times a
// second.
func (p *progressBar) set(done int64) {
	if p == nil {
		return
	}
	p.at = done
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progressBar) draw() {
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.at)/float64(p.total), 1)
	}
	const width = 30
	filled := int(frac * width)
	mb := float64(p.at) / 1e6
	fmt.Fprintf(os.Stderr, "\r%s [%s%s] %3.0f%%  %.0f MB  %.0f MB/s ", p.label,
		strings.Repeat("#", filled), strings.Repeat(" ", width-filled), frac*100, mb, mb/max(time.Since(p.start).Seconds(), 1e-3))
}

// finish clears the line.
func (p *progressBar) finish() {
	if p != nil {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
}

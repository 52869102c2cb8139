package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progressBar draws one line on stderr when it is a terminal. Methods on a
// nil *progressBar do nothing, so callers need no checks.
//
// The line never reaches the terminal's last column: a longer one wraps
// onto a second row, which "\r" and erase-line do not reach, and the bar
// was left on the screen above verify's summary.
type progressBar struct {
	out         io.Writer
	cols        func() int // the terminal's width; 0 when unknown
	label       string
	total, at   int64
	start, last time.Time
}

// newProgressBar returns nil when stderr is not a terminal.
func newProgressBar(label string, total int64) *progressBar {
	fd := int(os.Stderr.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	cols := func() int {
		w, _, err := term.GetSize(fd)
		if err != nil {
			return 0
		}
		return w
	}
	return &progressBar{out: os.Stderr, cols: cols, label: label, total: total, start: time.Now()}
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
	width := 80
	if w := p.cols(); w > 0 {
		width = w
	}
	// "\r", the line, and erase to the end of the row, where a longer
	// line drawn before (the terminal was wider) may have left text.
	fmt.Fprintf(p.out, "\r%s\033[K", p.line(width-1))
}

// line is the bar's text in at most cols columns: the label, the bar (30
// wide, narrower or left out on a narrow terminal) and the numbers.
func (p *progressBar) line(cols int) string {
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.at)/float64(p.total), 1)
	}
	mb := float64(p.at) / 1e6
	numbers := fmt.Sprintf(" %3.0f%%  %.0f MB  %.0f MB/s", frac*100, mb, mb/max(time.Since(p.start).Seconds(), 1e-3))
	bar := min(30, cols-len(p.label)-len(" []")-len(numbers))
	line := p.label + numbers
	if bar >= 5 {
		filled := int(frac * float64(bar))
		line = p.label + " [" + strings.Repeat("#", filled) + strings.Repeat(" ", bar-filled) + "]" + numbers
	}
	if len(line) > cols { // the label and numbers are ASCII: a byte is a column
		line = line[:max(cols, 0)]
	}
	return line
}

// finish clears the line.
func (p *progressBar) finish() {
	if p != nil {
		fmt.Fprint(p.out, "\r\033[K")
	}
}

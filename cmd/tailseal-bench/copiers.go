package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// A copier is a log daemon run beside the agent: it follows the same
// source file and writes every line, as it was, to a file of its own, with
// no parsing, anonymizing or signing. Each run gets a new directory, so no
// state (imfile's offsets, syslog-ng's persist file) survives from one
// round to the next.
type copier struct {
	name string
	// conf is the daemon's configuration for reading src into out, with
	// its state under dir.
	conf func(dir, src, out string) string
	// command starts the daemon on the configuration file in dir.
	command func(dir, conf string) *exec.Cmd
}

// The rsyslog rows all run imfile in inotify mode into omfile with a
// %msg% template (the line as it was read). rsyslog-default is the
// configuration this benchmark always had: rsyslog's defaults, an
// in-memory main queue and omfile writing each batch as it ends.
// The tuned rows follow rsyslog's own advice for throughput: no main
// queue (imfile's thread runs the action itself), omfile's asynchronous
// writer with a 256 KiB buffer written when full, not at every batch's
// end. With sync="on", omfile fdatasyncs the file (and fsyncs its
// directory) after every write it makes, in rsyslog 8.2302 as now
// (runtime/stream.c, strmPhysWrite): with this buffer, one sync per 256
// KiB, about 1,000 lines, as durable as the agent's group commit. The
// last, partial buffer is written by the asynchronous writer's timer,
// flushInterval, one second by default and at least one: that second is
// part of the row, as it is of the time until the last line is durable.
const (
	rsyslogDefault = `global(workDirectory="{dir}/work" maxMessageSize="1m")
module(load="imfile" mode="inotify")
template(name="msg" type="string" string="%msg%\n")
ruleset(name="copy") { action(type="omfile" file="{out}" template="msg") }
input(type="imfile" file="{src}" tag="audit" ruleset="copy" freshStartTail="off")
`
	rsyslogTuned = `global(workDirectory="{dir}/work" maxMessageSize="1m")
main_queue(queue.type="Direct")
module(load="imfile" mode="inotify")
template(name="msg" type="string" string="%msg%\n")
ruleset(name="copy") {
	action(type="omfile" file="{out}" template="msg" queue.type="Direct"
		asyncWriting="on" flushOnTXEnd="off" ioBufferSize="256k"{sync})
}
input(type="imfile" file="{src}" tag="audit" ruleset="copy" freshStartTail="off")
`
)

func fill(conf, dir, src, out, sync string) string {
	return strings.NewReplacer("{dir}", dir, "{src}", src, "{out}", out, "{sync}", sync).Replace(conf)
}

// rsyslogCopiers are the rsyslog rows, by name.
func rsyslogCopiers(bin string) map[string]copier {
	command := func(dir, conf string) *exec.Cmd {
		return exec.Command(bin, "-n", "-f", conf, "-i", filepath.Join(dir, "pid"))
	}
	return map[string]copier{
		"rsyslog-tuned-sync": {name: "rsyslog-tuned-sync", command: command, conf: func(dir, src, out string) string {
			return fill(rsyslogTuned, dir, src, out, ` sync="on"`)
		}},
		"rsyslog-tuned": {name: "rsyslog-tuned", command: command, conf: func(dir, src, out string) string {
			return fill(rsyslogTuned, dir, src, out, "")
		}},
		"rsyslog-default": {name: "rsyslog-default", command: command, conf: func(dir, src, out string) string {
			return fill(rsyslogDefault, dir, src, out, "")
		}},
	}
}

// The syslog-ng row is the tuned rsyslog's equivalent: a file source that
// follows the file and takes each line whole as the message (no-parse),
// into a file destination with the bare message template, written 1,000
// lines (about 256 KiB) at a time with an fsync after each write; a
// partial batch is written as soon as the source has nothing more (there
// is no timer to wait for). The source's window and fetch limit are raised
// from their defaults (100 and 10 messages), which bound throughput, and
// flow control makes the source wait for the destination instead of
// dropping.
const syslogNGConf = `@version: {version}
options { log-msg-size(1048576); stats-freq(0); mark-freq(0); use-dns(no); dns-cache(no); chain-hostnames(no); keep-hostname(yes); };
source s_audit { file("{src}" flags(no-parse) follow-freq(1) log-fetch-limit(1000) log-iw-size(10000)); };
destination d_copy { file("{out}" template("${MSG}\n") flush-lines(1000) fsync(yes) log-fifo-size(10000)); };
log { source(s_audit); destination(d_copy); flags(flow-control); };
`

// syslogNGInstall says how to put syslog-ng beside rsyslog: Debian's
// syslog-ng-core conflicts with rsyslog (both provide system-log-daemon),
// so it is unpacked into a prefix of its own instead of installed.
const syslogNGInstall = `mkdir -p /tmp/sng && cd /tmp/sng && apt-get download syslog-ng-core libivykis0 libnet1 libpcre3 && for d in *.deb; do dpkg -x $d /opt/syslog-ng; done`

// findSyslogNG finds syslog-ng from spec: a binary, a prefix it was
// unpacked into, "" (PATH, then /opt/syslog-ng) or "none". It returns
// the copier, or a sentence saying why there is none.
func findSyslogNG(spec string) (copier, string) {
	if spec == "none" {
		return copier{}, "syslog-ng: skipped (-syslog-ng none)"
	}
	bin, prefix := spec, ""
	if spec == "" {
		if p, err := exec.LookPath("syslog-ng"); err == nil {
			bin = p
		} else {
			prefix = "/opt/syslog-ng"
		}
	} else if fi, err := os.Stat(spec); err == nil && fi.IsDir() {
		prefix = spec
	}
	var env []string
	if prefix != "" {
		bin = filepath.Join(prefix, "usr/sbin/syslog-ng")
		env = append(os.Environ(), "LD_LIBRARY_PATH="+strings.Join([]string{
			filepath.Join(prefix, "usr/lib/syslog-ng"),
			filepath.Join(prefix, "usr/lib/x86_64-linux-gnu"),
			filepath.Join(prefix, "lib/x86_64-linux-gnu"),
		}, ":"))
	}
	vcmd := exec.Command(bin, "--version")
	vcmd.Env = env
	vout, err := vcmd.CombinedOutput()
	if err != nil {
		return copier{}, fmt.Sprintf("syslog-ng: not found (%s: %v); it conflicts with rsyslog in Debian, so unpack it into a prefix: %s, then -syslog-ng /opt/syslog-ng",
			bin, err, syslogNGInstall)
	}
	m := regexp.MustCompile(`Installer-Version: (\d+\.\d+)`).FindSubmatch(vout)
	if m == nil {
		return copier{}, fmt.Sprintf("syslog-ng: %s --version names no version:\n%s", bin, vout)
	}
	version := string(m[1])
	return copier{
		name: "syslog-ng",
		conf: func(dir, src, out string) string {
			return strings.NewReplacer("{version}", version, "{src}", src, "{out}", out).Replace(syslogNGConf)
		},
		command: func(dir, conf string) *exec.Cmd {
			args := []string{"-F", "--no-caps", "-f", conf, "-R", filepath.Join(dir, "persist"),
				"-c", filepath.Join(dir, "ctl"), "-p", filepath.Join(dir, "pid")}
			if prefix != "" {
				args = append(args, "--module-path="+filepath.Join(prefix, "usr/lib/syslog-ng", version))
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = env
			return cmd
		},
	}, fmt.Sprintf("syslog-ng: %s (%s)", bin, firstLine(vout))
}

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\n"))
	return string(l)
}

// copy runs c over src, in a new directory dir, until its output holds
// n lines, and prints a row like ingest's. The clock stops when the n-th
// line is in the output, counted as it grows; the time the last 1,000
// lines took is printed beside it, since a daemon that writes in buffers
// may hold the end of the file back for a timer.
func (c copier) copy(dir, src string, n int, size int64) (result, error) {
	if err := os.RemoveAll(dir); err != nil {
		return result{}, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o755); err != nil {
		return result{}, err
	}
	out := filepath.Join(dir, "out.log")
	conf := filepath.Join(dir, c.name+".conf")
	if err := os.WriteFile(conf, []byte(c.conf(dir, src, out)), 0o644); err != nil {
		return result{}, err
	}
	cmd := c.command(dir, conf)
	cmd.Stderr = os.Stderr
	p, err := startProc(cmd)
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", c.name, err)
	}
	var lc lineCounter
	var nearEnd time.Time
	deadline := p.start.Add(5 * time.Minute)
	for {
		if err := lc.update(out); err != nil {
			p.kill()
			return result{}, fmt.Errorf("%s: count lines: %w", c.name, err)
		}
		if nearEnd.IsZero() && lc.lines >= n-1000 {
			nearEnd = time.Now()
		}
		if lc.lines >= n {
			break
		}
		if err := p.exited(); err != nil {
			return result{}, fmt.Errorf("%s: exited with %d of %d lines copied: %v", c.name, lc.lines, n, err)
		}
		if time.Now().After(deadline) {
			p.kill()
			return result{}, fmt.Errorf("%s: %d of %d lines copied after 5 minutes", c.name, lc.lines, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := p.stop()
	lc.close()
	if fi, err := os.Stat(out); err == nil && fi.Size() != size {
		fmt.Printf("%s: output is %d bytes, the source %d: not a line-for-line copy\n", c.name, fi.Size(), size)
	}
	r.lines = n
	r.print(c.name, size, fmt.Sprintf("  last 1000 lines %.2fs", r.wall.Seconds()-nearEnd.Sub(p.start).Seconds()))
	return r, nil
}

// lineCounter counts the newlines of a growing file, reading only what
// was added since the last update.
type lineCounter struct {
	f     *os.File
	buf   []byte
	lines int
}

func (lc *lineCounter) update(path string) error {
	if lc.f == nil {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil // not created yet
		}
		if err != nil {
			return err
		}
		lc.f, lc.buf = f, make([]byte, 1<<20)
	}
	for {
		m, err := lc.f.Read(lc.buf)
		lc.lines += bytes.Count(lc.buf[:m], []byte("\n"))
		if err == io.EOF || m == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (lc *lineCounter) close() {
	if lc.f != nil {
		lc.f.Close()
	}
}

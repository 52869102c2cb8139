package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// contender is a binary and the store it reads: the parent build reads a
// store it built, in the index format it knows.
type contender struct {
	name, bin, data string
}

// sample is one run of one command.
type sample struct {
	wall, cpu time.Duration
	rss       float64 // MiB
	digest    string  // of stdout
	result    string
}

// benchCase is a command the read benchmark times.
type benchCase struct {
	name  string
	args  []string
	check func(out *counter, wall time.Duration) string
}

func readCases(events int, step time.Duration) []benchCase {
	lead := fmt.Sprintf("LEAD-%07d", events/2/5) // an event in the middle of the store
	mid := start.Add(time.Duration(events/2) * step).Format(time.RFC3339)
	return []benchCase{
		{"stats", []string{"stats", "--json"}, scanRate},
		{"lead", []string{"query", "--lead", lead, "--json"}, countLines},
		{"type", []string{"query", "--type", "error", "--json"}, countLines},
		{"subject", []string{"query", "--subject", "lead1234@example.com", "--json", "--limit", "100000"}, countLines},
		{"subject-absent", []string{"query", "--subject", "nobody@example.com", "--json"}, countLines},
		{"since", []string{"query", "--since", mid, "--limit", "20"}, countLines},
		{"performance", []string{"performance", "--json"}, countLines},
		{"export", []string{"export", "--format", "jsonl", "--output", "-"}, outSize},
		{"verify", []string{"verify", "--json"}, countLines},
	}
}

// repeated runs each case runs times per contender, alternated (the order
// reversed every other run, so that neither always runs second on a warm
// page cache), and prints min / median / max of wall, CPU and peak RSS.
// Exit codes 0 and 1 (nothing matched) are answers.
func repeated(cs []contender, cases []benchCase, runs int) error {
	fmt.Printf("%-16s %-8s %-26s %-26s %-24s %s\n", "command", "build", "wall s min/med/max", "CPU s min/med/max", "peak RSS MiB min/max", "result")
	for _, c := range cases {
		all := make([][]sample, len(cs))
		for r := range runs {
			order := slices.Clone(cs)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, ct := range order {
				s, err := runOnce(ct, c)
				if err != nil {
					return err
				}
				i := slices.IndexFunc(cs, func(x contender) bool { return x.name == ct.name })
				all[i] = append(all[i], s)
			}
		}
		for i, ct := range cs {
			same := ""
			if i > 0 && all[i][0].digest != all[0][0].digest {
				same = " (output differs from " + cs[0].name + "'s)"
			}
			fmt.Printf("%-16s %-8s %-26s %-26s %-24s %s%s\n", c.name, ct.name, spread(all[i], func(s sample) float64 { return s.wall.Seconds() }),
				spread(all[i], func(s sample) float64 { return s.cpu.Seconds() }), rssRange(all[i]), all[i][0].result, same)
		}
	}
	return nil
}

func runOnce(ct contender, c benchCase) (sample, error) {
	cmd := exec.Command(ct.bin, c.args...)
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+ct.data, "TAILSEAL_PII_KEY="+hex.EncodeToString(piiKey),
		"TAILSEAL_HMAC_KEY="+hex.EncodeToString(hmacKey))
	if vkey, err := os.ReadFile(filepath.Join(ct.data, "keys", "checkpoint.pub")); err == nil {
		cmd.Env = append(cmd.Env, "TAILSEAL_VERIFIER="+strings.TrimSpace(string(vkey)))
	}
	out := counter{sum: sha256.New()}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1 && c.name != "verify") {
		return sample{}, fmt.Errorf("%s %s: %v\n%s", ct.name, strings.Join(c.args, " "), err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: wall, cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), rss: float64(ru.Maxrss) / 1024,
		digest: hex.EncodeToString(out.sum.Sum(nil)), result: c.check(&out, wall)}, nil
}

func spread(s []sample, f func(sample) float64) string {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = f(s[i])
	}
	slices.Sort(v)
	return fmt.Sprintf("%.3f / %.3f / %.3f", v[0], v[len(v)/2], v[len(v)-1])
}

func rssRange(s []sample) string {
	lo, hi := s[0].rss, s[0].rss
	for _, x := range s {
		lo, hi = min(lo, x.rss), max(hi, x.rss)
	}
	return fmt.Sprintf("%.1f / %.1f", lo, hi)
}

// selectCases keeps the cases named in only (comma-separated; "" keeps all).
func selectCases(cases []benchCase, only string) ([]benchCase, error) {
	if only == "" {
		return cases, nil
	}
	var out []benchCase
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(cases, func(c benchCase) bool { return c.name == name })
		if i < 0 {
			return nil, fmt.Errorf("-only: no command %q", name)
		}
		out = append(out, cases[i])
	}
	return out, nil
}

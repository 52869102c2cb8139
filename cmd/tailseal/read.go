package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/query"
	"github.com/tailseal/tailseal/signer/pii"
)

// readFlags are the filters and output switches the read commands share.
type readFlags struct {
	lead, typ, workflow, last, since, until, subject string
	json                                             bool
	origins                                          originFlag
	config                                           config.Flags
}

func (r *readFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.lead, "lead", "", "only events of this lead_id")
	fs.StringVar(&r.typ, "type", "", "only events of this event_type")
	fs.StringVar(&r.workflow, "workflow", "", "only events of this workflow")
	fs.StringVar(&r.last, "last", "", "only events of the last `DURATION` (30m, 24h, 7d, 2w), up to now")
	fs.StringVar(&r.since, "since", "", "only events at or after `TIME` (RFC 3339, or a date 2026-02-04)")
	fs.StringVar(&r.until, "until", "", "only events before `TIME` (RFC 3339, or a date)")
	fs.StringVar(&r.subject, "subject", "", "only events about this person (email, phone, IP, card, IBAN, SSN or name): computes the pseudonym with the PII key")
	fs.BoolVar(&r.json, "json", false, "JSON for scripts instead of a table")
	fs.Var(&r.origins, "origin", originUsage)
	dataDirFlag(fs, &r.config)
}

// filter turns the flags into a query.Filter; a bad value is a usage error.
func (r *readFlags) filter(cfg *config.Config, now time.Time) (query.Filter, error) {
	f := query.Filter{Lead: r.lead, Type: r.typ, Workflow: r.workflow}
	var err error
	if r.last != "" {
		if r.since != "" {
			return f, errors.New("--last and --since cannot be combined")
		}
		if r.until != "" {
			return f, errors.New("--last and --until cannot be combined: --last ends now; use --since and --until")
		}
		d, err := parseLast(r.last)
		if err != nil {
			return f, err
		}
		// A relative window ends now: events dated in the future (a
		// wrong clock) are reachable with an explicit --until only.
		f.Since, f.Until = now.Add(-d), now
	}
	if r.since != "" {
		if f.Since, err = parseTime("--since", r.since); err != nil {
			return f, err
		}
	}
	if r.until != "" {
		if f.Until, err = parseTime("--until", r.until); err != nil {
			return f, err
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return f, errors.New("--since must be before --until")
	}
	if r.subject != "" {
		if f.Subjects, err = subjectTokens(cfg, r.subject); err != nil {
			return f, err
		}
	}
	return f, nil
}

// parseLast reads a Go duration, or whole days (7d) or weeks (2w), up to
// maxLast: a longer window would overflow a time.Duration or reach before
// any event.
func parseLast(s string) (time.Duration, error) {
	bad := fmt.Errorf("--last %q: want a positive duration such as 30m, 24h, 7d or 2w, at most 100 years", s)
	if s == "" {
		return 0, bad
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit != 0 {
		n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
		if err == nil && n > 0 && n <= int64(maxLast/unit) {
			return time.Duration(n) * unit, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d > 0 && d <= maxLast {
		return d, nil
	}
	return 0, bad
}

// maxLast is the longest --last: 100 years.
const maxLast = 100 * 365 * 24 * time.Hour

func parseTime(flagName, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want RFC 3339 (2026-02-04T20:30:00Z) or a date (2026-02-04)", flagName, s)
}

// subjectTokens is what a person's value became in the store: its
// pseudonym under every kind and always-anonymized field it could have
// been stored as (hash mode), or the value itself (off).
func subjectTokens(cfg *config.Config, value string) ([]string, error) {
	switch cfg.PII() {
	case pii.Off:
		return []string{value}, nil
	case pii.Redact, pii.Mask:
		return nil, fmt.Errorf("--subject needs TAILSEAL_PII_MODE=hash: %s mode keeps no value that joins a person's events", cfg.PIIMode)
	}
	key, err := agent.ReadPIIKey(cfg)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("--subject needs the pseudonymization key: set TAILSEAL_PII_KEY (or _FILE), or keep it in %s", filepath.Join(cfg.DataDir, agent.KeysDir, agent.PIIKeyFile))
	}
	if err != nil {
		return nil, err
	}
	a := pii.New(pii.Options{Mode: pii.Hash, Key: key})
	var out []string
	seen := map[string]bool{}
	for _, tag := range append([]string{"email", "phone", "ip", "card", "iban", "ssn"}, cfg.PIIFields...) {
		if p := a.Pseudonym(strings.ToLower(tag), value); !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// openStore opens the store of a data dir for a read command; a missing
// or empty store is a usage error with one line.
func openStore(cmd, dataDir string) (*query.Store, error) {
	s, err := query.Open(filepath.Join(dataDir, agent.StoreDir))
	if err != nil {
		fmt.Fprintf(os.Stderr, "tailseal %s: %v (set TAILSEAL_DATA_DIR or --data-dir)\n", cmd, err)
		return nil, errUsage
	}
	if s.Empty() {
		fmt.Fprintf(os.Stderr, "tailseal %s: the store in %s is empty: nothing has been ingested yet\n", cmd, dataDir)
		return nil, errUsage
	}
	return s, nil
}

// answered ends a read command: it names the segments that could not be
// read (the answer above came from the rest) and says when nothing
// matched. Either makes the exit code 1.
func answered(cmd string, problems []query.Problem, matched int, what string) error {
	return answeredAcross(cmd, []problemsOf{{"", problems}}, matched, what)
}

// answeredAcross is answered over several origins' stores: each problem
// names its origin.
func answeredAcross(cmd string, ps []problemsOf, matched int, what string) error {
	n := 0
	for _, p := range ps {
		at := ""
		if p.origin != "" {
			at = "origin " + p.origin + ": "
		}
		for _, pr := range p.problems {
			fmt.Fprintf(os.Stderr, "tailseal %s: warning: %ssegment %s\n", cmd, at, pr.Error())
			n++
		}
	}
	if n > 0 {
		fmt.Fprintf(os.Stderr, "tailseal %s: the answer may miss what could not be read, or hold what was damaged; only tailseal verify can tell\n", cmd)
		return errFinding
	}
	if matched == 0 {
		fmt.Fprintf(os.Stderr, "tailseal %s: no %s match\n", cmd, what)
		return errFinding
	}
	return nil
}

// readSet is what a read command answers from: one store, or the
// selected origins of a collector's data dir (fleet).
type readSet struct {
	sources
	targets []target
}

// one is the store of a single data dir.
func (r *readSet) one() *query.Store { return r.targets[0].Store }

// setup parses the flags, loads the configuration and opens the stores.
func setup(cmd string, fs *flag.FlagSet, args []string, rf *readFlags) (*config.Config, *readSet, query.Filter, error) {
	var f query.Filter
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, f, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "tailseal %s: unexpected argument %q; see tailseal %s --help\n", cmd, fs.Arg(0), cmd)
		return nil, nil, f, errUsage
	}
	cfg, err := loadConfig(rf.config)
	if err != nil {
		return nil, nil, f, err
	}
	if f, err = rf.filter(cfg, time.Now()); err != nil {
		fmt.Fprintf(os.Stderr, "tailseal %s: %v\n", cmd, err)
		return nil, nil, f, errUsage
	}
	rs := &readSet{}
	if rs.sources, err = selectSources(cmd, cfg.DataDir, rf.origins); err != nil {
		return nil, nil, f, err
	}
	rs.targets, err = openTargets(cmd, cfg.DataDir, rs.sources)
	return cfg, rs, f, err
}

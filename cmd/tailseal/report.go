package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/report"
	"github.com/tailseal/tailseal/signer/record"
	"github.com/tailseal/tailseal/signer/verify"
)

func runReport(ctx context.Context, args []string) error {
	var rf readFlags
	fs := newFlagSet("report", `Usage: tailseal report [--period daily|weekly] [--output DIR] [filters]

Writes one self-contained HTML page per day (or ISO week, UTC) that has
events, and an index.html: totals, events over time, errors by type with
recent messages, workflows, performance percentiles, the latest events,
and the integrity of the store as tailseal verify finds it (with the same
keys). The pages load nothing from anywhere: they open from disk, offline,
print, and fit a phone's screen.

A page always covers its whole day or week: --last, --since and --until
choose which periods are written (--last 2d rewrites the pages of the
three days it touches, each whole). --lead, --type, --workflow and
--subject make pages of part of each period, named and titled by the
filter (2026-02-04.type-error.html), so that they never replace a whole
period's page. index.html lists every page in DIR, from this run and
earlier ones.

Exit 1 when the store is not intact or its integrity could not be checked
(the pages are written, and say so), or nothing matched.

Across origins: each origin's pages and index.html in DIR/<origin token>/,
and DIR/index.html lists the origins in DIR with their integrity.
`)
	rf.register(fs)
	period := fs.String("period", "daily", "daily or weekly")
	output := fs.String("output", "reports", "the `DIR`ectory to write the pages to")
	latest := fs.Int("latest", 20, "how many of the latest events each page lists")
	check := fs.Bool("verify", true, "verify the whole store for the pages' integrity box (a full read of the store; --verify=false skips it)")
	cfg, rs, f, err := setup("report", fs, args, &rf)
	if err != nil {
		return err
	}
	if *period != "daily" && *period != "weekly" {
		fmt.Fprintf(os.Stderr, "tailseal report: --period must be daily or weekly (got %q)\n", *period)
		return errUsage
	}
	var keys *keyring // over origins: the keys each origin's integrity is checked with
	var keysErr error
	if *check && rs.fleet {
		keys, keysErr = fleetKeyring(cfg, rs.sources)
	}
	// Every page is built before any is written: a page from half a scan
	// would mislead.
	var built []builtReport
	var problems []problemsOf
	for _, t := range rs.targets {
		integrity := report.Integrity{Summary: "Not checked: the report was made with --verify=false (run tailseal verify)"}
		switch {
		case *check && !rs.fleet:
			integrity = checkIntegrity(ctx, cfg)
		case *check && keysErr != nil:
			integrity = report.Integrity{Summary: "Not checked: " + keysErr.Error()}
		case *check:
			opt, notes, err := keys.options(t.dataDir, t.origin)
			integrity = storeIntegrity(ctx, t.dataDir, opt, notes, err)
		}
		if err := interrupted(ctx, "report"); err != nil {
			return err
		}
		pages, p := report.Build(ctx, t.Store, report.Options{Weekly: *period == "weekly", Filter: f, Latest: *latest, Integrity: integrity, Now: time.Now(),
			Origin: t.origin})
		if err := interrupted(ctx, "report"); err != nil {
			return err
		}
		built = append(built, builtReport{t, pages, integrity})
		problems = append(problems, problemsOf{t.origin, p})
	}
	n := 0
	var index []report.OriginIndex
	for _, b := range built {
		dir := *output
		if rs.fleet {
			dir = filepath.Join(*output, record.OriginToken(b.t.origin))
		}
		if err := report.WriteAll(dir, b.pages, b.integrity); err != nil {
			fmt.Fprintf(os.Stderr, "tailseal report: %v\n", err)
			return err
		}
		n += len(b.pages)
		row := report.OriginIndex{Origin: b.t.origin, Dir: record.OriginToken(b.t.origin), Pages: len(b.pages), Integrity: b.integrity}
		named := "" // the origin, in JSON over origins only
		if rs.fleet {
			named = b.t.origin
		}
		for _, p := range b.pages {
			row.Events += p.Stats.Events
			row.Errors += p.Stats.Errors
			if rf.json { // one object per page written, for scripts
				writeJSON(struct {
					Origin string    `json:"origin,omitempty"`
					File   string    `json:"file"`
					Start  time.Time `json:"start"`
					End    time.Time `json:"end"`
					Events int       `json:"events"`
					Errors int       `json:"errors"`
				}{named, filepath.Join(dir, p.Name()), p.Start, p.End, p.Stats.Events, p.Stats.Errors})
			}
		}
		index = append(index, row)
		if !rs.fleet {
			fmt.Fprintf(os.Stderr, "tailseal report: %d pages in %s (open %s/index.html); store: %s\n", len(b.pages), dir, dir, b.integrity.Summary)
		} else {
			fmt.Fprintf(os.Stderr, "tailseal report: origin %s: %d pages in %s; store: %s\n", b.t.origin, len(b.pages), dir, b.integrity.Summary)
		}
	}
	if rs.fleet {
		if err := report.WriteFleetIndex(*output, index); err != nil {
			fmt.Fprintf(os.Stderr, "tailseal report: %v\n", err)
			return err
		}
		fmt.Fprintf(os.Stderr, "tailseal report: %d pages for %d origins in %s (open %s/index.html)\n", n, len(built), *output, *output)
	}
	err = answeredAcross("report", problems, n, "events")
	if *check && !intact(rs.fleet, built) && err == nil {
		return errFinding
	}
	return err
}

// intact says on stderr when a store the pages cover is not intact, or
// could not be checked: the pages say so too, in their integrity box.
func intact(fleet bool, built []builtReport) bool {
	var bad []string
	for _, b := range built {
		if !b.integrity.Checked || !b.integrity.OK {
			bad = append(bad, b.t.origin)
		}
	}
	switch {
	case len(bad) == 0:
		return true
	case !fleet && built[0].integrity.Checked:
		fmt.Fprintln(os.Stderr, "tailseal report: the store is NOT intact; the pages say so; run tailseal verify for every finding")
	case !fleet:
		fmt.Fprintln(os.Stderr, "tailseal report: the store's integrity could not be checked; the pages say why")
	default:
		fmt.Fprintf(os.Stderr, "tailseal report: %d of %d origins are not intact or could not be checked (%s); run tailseal verify\n",
			len(bad), len(built), strings.Join(bad, ", "))
	}
	return false
}

// builtReport is one store's pages, built before any is written.
type builtReport struct {
	t         target
	pages     []*report.Page
	integrity report.Integrity
}

// checkIntegrity verifies the store as tailseal verify does, for the
// pages' status box.
func checkIntegrity(ctx context.Context, cfg *config.Config) report.Integrity {
	opt, notes, err := verifyOptions(cfg)
	return storeIntegrity(ctx, cfg.DataDir, opt, notes, err)
}

// storeIntegrity verifies the store in dataDir with opt, unless finding
// its keys failed (err).
func storeIntegrity(ctx context.Context, dataDir string, opt verify.Options, notes []string, err error) report.Integrity {
	if err != nil {
		return report.Integrity{Summary: "Not checked: " + err.Error()}
	}
	sum, err := newStoreSource(dataDir).run(ctx, opt)
	if err != nil { // a wrong key, an unreadable store
		return report.Integrity{Summary: "Not checked: " + err.Error(), Details: notes}
	}
	what := fmt.Sprintf("%d records in %d segments, %d checkpoints", sum.Records, sum.Segments, sum.Checkpoints)
	if !sum.Signatures {
		what += "; signatures not checked (no verification key)"
	}
	if len(sum.Findings) == 0 {
		return report.Integrity{Checked: true, OK: true, Summary: "Intact: " + what, Details: notes}
	}
	in := report.Integrity{Checked: true, Summary: fmt.Sprintf("NOT intact: %d findings over %s", len(sum.Findings), what)}
	for i, f := range sum.Findings {
		if i == 10 {
			in.Details = append(in.Details, fmt.Sprintf("… and %d more (run tailseal verify)", len(sum.Findings)-10))
			break
		}
		in.Details = append(in.Details, f.String())
	}
	return in
}

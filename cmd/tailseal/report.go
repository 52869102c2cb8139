package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tailseal/tailseal/agent"
	"github.com/tailseal/tailseal/agent/config"
	"github.com/tailseal/tailseal/agent/report"
)

func runReport(ctx context.Context, args []string) error {
	var rf readFlags
	fs := newFlagSet("report", `Usage: tailseal report [--period daily|weekly] [--output DIR] [filters]

Writes one self-contained HTML page per day (or ISO week, UTC) that has
events, and an index.html: totals, events over time, errors by type with
recent messages, workflows, performance percentiles, the latest events,
and the integrity of the store as tailseal verify finds it (with the same
keys). The pages load nothing from anywhere: they open from disk, offline,
and print.
`)
	rf.register(fs)
	period := fs.String("period", "daily", "daily or weekly")
	output := fs.String("output", "reports", "the `DIR`ectory to write the pages to")
	latest := fs.Int("latest", 20, "how many of the latest events each page lists")
	check := fs.Bool("verify", true, "verify the whole store for the pages' integrity box (a full read of the store; --verify=false skips it)")
	cfg, s, f, err := setup("report", fs, args, &rf)
	if err != nil {
		return err
	}
	if *period != "daily" && *period != "weekly" {
		fmt.Fprintf(os.Stderr, "tailseal report: --period must be daily or weekly (got %q)\n", *period)
		return errUsage
	}
	integrity := report.Integrity{Summary: "Not checked: the report was made with --verify=false (run tailseal verify)"}
	if *check {
		integrity = checkIntegrity(ctx, cfg)
	}
	if err := interrupted(ctx, "report"); err != nil {
		return err
	}
	origin, _ := agent.StoreOrigin(cfg.DataDir) // a title without it is still a report
	pages, problems := report.Build(ctx, s, report.Options{Weekly: *period == "weekly", Filter: f, Latest: *latest, Integrity: integrity, Now: time.Now(),
		Origin: origin})
	if err := interrupted(ctx, "report"); err != nil {
		return err // no page written: a page from half a scan would mislead
	}
	if err := report.WriteAll(*output, pages, integrity); err != nil {
		fmt.Fprintf(os.Stderr, "tailseal report: %v\n", err)
		return err
	}
	if rf.json { // one object per page written, for scripts
		for _, p := range pages {
			writeJSON(struct {
				File   string    `json:"file"`
				Start  time.Time `json:"start"`
				End    time.Time `json:"end"`
				Events int       `json:"events"`
				Errors int       `json:"errors"`
			}{filepath.Join(*output, p.Name()), p.Start, p.End, p.Stats.Events, p.Stats.Errors})
		}
	}
	fmt.Fprintf(os.Stderr, "tailseal report: %d pages in %s (open %s/index.html); store: %s\n", len(pages), *output, *output, integrity.Summary)
	return answered("report", problems, len(pages), "events")
}

// checkIntegrity verifies the store as tailseal verify does, for the
// pages' status box.
func checkIntegrity(ctx context.Context, cfg *config.Config) report.Integrity {
	opt, notes, err := verifyOptions(cfg)
	if err != nil {
		return report.Integrity{Summary: "Not checked: " + err.Error()}
	}
	sum, err := newStoreSource(cfg.DataDir).run(ctx, opt)
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

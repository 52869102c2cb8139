package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tailseal/tailseal/agent/query"
	"github.com/tailseal/tailseal/signer/record"
)

const filterHelp = `
Filters combine: --lead, --type, --workflow, --subject, and a time range
(--last, or --since/--until). Times are the events' own timestamps.
The store is in $TAILSEAL_DATA_DIR, or --data-dir DIR. On a collector's
data dir (one with origins/) the command covers every origin's store, or
those --origin names, and each answer names its origin. Exit 0 on success, 1 when nothing
matched or a segment could not be read (the rest is still answered), 2 on
usage errors, a missing or empty store, an origin the data dir does not hold.
`

func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage, filterHelp, "\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

func runQuery(ctx context.Context, args []string) error {
	var rf readFlags
	fs := newFlagSet("query", `Usage: tailseal query [filters] [--limit N] [--verbose] [--json]

Prints the newest matching events first (by seq), at most --limit (50):
when more match, a line on stderr says how many (or at least how many:
the query stops reading once it has enough) and to use --limit. --json
prints the stored lines byte for byte, one per line, so they can be
verified, and no such line. Seals and
checkpoints are left out unless --type names them.

Across origins: the newest by timestamp, each origin's own in seq order,
with an ORIGIN column; --json prints {"origin":"…","record":<the stored
line, byte for byte>} per line.
`)
	rf.register(fs)
	limit := fs.Int("limit", 50, "at most `N` events")
	verbose := fs.Bool("verbose", false, "also print each event's details")
	_, rs, f, err := setup("query", fs, args, &rf)
	if err != nil {
		return err
	}
	if *limit <= 0 {
		fmt.Fprintln(os.Stderr, "tailseal query: --limit must be positive")
		return errUsage
	}
	f.AppOnly = f.Type == ""
	if rs.fleet {
		return queryFleet(ctx, rs, f, *limit, *verbose, rf.json)
	}
	recs, matched, problems := rs.one().NewestCounted(ctx, f, *limit)
	if err := interrupted(ctx, "query"); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	if rf.json {
		for _, r := range recs {
			out.Write(r.Line)
			out.WriteByte('\n')
		}
	} else if len(recs) > 0 {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "SEQ\tTIME\tTYPE\tLEAD\tWORKFLOW\tACTOR")
		if *verbose {
			fmt.Fprint(tw, "\tDETAILS")
		}
		fmt.Fprintln(tw)
		for _, r := range recs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s", r.Seq, cell(r.Timestamp), cell(r.Type), cell(r.Lead), cell(r.Workflow), cell(r.Actor))
			if *verbose {
				fmt.Fprintf(tw, "\t%s", r.Details)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	out.Flush()
	if !rf.json {
		moreThanShown("query", len(recs), matched, "events")
	}
	return answered("query", problems, len(recs), "events")
}

// moreThanShown tells, on stderr, that the limit cut the answer: how many
// matched (at least, when the query stopped reading once it had enough)
// and how to see more. Not with --json: scripts set their --limit.
func moreThanShown(cmd string, shown int, matched query.Matched, what string) {
	switch {
	case matched.Exact && matched.N <= shown:
	case matched.Exact:
		fmt.Fprintf(os.Stderr, "tailseal %s: showing the newest %d of %d matching %s; use --limit N to see more\n", cmd, shown, matched.N, what)
	case matched.N > shown:
		fmt.Fprintf(os.Stderr, "tailseal %s: showing the newest %d of at least %d matching %s; use --limit N to see more\n", cmd, shown, matched.N, what)
	default: // the segments not read may hold none
		fmt.Fprintf(os.Stderr, "tailseal %s: showing the newest %d; more may match: use --limit N to see more\n", cmd, shown)
	}
}

// cell keeps a table cell on one line and shows an empty value as "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.NewReplacer("\n", `\n`, "\t", " ").Replace(s)
}

func runStats(ctx context.Context, args []string) error {
	var rf readFlags
	fs := newFlagSet("stats", `Usage: tailseal stats [filters] [--json]

Counts events by type and workflow, errors and malformed lines, the first
and last event, events per day, and the personal data values the agent
replaced, by kind. Seals and checkpoints are not counted.

Across origins: a line per origin and one for all of them, then the counts
of all; --json prints {"origins":[<stats of each, with its origin>],"total":<stats>}.
`)
	rf.register(fs)
	_, rs, f, err := setup("stats", fs, args, &rf)
	if err != nil {
		return err
	}
	if rs.fleet {
		return statsFleet(ctx, rs, f, rf.json)
	}
	st, problems := rs.one().Stats(ctx, f)
	st.Origin = rs.targets[0].origin // "" when the store names none: stats still count
	if err := interrupted(ctx, "stats"); err != nil {
		return err
	}
	if rf.json {
		writeJSON(st)
	} else {
		printStats(st)
	}
	return answered("stats", problems, st.Events, "events")
}

func printStats(st *query.Stats) {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if st.Origin != "" {
		fmt.Fprintf(out, "Origin           %s\n", st.Origin)
	}
	fmt.Fprintf(out, "Events           %d\n", st.Events)
	fmt.Fprintf(out, "Errors           %d\n", st.Errors)
	fmt.Fprintf(out, "Malformed lines  %d\n", st.Malformed)
	fmt.Fprintf(out, "First event      %s\n", formatTime(st.First))
	fmt.Fprintf(out, "Last event       %s\n", formatTime(st.Last))
	if st.Unparsable > 0 {
		fmt.Fprintf(out, "Timestamps not RFC 3339: %d (not in first, last or per day)\n", st.Unparsable)
	}
	section(out, "By type", st.ByType, false)
	section(out, "By workflow", st.ByWorkflow, false)
	section(out, "Personal data replaced, by kind", st.Pseudonyms, false)
	section(out, "Events per day (UTC)", st.PerDay, true)
}

// section prints counts, largest first, or by key when byKey.
func section(out *bufio.Writer, title string, m map[string]int, byKey bool) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(out, "\n%s\n", title)
	keys := slices.Sorted(maps.Keys(m))
	if !byKey {
		slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	}
	kw, nw := 0, 0
	for _, k := range keys {
		kw, nw = max(kw, len(cell(k))), max(nw, len(strconv.Itoa(m[k])))
	}
	for _, k := range keys {
		fmt.Fprintf(out, "  %-*s  %*d\n", kw, cell(k), nw, m[k])
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func writeJSON(v any) {
	b, _ := json.Marshal(v)
	os.Stdout.Write(append(b, '\n'))
}

// errorView is one error event as the errors command shows it.
type errorView struct {
	Origin    string `json:"origin,omitempty"` // over a collector's origins
	Seq       uint64 `json:"seq"`
	Timestamp string `json:"timestamp"`
	Type      string `json:"error_type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback,omitempty"`
	Lead      string `json:"lead_id"`
	Workflow  string `json:"workflow"`
}

func newErrorView(r record.Record) errorView {
	return errorView{
		Seq: r.Seq, Timestamp: r.Timestamp, Lead: r.Lead, Workflow: r.Workflow,
		Type:      record.FirstString(r.Details, record.ErrorTypeKeys),
		Message:   record.FirstString(r.Details, record.MessageKeys),
		Traceback: record.FirstString(r.Details, record.TracebackKeys),
	}
}

func runErrors(ctx context.Context, args []string) error {
	var rf readFlags
	fs := newFlagSet("errors", `Usage: tailseal errors [filters] [--limit N] [--verbose] [--json]

Prints the most recent events of type error, newest first, with their error
type and message (details keys error_type/exception/type and
error_message/message/error), and the traceback under --verbose. When more
than --limit (20) match, a line on stderr says how many (at least) and to
use --limit; not with --json.

Across origins: the newest by timestamp, with an ORIGIN column (--json: an
"origin" field).
`)
	rf.register(fs)
	limit := fs.Int("limit", 20, "at most `N` errors")
	verbose := fs.Bool("verbose", false, "also print each error's traceback")
	_, rs, f, err := setup("errors", fs, args, &rf)
	if err != nil {
		return err
	}
	if *limit <= 0 {
		fmt.Fprintln(os.Stderr, "tailseal errors: --limit must be positive")
		return errUsage
	}
	if f.Type != "" && f.Type != record.TypeError {
		fmt.Fprintln(os.Stderr, "tailseal errors: --type cannot be used here: it shows events of type error")
		return errUsage
	}
	f.Type = record.TypeError
	if rs.fleet {
		return errorsFleet(ctx, rs, f, *limit, *verbose, rf.json)
	}
	recs, matched, problems := rs.one().NewestCounted(ctx, f, *limit)
	if err := interrupted(ctx, "errors"); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if !rf.json && !*verbose && len(recs) > 0 {
		fmt.Fprintln(tw, "SEQ\tTIME\tERROR\tLEAD\tWORKFLOW\tMESSAGE")
	}
	for _, r := range recs {
		v := newErrorView(r)
		switch {
		case rf.json:
			if !*verbose {
				v.Traceback = ""
			}
			b, _ := json.Marshal(v)
			out.Write(append(b, '\n'))
		case *verbose: // one block per error: tracebacks do not fit a table
			fmt.Fprintf(out, "#%d  %s  %s  lead %s  workflow %s\n  %s\n", v.Seq, cell(v.Timestamp), cell(v.Type), cell(v.Lead), cell(v.Workflow), v.Message)
			if v.Traceback != "" {
				fmt.Fprintf(out, "    %s\n", strings.ReplaceAll(strings.TrimRight(v.Traceback, "\n"), "\n", "\n    "))
			}
			out.WriteByte('\n')
		default:
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.Seq, cell(v.Timestamp), cell(v.Type), cell(v.Lead), cell(v.Workflow), cell(v.Message))
		}
	}
	tw.Flush()
	out.Flush()
	if !rf.json {
		moreThanShown("errors", len(recs), matched, "errors")
	}
	return answered("errors", problems, len(recs), "errors")
}

func runPerformance(ctx context.Context, args []string) error {
	var rf readFlags
	fs := newFlagSet("performance", `Usage: tailseal performance [--operation OP] [filters] [--json]

Exact duration percentiles (nearest rank) of events of type performance,
per operation (details "operation", else the workflow), from their
details "duration_ms", in milliseconds.

Across origins: a row per origin and operation, then one per operation over
all the origins selected ("all N origins"; --json: "all_origins":true).
`)
	rf.register(fs)
	op := fs.String("operation", "", "only this `OP`eration")
	_, rs, f, err := setup("performance", fs, args, &rf)
	if err != nil {
		return err
	}
	if rs.fleet {
		return performanceFleet(ctx, rs, f, *op, rf.json)
	}
	ops, problems := rs.one().Performance(ctx, f, *op)
	if err := interrupted(ctx, "performance"); err != nil {
		return err
	}
	if rf.json {
		out := bufio.NewWriter(os.Stdout)
		for _, o := range ops {
			b, _ := json.Marshal(o)
			out.Write(append(b, '\n'))
		}
		out.Flush()
	} else if len(ops) > 0 {
		w := len("OPERATION")
		for _, o := range ops {
			w = max(w, len(cell(o.Name)))
		}
		fmt.Printf("%-*s %8s %9s %9s %9s %9s %9s %9s\n", w, "OPERATION", "COUNT", "MIN ms", "AVG ms", "P50 ms", "P95 ms", "P99 ms", "MAX ms")
		for _, o := range ops {
			fmt.Printf("%-*s %8d %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", w, cell(o.Name), o.Count, o.Min, o.Avg, o.P50, o.P95, o.P99, o.Max)
		}
	}
	return answered("performance", problems, len(ops), "performance events")
}

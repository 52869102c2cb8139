package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tailseal/tailseal/agent/query"
	"github.com/tailseal/tailseal/signer/record"
)

// The read commands over a collector's origins (fleet.go): the same
// answers as over one store, each naming its origin.

// newestOf asks every target for its limit newest matching records and
// merges them by timestamp (newestAcross); matched adds up what matched in
// each.
func newestOf(ctx context.Context, rs *readSet, f query.Filter, limit int) ([]tagged, query.Matched, []problemsOf) {
	lists := make([][]record.Record, len(rs.targets))
	var problems []problemsOf
	total := query.Matched{Exact: true}
	for i, t := range rs.targets {
		if ctx.Err() != nil {
			break
		}
		var p []query.Problem
		var m query.Matched
		lists[i], m, p = t.NewestCounted(ctx, f, limit)
		total.N, total.Exact = total.N+m.N, total.Exact && m.Exact
		problems = append(problems, problemsOf{t.origin, p})
	}
	return newestAcross(lists, limit), total, problems
}

// appendEnvelope appends {"origin":"…","record":<line>}: the stored line
// byte for byte inside, so that it still verifies once taken out.
func appendEnvelope(b []byte, origin string, line []byte) []byte {
	b = append(b, `{"origin":`...)
	b = record.AppendString(b, []byte(origin))
	b = append(b, `,"record":`...)
	b = append(b, line...)
	return append(b, '}')
}

func queryFleet(ctx context.Context, rs *readSet, f query.Filter, limit int, verbose, asJSON bool) error {
	recs, matched, problems := newestOf(ctx, rs, f, limit)
	if err := interrupted(ctx, "query"); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	if asJSON {
		var b []byte
		for _, r := range recs {
			b = appendEnvelope(b[:0], rs.targets[r.at].origin, r.rec.Line)
			out.Write(append(b, '\n'))
		}
	} else if len(recs) > 0 {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "ORIGIN\tSEQ\tTIME\tTYPE\tLEAD\tWORKFLOW\tACTOR")
		if verbose {
			fmt.Fprint(tw, "\tDETAILS")
		}
		fmt.Fprintln(tw)
		for _, t := range recs {
			r := t.rec
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s", rs.targets[t.at].origin, r.Seq, cell(r.Timestamp), cell(r.Type), cell(r.Lead), cell(r.Workflow), cell(r.Actor))
			if verbose {
				fmt.Fprintf(tw, "\t%s", r.Details)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	out.Flush()
	if !asJSON {
		moreThanShown("query", len(recs), matched, "events")
	}
	return answeredAcross("query", problems, len(recs), "events")
}

func statsFleet(ctx context.Context, rs *readSet, f query.Filter, asJSON bool) error {
	var each []*query.Stats
	var problems []problemsOf
	total := query.NewStats()
	for _, t := range rs.targets {
		if ctx.Err() != nil {
			break
		}
		st, p := t.Stats(ctx, f)
		st.Origin = t.origin
		each = append(each, st)
		total.Merge(st)
		problems = append(problems, problemsOf{t.origin, p})
	}
	if err := interrupted(ctx, "stats"); err != nil {
		return err
	}
	if asJSON {
		writeJSON(struct {
			Origins []*query.Stats `json:"origins"`
			Total   *query.Stats   `json:"total"`
		}{each, total})
	} else {
		printFleetStats(each, total)
	}
	return answeredAcross("stats", problems, total.Events, "events")
}

// printFleetStats prints a line of figures per origin and one for all,
// then the counts over all of them, as stats prints one store's.
func printFleetStats(each []*query.Stats, total *query.Stats) {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	all := allOrigins(len(each))
	w := len(all)
	for _, st := range each {
		w = max(w, len(st.Origin))
	}
	row := func(name string, st *query.Stats) {
		fmt.Fprintf(out, "%-*s  %8d  %8d  %9d  %-20s  %s\n", w, name, st.Events, st.Errors, st.Malformed, formatTime(st.First), formatTime(st.Last))
	}
	fmt.Fprintf(out, "%-*s  %8s  %8s  %9s  %-20s  %s\n", w, "ORIGIN", "EVENTS", "ERRORS", "MALFORMED", "FIRST EVENT", "LAST EVENT")
	for _, st := range each {
		row(st.Origin, st)
	}
	row(all, total)
	if total.Unparsable > 0 {
		fmt.Fprintf(out, "\nTimestamps not RFC 3339: %d (not in first, last or per day)\n", total.Unparsable)
	}
	in := " (" + all + ")"
	section(out, "By type"+in, total.ByType, false)
	section(out, "By workflow"+in, total.ByWorkflow, false)
	section(out, "Personal data replaced, by kind"+in, total.Pseudonyms, false)
	section(out, "Events per day (UTC)"+in, total.PerDay, true)
}

func errorsFleet(ctx context.Context, rs *readSet, f query.Filter, limit int, verbose, asJSON bool) error {
	recs, matched, problems := newestOf(ctx, rs, f, limit)
	if err := interrupted(ctx, "errors"); err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if !asJSON && !verbose && len(recs) > 0 {
		fmt.Fprintln(tw, "ORIGIN\tSEQ\tTIME\tERROR\tLEAD\tWORKFLOW\tMESSAGE")
	}
	for _, r := range recs {
		v := newErrorView(r.rec)
		v.Origin = rs.targets[r.at].origin
		switch {
		case asJSON:
			if !verbose {
				v.Traceback = ""
			}
			b, _ := json.Marshal(v)
			out.Write(append(b, '\n'))
		case verbose:
			fmt.Fprintf(out, "%s #%d  %s  %s  lead %s  workflow %s\n  %s\n", v.Origin, v.Seq, cell(v.Timestamp), cell(v.Type), cell(v.Lead), cell(v.Workflow), v.Message)
			if v.Traceback != "" {
				fmt.Fprintf(out, "    %s\n", strings.ReplaceAll(strings.TrimRight(v.Traceback, "\n"), "\n", "\n    "))
			}
			out.WriteByte('\n')
		default:
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", v.Origin, v.Seq, cell(v.Timestamp), cell(v.Type), cell(v.Lead), cell(v.Workflow), cell(v.Message))
		}
	}
	tw.Flush()
	out.Flush()
	if !asJSON {
		moreThanShown("errors", len(recs), matched, "errors")
	}
	return answeredAcross("errors", problems, len(recs), "errors")
}

// originOperation is a row of performance over origins: one origin's
// operation, or (All) the operation over every origin selected.
type originOperation struct {
	Origin string `json:"origin,omitempty"`
	All    bool   `json:"all_origins,omitempty"`
	query.Operation
}

func performanceFleet(ctx context.Context, rs *readSet, f query.Filter, op string, asJSON bool) error {
	var rows []originOperation
	var problems []problemsOf
	all := map[string][]float64{}
	for _, t := range rs.targets {
		if ctx.Err() != nil {
			break
		}
		durs, p := t.Durations(ctx, f, op)
		problems = append(problems, problemsOf{t.origin, p})
		for _, name := range slices.Sorted(maps.Keys(durs)) {
			rows = append(rows, originOperation{Origin: t.origin, Operation: query.Summarize(name, durs[name])})
			all[name] = append(all[name], durs[name]...)
		}
	}
	if err := interrupted(ctx, "performance"); err != nil {
		return err
	}
	if len(rs.targets) > 1 {
		for _, name := range slices.Sorted(maps.Keys(all)) {
			rows = append(rows, originOperation{All: true, Operation: query.Summarize(name, all[name])})
		}
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if asJSON {
		for _, r := range rows {
			b, _ := json.Marshal(r)
			out.Write(append(b, '\n'))
		}
	} else if len(rows) > 0 {
		label := func(r originOperation) string {
			if r.All {
				return allOrigins(len(rs.targets))
			}
			return r.Origin
		}
		ow, w := len("ORIGIN"), len("OPERATION")
		for _, r := range rows {
			ow, w = max(ow, len(label(r))), max(w, len(cell(r.Name)))
		}
		fmt.Fprintf(out, "%-*s %-*s %8s %9s %9s %9s %9s %9s %9s\n", ow, "ORIGIN", w, "OPERATION", "COUNT", "MIN ms", "AVG ms", "P50 ms", "P95 ms", "P99 ms", "MAX ms")
		for _, r := range rows {
			fmt.Fprintf(out, "%-*s %-*s %8d %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", ow, label(r), w, cell(r.Name), r.Count, r.Min, r.Avg, r.P50, r.P95, r.P99, r.Max)
		}
	}
	out.Flush()
	return answeredAcross("performance", problems, len(rows), "performance events")
}

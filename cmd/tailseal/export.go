package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/tailseal/tailseal/signer/record"
)

func runExport(ctx context.Context, args []string) error {
	var rf readFlags
	fs := newFlagSet("export", `Usage: tailseal export --format csv|json|jsonl --output FILE [filters]

Writes the matching events in seq order, streamed: memory stays flat
whatever the store's size. jsonl is the stored lines byte for byte (they
still verify); json is one array of those records; csv has the columns
seq, timestamp, event_type, actor, lead_id, workflow and details (as JSON). FILE is written whole or not at all
(Ctrl-C leaves no file); --output - writes to standard output. Seals and checkpoints are left out
unless --type names them.
`)
	rf.register(fs)
	format := fs.String("format", "", "csv, json or jsonl")
	output := fs.String("output", "", "the `FILE` to write, - for standard output")
	_, s, f, err := setup("export", fs, args, &rf)
	if err != nil {
		return err
	}
	if *format != "csv" && *format != "json" && *format != "jsonl" {
		fmt.Fprintf(os.Stderr, "tailseal export: --format must be csv, json or jsonl (got %q)\n", *format)
		return errUsage
	}
	if *output == "" {
		fmt.Fprintln(os.Stderr, "tailseal export: --output FILE is required (- for standard output)")
		return errUsage
	}
	var w io.Writer = os.Stdout
	var tmp *os.File
	if *output != "-" {
		tmp, err = os.CreateTemp(filepath.Dir(*output), "."+filepath.Base(*output)+".*.tmp")
		if err != nil {
			fmt.Fprintf(os.Stderr, "tailseal export: %v\n", err)
			return errUsage
		}
		defer os.Remove(tmp.Name()) // a no-op after the rename
		defer tmp.Close()
		w = tmp
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := newExporter(*format, bw)
	var bar *progressBar
	if *output != "-" {
		bar = newProgressBar("exporting", s.Bytes())
	}
	var done int64
	n := 0
	f.AppOnly = f.Type == ""
	problems, err := s.Forward(ctx, f, func(h *record.Head) error {
		n++
		done += int64(len(h.Line)) + 1
		bar.set(done)
		return enc.write(h)
	})
	if err == nil {
		err = enc.close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && tmp != nil {
		if err = tmp.Sync(); err == nil {
			if err = tmp.Close(); err == nil {
				err = os.Rename(tmp.Name(), *output)
			}
		}
	}
	bar.finish()
	if ierr := interrupted(ctx, "export"); ierr != nil {
		return ierr // the temporary file is removed: nothing written
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tailseal export: %v\n", err)
		return err
	}
	if *output != "-" {
		fmt.Fprintf(os.Stderr, "tailseal export: %d events written to %s\n", n, *output)
	}
	return answered("export", problems, n, "events")
}

// exporter writes records in one format.
type exporter struct {
	format string
	w      *bufio.Writer
	csv    *csv.Writer
	n      int
	row    []string
}

// CSVHeader is the header row of a CSV export.
var CSVHeader = []string{"seq", "timestamp", "event_type", "actor", "lead_id", "workflow", "details"}

func newExporter(format string, w *bufio.Writer) *exporter {
	e := &exporter{format: format, w: w}
	if format == "csv" {
		e.csv = csv.NewWriter(w)
		e.csv.Write(CSVHeader)
	}
	if format == "json" {
		w.WriteString("[\n")
	}
	return e
}

func (e *exporter) write(h *record.Head) error {
	defer func() { e.n++ }()
	switch e.format {
	case "csv":
		e.row = append(e.row[:0], strconv.FormatUint(h.Seq, 10), record.Text(h.Timestamp), record.Text(h.Type),
			record.Text(h.Actor), record.Text(h.Lead), record.Text(h.Workflow), string(h.Details))
		return e.csv.Write(e.row)
	case "json":
		if e.n > 0 {
			e.w.WriteString(",\n")
		}
	}
	_, err := e.w.Write(h.Line)
	if e.format == "jsonl" {
		e.w.WriteByte('\n')
	}
	return err
}

func (e *exporter) close() error {
	switch e.format {
	case "csv":
		e.csv.Flush()
		return e.csv.Error()
	case "json":
		_, err := e.w.WriteString("\n]\n")
		return err
	}
	return nil
}

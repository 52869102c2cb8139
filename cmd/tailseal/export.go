package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tailseal/tailseal/agent/query"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/merkle"
	"github.com/tailseal/tailseal/signer/record"
)

func runExport(ctx context.Context, args []string) error {
	var rf readFlags
	fs := newFlagSet("export", `Usage: tailseal export --format csv|json|jsonl --output FILE [filters]

Writes the matching events in seq order, streamed: memory stays flat
whatever the store's size. jsonl is the stored lines byte for byte (they
still verify); json is one array of those records; csv has the columns
seq, timestamp, event_type, actor, lead_id, workflow and details (as JSON),
and a cell that begins with =, +, -, @, a tab or a carriage return gets a
leading ' so that a spreadsheet shows it as text instead of running it as a
formula (OWASP, CSV injection): remove it to compare with the store. json
and jsonl are left as stored. FILE is written whole or not at all (Ctrl-C
leaves no file); --output - writes to standard output. Seals and
checkpoints are left out unless --type names them.

--proofs (jsonl; one store, or one --origin) makes the export verifiable alone: its first
line is the newest checkpoint ({"origin","size","checkpoint": the signed
note}), and each record after it is {"index","record","proof"}, its
inclusion proof against that checkpoint. tailseal verify-proof FILE checks
it with the checkpoint verifier key alone. Records after that checkpoint
are in no signed tree yet and are left out (stderr says how many).

Across origins: origin after origin (by name), each in seq order. jsonl is
{"origin":"…","record":<the stored line, byte for byte>} per line, json an
array of those, and csv has an origin column first. To export one origin's
stored lines bare, point TAILSEAL_DATA_DIR at its origins/<token> directory.
`)
	rf.register(fs)
	format := fs.String("format", "", "csv, json or jsonl")
	output := fs.String("output", "", "the `FILE` to write, - for standard output")
	proofs := fs.Bool("proofs", false, "with each record's inclusion proof against the newest checkpoint (jsonl, one store or --origin)")
	_, rs, f, err := setup("export", fs, args, &rf)
	if err != nil {
		return err
	}
	var tp *treeStore
	if *proofs {
		if *format != "jsonl" || len(rs.targets) != 1 {
			fmt.Fprintln(os.Stderr, "tailseal export: --proofs writes jsonl of one store (--format jsonl; on a collector, name one origin with --origin)")
			return errUsage
		}
		if tp, err = openTree("export", rs.targets[0].dataDir); err != nil {
			return err
		}
		defer tp.close()
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
	enc := newExporter(*format, bw, rs.fleet && tp == nil) // with proofs, the checkpoint names the origin
	if tp != nil {
		if err := enc.withProofs(tp); err != nil {
			return tp.fail(err)
		}
	}
	var bar *progressBar
	if *output != "-" {
		var total int64
		for _, t := range rs.targets {
			total += t.Bytes()
		}
		bar = newProgressBar("exporting", total)
	}
	var done int64
	n := 0
	f.AppOnly = f.Type == ""
	var problems []problemsOf
	for _, t := range rs.targets {
		enc.origin = t.origin
		var p []query.Problem
		p, err = t.Forward(ctx, f, func(h *record.Head) error {
			n++
			done += int64(len(h.Line)) + 1
			bar.set(done)
			return enc.write(h)
		})
		problems = append(problems, problemsOf{t.origin, p})
		if err != nil {
			break
		}
	}
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
		fmt.Fprintf(os.Stderr, "tailseal export: %d events written to %s\n", n-enc.unproven, *output)
	}
	if enc.unproven > 0 {
		fmt.Fprintf(os.Stderr, "tailseal export: %d matching events after checkpoint %d are left out: they are in no signed tree yet\n", enc.unproven, enc.proofs.size)
	}
	return answeredAcross("export", problems, n, "events")
}

// exporter writes records in one format. Over a collector's origins
// (fleet) each record names its origin, the one set last.
type exporter struct {
	format string
	w      *bufio.Writer
	csv    *csv.Writer
	n      int
	row    []string
	fleet  bool
	origin string
	buf    []byte
	// With --proofs: the tree and checkpoint every record is proven
	// against, and how many records came after it.
	proofs struct {
		tree *treeStore
		cl   record.CheckpointLine
		c    signer.Checkpoint
		size uint64
	}
	unproven int
}

// withProofs starts an export with proofs: the newest checkpoint first.
func (e *exporter) withProofs(tp *treeStore) error {
	cl, c, err := tp.checkpoint(0)
	if err != nil {
		return err
	}
	e.proofs.tree, e.proofs.cl, e.proofs.c, e.proofs.size = tp, cl, c, c.Size
	b, _ := json.Marshal(merkle.ExportHeader{Origin: c.Origin, Size: c.Size, Checkpoint: cl.Note})
	e.w.Write(append(b, '\n'))
	return nil
}

// writeProven writes a record with its inclusion proof.
func (e *exporter) writeProven(h *record.Head) error {
	p := &e.proofs
	if h.Seq > p.size {
		e.unproven++
		return nil
	}
	b, err := p.tree.inclusion(p.cl, p.c, h.Seq, h.Line)
	if err != nil {
		return err
	}
	line, _ := json.Marshal(merkle.ExportRecord{Index: b.Index, Record: b.Record, Proof: b.Proof})
	_, err = e.w.Write(append(line, '\n'))
	return err
}

// CSVHeader is the header row of a CSV export.
var CSVHeader = []string{"seq", "timestamp", "event_type", "actor", "lead_id", "workflow", "details"}

func newExporter(format string, w *bufio.Writer, fleet bool) *exporter {
	e := &exporter{format: format, w: w, fleet: fleet}
	if format == "csv" {
		e.csv = csv.NewWriter(w)
		if fleet {
			e.csv.Write(append([]string{"origin"}, CSVHeader...))
		} else {
			e.csv.Write(CSVHeader)
		}
	}
	if format == "json" {
		w.WriteString("[\n")
	}
	return e
}

func (e *exporter) write(h *record.Head) error {
	defer func() { e.n++ }()
	if e.proofs.tree != nil {
		return e.writeProven(h)
	}
	switch e.format {
	case "csv":
		e.row = e.row[:0]
		if e.fleet {
			e.row = append(e.row, e.origin)
		}
		e.row = append(e.row, strconv.FormatUint(h.Seq, 10), record.Text(h.Timestamp), record.Text(h.Type),
			record.Text(h.Actor), record.Text(h.Lead), record.Text(h.Workflow), string(h.Details))
		for i := range e.row {
			e.row[i] = csvSafe(e.row[i])
		}
		return e.csv.Write(e.row)
	case "json":
		if e.n > 0 {
			e.w.WriteString(",\n")
		}
	}
	line := h.Line
	if e.fleet {
		e.buf = appendEnvelope(e.buf[:0], e.origin, h.Line)
		line = e.buf
	}
	_, err := e.w.Write(line)
	if e.format == "jsonl" {
		e.w.WriteByte('\n')
	}
	return err
}

// csvSafe keeps a spreadsheet from running a cell as a formula (OWASP,
// CSV injection): the application's values reach the export as they were
// logged, and one that begins with =, +, -, @, a tab or a carriage return
// gets a leading single quote, which spreadsheets show as text.
func csvSafe(cell string) string {
	if cell != "" && strings.IndexByte("=+-@\t\r", cell[0]) >= 0 {
		return "'" + cell
	}
	return cell
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

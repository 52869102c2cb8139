package main

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer/record"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var (
	cliStoreOnce sync.Once
	cliStoreDir  string
	cliStoreErr  error
	cliHMACKey   = bytes.Repeat([]byte{1}, 32)
	cliPIIKey    = bytes.Repeat([]byte{2}, 32)
)

// cliStore is a store built once from a fixed generated input: 6,000
// events a minute apart from 2026-02-01, in many compressed segments.
func cliStore(t *testing.T) string {
	cliStoreOnce.Do(func() {
		cliStoreDir, cliStoreErr = os.MkdirTemp("", "tailseal-cli")
		if cliStoreErr == nil {
			cliStoreErr = benchdata.BuildStore(benchdata.StoreOptions{DataDir: cliStoreDir, Events: 6000,
				Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), Step: time.Minute,
				SegmentMax: 64 << 10, HMACKey: cliHMACKey, PIIKey: cliPIIKey})
		}
	})
	if cliStoreErr != nil {
		t.Fatal(cliStoreErr)
	}
	return cliStoreDir
}

// cli runs a read command against dataDir and returns stdout, stderr and
// the exit code.
func cli(t *testing.T, dataDir string, args ...string) (string, string, int) {
	t.Helper()
	return cliEnv(t, dataDir, nil, args...)
}

// cliEnv is cli with more environment variables, which win over cli's.
func cliEnv(t *testing.T, dataDir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), "TAILSEAL_DATA_DIR="+dataDir, "TAILSEAL_PII_KEY="+hex.EncodeToString(cliPIIKey),
		"TAILSEAL_HMAC_KEY="+hex.EncodeToString(cliHMACKey))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// Each command's output, table and --json, against a golden file.
func TestReadCommandsGolden(t *testing.T) {
	data := cliStore(t)
	cases := []struct {
		name string
		args []string
	}{
		{"stats", []string{"stats"}},
		{"stats_json", []string{"stats", "--json"}},
		{"stats_workflow", []string{"stats", "--workflow", "crm_sync", "--since", "2026-02-02", "--until", "2026-02-03T12:00:00Z"}},
		{"query_lead", []string{"query", "--lead", "LEAD-0000007", "--verbose"}},
		{"query_type_json", []string{"query", "--type", "error", "--limit", "3", "--json"}},
		{"query_window", []string{"query", "--since", "2026-02-03T10:00:00Z", "--until", "2026-02-03T10:05:00Z"}},
		{"query_subject", []string{"query", "--subject", "Lead7@Example.com", "--limit", "5"}},
		{"errors", []string{"errors", "--limit", "5"}},
		{"errors_verbose", []string{"errors", "--limit", "2", "--verbose"}},
		{"errors_json", []string{"errors", "--limit", "2", "--json"}},
		{"performance", []string{"performance"}},
		{"performance_json", []string{"performance", "--operation", "crm_upsert", "--json"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, code := cli(t, data, c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			golden := filepath.Join("testdata", "golden", c.name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestReadCommandsGolden -update)", err)
			}
			if out != string(want) {
				t.Errorf("tailseal %s differs from %s:\n%s", strings.Join(c.args, " "), golden, out)
			}
		})
	}
}

// Bad input gets one clear line and exit 2; nothing matched is exit 1.
func TestReadCommandsUsage(t *testing.T) {
	data := cliStore(t)
	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "store"), 0o700); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dir     string
		args    []string
		code    int
		message string
	}{
		{data, []string{"query", "--since", "yesterday"}, 2, `--since "yesterday": want RFC 3339`},
		{data, []string{"query", "--last", "3x"}, 2, `--last "3x": want a positive duration`},
		{data, []string{"query", "--bogus"}, 2, "tailseal query: unknown flag --bogus; see tailseal query --help"},
		{data, []string{"query", "extra"}, 2, `unexpected argument "extra"`},
		{data, []string{"export", "--format", "xml", "--output", "x"}, 2, "--format must be csv, json or jsonl"},
		{filepath.Join(empty, "nope"), []string{"stats"}, 2, "no store in"},
		{empty, []string{"query"}, 2, "is empty: nothing has been ingested yet"},
		{data, []string{"query", "--lead", "LEAD-9999999"}, 1, "no events match"},
		{data, []string{"query", "--help"}, 0, "Usage: tailseal query"},
	}
	for _, c := range cases {
		_, stderr, code := cli(t, c.dir, c.args...)
		if code != c.code || !strings.Contains(stderr, c.message) || strings.Contains(stderr, "goroutine") {
			t.Errorf("tailseal %s: exit %d, stderr:\n%s\nwant exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.message)
		}
	}
}

// Export: CSV read back with encoding/csv equals the stored records, JSON
// parses to the same records, JSONL is the stored lines byte for byte.
func TestExport(t *testing.T) {
	data := cliStore(t)
	var stored []map[string]any
	var lines []string
	err := store.Scan(filepath.Join(data, "store"), func(_ store.Segment, _ int, line []byte) error {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			return err
		}
		if t, _ := m["event_type"].(string); record.Internal([]byte(t)) {
			return nil
		}
		stored, lines = append(stored, m), append(lines, string(line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, format := range []string{"csv", "json", "jsonl"} {
		out := filepath.Join(dir, "export."+format)
		if _, stderr, code := cli(t, data, "export", "--format", format, "--output", out); code != 0 {
			t.Fatalf("export %s: exit %d: %s", format, code, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		switch format {
		case "csv":
			rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(stored)+1 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
				t.Fatalf("csv: %d rows for %d records, header %v", len(rows), len(stored), rows[0])
			}
			for i, m := range stored {
				row := rows[i+1]
				details, _ := json.Marshal(m["details"])
				var back any
				if err := json.Unmarshal([]byte(row[6]), &back); err != nil {
					t.Fatalf("row %d: details %q: %v", i, row[6], err)
				}
				backJSON, _ := json.Marshal(back)
				want := []string{jsonNumber(m["seq"]), m["timestamp"].(string), m["event_type"].(string), m["actor"].(string), m["lead_id"].(string), m["workflow"].(string)}
				if strings.Join(row[:6], "|") != strings.Join(want, "|") || string(backJSON) != string(details) {
					t.Fatalf("row %d: %q\nwant %q %s", i, row, want, details)
				}
			}
		case "json":
			var got []map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(stored)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Fatalf("json export: %d records, not the %d stored", len(got), len(stored))
			}
		case "jsonl":
			if string(b) != strings.Join(lines, "\n")+"\n" {
				t.Fatal("jsonl export is not the stored lines byte for byte")
			}
		}
	}
	// Filters apply, and a file that exists is replaced whole.
	out := filepath.Join(dir, "export.csv")
	if _, stderr, code := cli(t, data, "export", "--format", "csv", "--output", out, "--type", "error"); code != 0 {
		t.Fatal(stderr)
	}
	rows, _ := csv.NewReader(bytes.NewReader(readFile(t, out))).ReadAll()
	for _, row := range rows[1:] {
		if row[2] != "error" {
			t.Fatalf("--type error exported %q", row)
		}
	}
	if len(rows) != 6000/8+1 {
		t.Fatalf("%d error rows, want %d", len(rows)-1, 6000/8)
	}
}

// A CSV export neutralizes cells a spreadsheet would run as formulas
// (OWASP: a leading =, +, -, @, tab or carriage return gets a '); other
// cells, and the jsonl export, keep the stored values.
func TestExportCSVNeutralizesFormulas(t *testing.T) {
	e := newEnv(t, "TAILSEAL_PII_MODE=off")
	p := e.start()
	lines := []string{
		`{"timestamp":"2026-02-04T10:00:00Z","event_type":"=cmd|' /C calc'!A0","actor":"+SUM(1,2)","lead_id":"-2+3","workflow":"@SUM(A1)","details":{"note":"=HYPERLINK(\"http://x\")"}}`,
		`{"timestamp":"2026-02-04T10:00:01Z","event_type":"\tx","actor":"\rx","lead_id":"L-1","workflow":"a=b","details":{}}`,
		`{"timestamp":"2026-02-04T10:00:02Z","event_type":"lead_ingested","actor":"system","lead_id":"L-2","workflow":"sales","details":{}}`,
	}
	if err := os.WriteFile(e.source, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.waitStored(3)
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.csv")
	if _, stderr, code := cli(t, e.dataDir, "export", "--format", "csv", "--output", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rows, err := csv.NewReader(bytes.NewReader(readFile(t, out))).ReadAll()
	if err != nil || len(rows) != 4 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	want := [][]string{
		{"'=cmd|' /C calc'!A0", "'+SUM(1,2)", "'-2+3", "'@SUM(A1)", `{"note":"=HYPERLINK(\"http://x\")"}`},
		{"'\tx", "'\rx", "L-1", "a=b", "{}"},
		{"lead_ingested", "system", "L-2", "sales", "{}"},
	}
	for i, w := range want {
		if got := rows[i+1][2:]; strings.Join(got, "|") != strings.Join(w, "|") {
			t.Errorf("row %d: %q, want %q", i+1, got, w)
		}
	}
	jsonl := filepath.Join(t.TempDir(), "x.jsonl")
	if _, stderr, code := cli(t, e.dataDir, "export", "--format", "jsonl", "--output", jsonl); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if b := readFile(t, jsonl); !bytes.Contains(b, []byte(`"event_type":"=cmd|' /C calc'!A0","actor":"+SUM(1,2)"`)) {
		t.Errorf("jsonl changed the stored values:\n%s", b)
	}
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A corrupt segment is named on stderr with exit 1; the answer covers the
// rest of the store.
func TestReadCommandsReportDamage(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	copyDir(t, cliStore(t), data)
	segs, _ := store.List(filepath.Join(data, "store"))
	bad := filepath.Join(data, "store", segs[2].Name)
	if err := os.Truncate(bad, 500); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := cli(t, data, "stats", "--json")
	if code != 1 || !strings.Contains(stderr, segs[2].Name) || strings.Count(strings.TrimSpace(stderr), "\n") > 3 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var st struct{ Events int }
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Events < 5000 || st.Events >= 6000 {
		t.Fatalf("stats over the rest: %s (%v)", out, err)
	}
	t.Logf("%d events answered; stderr:\n%s", st.Events, stderr)
}

// report --json lists the pages it wrote; their events add up to the store.
func TestReportJSON(t *testing.T) {
	data, out := cliStore(t), t.TempDir()
	stdout, stderr, code := cli(t, data, "report", "--json", "--verify=false", "--output", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	total, pages := 0, 0
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var p struct {
			File   string
			Events int
		}
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if _, err := os.Stat(p.File); err != nil {
			t.Error(err)
		}
		total, pages = total+p.Events, pages+1
	}
	files, _ := filepath.Glob(filepath.Join(out, "2026-*.html"))
	if total != 6000 || pages != len(files) || !strings.Contains(stderr, "Not checked") {
		t.Errorf("%d pages (%d files) with %d events; stderr %s", pages, len(files), total, stderr)
	}
}

// A mistake in the flags is one line that says what is wrong and where the
// help is, for every command, not the whole help; --help is the help.
func TestFlagMistakeIsOneLine(t *testing.T) {
	for _, cmd := range []string{"run", "keygen", "verify", "query", "stats", "errors", "performance", "export", "report", "config"} {
		t.Run(cmd, func(t *testing.T) {
			_, stderr, code := runCLI(t, nil, cmd, "--foo")
			if want := "tailseal " + cmd + ": unknown flag --foo; see tailseal " + cmd + " --help\n"; code != 2 || stderr != want {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr, want)
			}
			_, stderr, code = runCLI(t, nil, cmd, "--data-dir")
			if want := "tailseal " + cmd + ": flag --data-dir needs a value; see tailseal " + cmd + " --help\n"; code != 2 || stderr != want {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr, want)
			}
			_, stderr, code = runCLI(t, nil, cmd, "--help")
			if code != 0 || !strings.HasPrefix(stderr, "Usage: tailseal "+cmd) || !strings.Contains(stderr, "-data-dir DIR") {
				t.Errorf("--help: exit %d, stderr:\n%s", code, stderr)
			}
		})
	}
}

// --data-dir points every read command and verify at a store, and wins
// over TAILSEAL_DATA_DIR.
func TestDataDirFlag(t *testing.T) {
	data := cliStore(t)
	elsewhere := filepath.Join(t.TempDir(), "none")
	want, _, _ := cli(t, data, "stats", "--json")
	for _, args := range [][]string{{"stats", "--json"}, {"query", "--limit", "3"}, {"errors", "--limit", "1"}, {"performance"},
		{"export", "--format", "jsonl", "--output", filepath.Join(t.TempDir(), "x.jsonl")}, {"report", "--verify=false", "--output", t.TempDir()}, {"verify"}} {
		stdout, stderr, code := cli(t, elsewhere, append(args, "--data-dir", data)...)
		if code != 0 || args[0] == "stats" && stdout != want {
			t.Errorf("tailseal %s --data-dir: exit %d, stderr %s", strings.Join(args, " "), code, stderr)
		}
	}
	if _, stderr, code := cli(t, data, "stats", "--data-dir", elsewhere); code != 2 || !strings.Contains(stderr, elsewhere) {
		t.Errorf("--data-dir does not win over TAILSEAL_DATA_DIR: exit %d, %s", code, stderr)
	}
	keys := filepath.Join(t.TempDir(), "new")
	if _, stderr, code := runCLI(t, []string{"TAILSEAL_DATA_DIR=" + elsewhere}, "keygen", "--data-dir", keys); code != 0 {
		t.Errorf("keygen --data-dir: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(keys, "keys", "checkpoint.pub")); err != nil {
		t.Errorf("keygen --data-dir: %v", err)
	}
}

// query and errors say on stderr when their limit cut the answer, and how
// many matched: exactly when every segment was read, else at least; not
// with --json, nor when everything matching is shown.
func TestQuerySaysWhenTheLimitCutsTheAnswer(t *testing.T) {
	data := cliStore(t)
	cases := []struct {
		args []string
		note string // a regexp; "" for no note
	}{
		{[]string{"query"}, `^tailseal query: showing the newest 50 of at least \d+ matching events; use --limit N to see more\n$`},
		{[]string{"query", "--type", "error", "--limit", "10"}, `^tailseal query: showing the newest 10 of at least \d+ matching events; use --limit N`},
		{[]string{"query", "--limit", "5999"}, `^tailseal query: showing the newest 5999 of 6000 matching events`},
		{[]string{"query", "--limit", "6000"}, ""},
		{[]string{"query", "--limit", "100000"}, ""},
		{[]string{"query", "--json"}, ""},
		{[]string{"query", "--lead", "LEAD-0000007", "--limit", "2"}, `^tailseal query: showing the newest 2 of \d+ matching events`},
		{[]string{"errors"}, `^tailseal errors: showing the newest 20 of at least \d+ matching errors; use --limit N to see more\n$`},
		{[]string{"errors", "--json"}, ""},
	}
	for _, c := range cases {
		stdout, stderr, code := cli(t, data, c.args...)
		if code != 0 {
			t.Errorf("tailseal %s: exit %d, %s", strings.Join(c.args, " "), code, stderr)
			continue
		}
		if c.note == "" && stderr != "" || c.note != "" && !regexp.MustCompile(c.note).MatchString(stderr) {
			t.Errorf("tailseal %s: stderr %q, want %s", strings.Join(c.args, " "), stderr, c.note)
		}
		if m := regexp.MustCompile(`(\d+) matching`).FindStringSubmatch(stderr); c.note != "" && m != nil {
			if n, _ := strconv.Atoi(m[1]); n <= strings.Count(stdout, "\n")-1 {
				t.Errorf("tailseal %s: %d matching, %d lines shown", strings.Join(c.args, " "), n, strings.Count(stdout, "\n"))
			}
		}
	}
	f := makeFleet(t)
	if _, stderr, _ := tailseal(t, f.dir, nil, "query", "--limit", "4"); !regexp.MustCompile(`^tailseal query: showing the newest 4 of (at least )?\d+ matching events`).MatchString(stderr) {
		t.Errorf("over origins: stderr %q", stderr)
	}
}

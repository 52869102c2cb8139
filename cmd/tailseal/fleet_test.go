package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/store"
	"github.com/tailseal/tailseal/signer"
	"github.com/tailseal/tailseal/signer/record"
)

// fleet is a collector's data dir made from real agents: each agent ran
// with its own TAILSEAL_ORIGIN, and its store/, checkpoints.jsonl and
// genesis.json (not keys/) were copied to origins/<token>/, as tailseal
// collect writes them. The first origin sealed its K0 to an auditor's age
// identity; the second kept K0 in its own keys/ (not copied).
type fleet struct {
	dir      string            // the collector's data dir
	agents   map[string]string // origin → the agent's own data dir
	events   map[string]int    // origin → events written
	identity string            // the auditor's age identity file
	verifier string            // both agents' checkpoint verifier keys, comma-separated
}

var fleetOrigins = []string{"checkout-0", "web-1.example"} // the second's token escapes its dot

var (
	fleetOnce sync.Once
	fleetVal  fleet
	fleetErr  string
	fleetTmp  string // removed by TestMain
)

func makeFleet(t *testing.T) fleet {
	fleetOnce.Do(func() { fleetVal, fleetErr = newFleet(t) })
	if fleetErr != "" {
		t.Fatal(fleetErr)
	}
	return fleetVal
}

// fleetEnd is the time of the newest event of the fleet.
var fleetEnd = time.Date(2026, 3, 2, 18, 0, 0, 0, time.UTC)

// fleetLine is event n of count of origin number o. The origins' events
// interleave in time, newest last: origin 0's newest at fleetEnd, origin
// 1's a minute before, each origin's two minutes apart. Every tenth is an
// error, and some are performance events.
func fleetLine(o, n, count int) string {
	ts := fleetEnd.Add(-time.Duration(2*(count-1-n)+o) * time.Minute).Format(time.RFC3339)
	switch {
	case n%10 == 9:
		return fmt.Sprintf(`{"timestamp":%q,"event_type":"error","lead_id":"L-%d-%d","workflow":"crm_sync","details":{"error_type":"Timeout","error_message":"crm timed out on %d"}}`, ts, o, n, n)
	case n%7 == 3:
		return fmt.Sprintf(`{"timestamp":%q,"event_type":"performance","workflow":"crm_sync","details":{"operation":"crm_upsert","duration_ms":%d}}`, ts, 10+n%50+o*100)
	}
	return fmt.Sprintf(`{"timestamp":%q,"event_type":"lead_ingested","lead_id":"L-%d-%d","workflow":"sales","details":{"source":"web_form"}}`, ts, o, n)
}

func newFleet(t *testing.T) (fleet, string) {
	dir, err := os.MkdirTemp("", "tailseal-fleet")
	if err != nil {
		return fleet{}, err.Error()
	}
	fleetTmp = dir
	f := fleet{dir: filepath.Join(dir, "collector"), agents: map[string]string{}, events: map[string]int{}, identity: filepath.Join(dir, "auditor.key")}
	recipient := newAgeIdentity(t, f.identity)
	var vkeys []string
	for o, origin := range fleetOrigins {
		e := &env{t: t, dir: filepath.Join(dir, "agent"+fmt.Sprint(o)), extra: []string{"TAILSEAL_ORIGIN=" + origin, "TAILSEAL_CHECKPOINT_EVERY=50"}}
		e.source, e.dataDir = filepath.Join(e.dir, "logs", "audit.log"), filepath.Join(e.dir, "data")
		if o == 0 {
			e.extra = append(e.extra, "TAILSEAL_VERIFY_RECIPIENT="+recipient)
		}
		if err := os.MkdirAll(filepath.Dir(e.source), 0o755); err != nil {
			return fleet{}, err.Error()
		}
		count := 300 - 100*o
		p := e.start()
		w := newWriter(t, e.source)
		for n := 0; n < count; n += 60 { // in batches, so that checkpoints come between them
			var b strings.Builder
			for i := n; i < min(n+60, count); i++ {
				b.WriteString(fleetLine(o, i, count) + "\n")
			}
			if _, err := w.f.WriteString(b.String()); err != nil {
				return fleet{}, err.Error()
			}
			e.waitStored(min(n+60, count))
		}
		if _, err := p.stop(t); err != nil {
			return fleet{}, fmt.Sprintf("agent %s: %v", origin, err)
		}
		f.agents[origin], f.events[origin] = e.dataDir, count
		vkey, err := os.ReadFile(filepath.Join(e.dataDir, "keys", "checkpoint.pub"))
		if err != nil {
			return fleet{}, err.Error()
		}
		vkeys = append(vkeys, strings.TrimSpace(string(vkey)))
		collected := filepath.Join(f.dir, "origins", record.OriginToken(origin))
		if err := os.MkdirAll(collected, 0o755); err != nil {
			return fleet{}, err.Error()
		}
		for _, name := range []string{"store", "checkpoints.jsonl", "genesis.json"} {
			if out, err := exec.Command("cp", "-a", filepath.Join(e.dataDir, name), collected).CombinedOutput(); err != nil {
				return fleet{}, fmt.Sprintf("cp: %v %s", err, out)
			}
		}
	}
	f.verifier = strings.Join(vkeys, ",")
	return f, ""
}

// originDir is where the fleet keeps origin's store.
func (f fleet) originDir(origin string) string {
	return filepath.Join(f.dir, "origins", record.OriginToken(origin))
}

// tailseal runs a command on dataDir with no TAILSEAL_ variables but
// TAILSEAL_DATA_DIR and env; it returns stdout, stderr and the exit code.
func tailseal(t *testing.T, dataDir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TAILSEAL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "TAILSEAL_DATA_DIR="+dataDir)
	cmd.Env = append(cmd.Env, env...)
	return runOutputs(t, cmd)
}

// mustRun is tailseal that wants exit 0.
func mustRun(t *testing.T, dataDir string, env []string, args ...string) string {
	t.Helper()
	out, stderr, code := tailseal(t, dataDir, env, args...)
	if code != 0 {
		t.Fatalf("tailseal %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return out
}

func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var v T
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		vs = append(vs, v)
	}
	return vs
}

type statsJSON struct {
	Origin     string         `json:"origin"`
	Events     int            `json:"events"`
	Errors     int            `json:"errors"`
	ByType     map[string]int `json:"by_type"`
	ByWorkflow map[string]int `json:"by_workflow"`
	First      time.Time      `json:"first"`
	Last       time.Time      `json:"last"`
}

// stats over the fleet: per origin the figures of that origin's store
// read alone (and of the agent's own store), and a total that adds them
// up; --origin selects; the table has an ORIGIN column and a total row.
func TestFleetStats(t *testing.T) {
	f := makeFleet(t)
	var got struct {
		Origins []statsJSON `json:"origins"`
		Total   statsJSON   `json:"total"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, f.dir, nil, "stats", "--json")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Origins) != len(fleetOrigins) {
		t.Fatalf("%d origins in stats, want %d", len(got.Origins), len(fleetOrigins))
	}
	sum := 0
	for i, origin := range fleetOrigins {
		var alone, agent statsJSON
		json.Unmarshal([]byte(mustRun(t, f.originDir(origin), nil, "stats", "--json")), &alone)
		json.Unmarshal([]byte(mustRun(t, f.agents[origin], nil, "stats", "--json")), &agent)
		st := got.Origins[i]
		if st.Origin != origin || st.Events != f.events[origin] || fmt.Sprint(st) != fmt.Sprint(alone) || fmt.Sprint(alone) != fmt.Sprint(agent) {
			t.Errorf("origin %d: %+v\nalone: %+v\nagent's: %+v", i, st, alone, agent)
		}
		sum += st.Events
	}
	if got.Total.Origin != "" || got.Total.Events != sum || got.Total.Errors != got.Origins[0].Errors+got.Origins[1].Errors ||
		got.Total.ByType["error"] != got.Total.Errors || !got.Total.Last.Equal(fleetEnd) {
		t.Errorf("total %+v, want %d events over the origins", got.Total, sum)
	}

	var one struct{ Origins []statsJSON }
	json.Unmarshal([]byte(mustRun(t, f.dir, nil, "stats", "--json", "--origin", "web-1.example")), &one)
	if len(one.Origins) != 1 || one.Origins[0].Events != f.events["web-1.example"] {
		t.Errorf("--origin web-1.example: %+v", one)
	}

	table := mustRun(t, f.dir, nil, "stats")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^ORIGIN +EVENTS +ERRORS +MALFORMED +FIRST EVENT +LAST EVENT$`),
		regexp.MustCompile(`(?m)^checkout-0 +300 +30 +0 `),
		regexp.MustCompile(`(?m)^web-1\.example +200 +20 +0 `),
		regexp.MustCompile(`(?m)^all 2 origins +500 +50 +0 .* 2026-03-02T18:00:00Z$`),
		regexp.MustCompile(`(?m)^By type \(all 2 origins\)$`),
	} {
		if !want.MatchString(table) {
			t.Errorf("stats table: no %s in\n%s", want, table)
		}
	}
}

// query over the fleet: the newest by timestamp across the origins, each
// origin's own in seq order, as {"origin","record"} lines whose records
// are the stored lines byte for byte; a table with an ORIGIN column.
func TestFleetQuery(t *testing.T) {
	f := makeFleet(t)
	type envelope struct {
		Origin string          `json:"origin"`
		Record json.RawMessage `json:"record"`
	}
	for _, limit := range []int{1, 7, 120, 1000} {
		// What each store answers alone, merged here by timestamp.
		var want []string
		var all []envelope
		for _, origin := range fleetOrigins {
			out := mustRun(t, f.originDir(origin), nil, "query", "--json", "--limit", fmt.Sprint(limit))
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				all = append(all, envelope{origin, json.RawMessage(l)})
			}
		}
		ts := func(e envelope) string { v, _ := record.StringField(e.Record, "timestamp"); return string(v) }
		sort.SliceStable(all, func(i, j int) bool { return ts(all[i]) > ts(all[j]) })
		for _, e := range all[:min(limit, len(all))] {
			want = append(want, e.Origin+" "+string(e.Record))
		}
		out := mustRun(t, f.dir, nil, "query", "--json", "--limit", fmt.Sprint(limit))
		var got []string
		for i, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var e envelope
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			got = append(got, e.Origin+" "+string(e.Record))
			if i < len(want) && !strings.HasSuffix(l, `,"record":`+strings.SplitN(want[i], " ", 2)[1]+"}") {
				t.Fatalf("line %d is not the stored line byte for byte:\n%s", i, l)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("--limit %d: %d lines\n%s\nwant %d\n%s", limit, len(got), strings.Join(got[:min(len(got), 4)], "\n"), len(want), strings.Join(want[:min(len(want), 4)], "\n"))
		}
		if limit == 1000 && len(got) != 500 {
			t.Errorf("--limit 1000: %d events, want all 500", len(got))
		}
	}

	table := mustRun(t, f.dir, nil, "query", "--limit", "4")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 5 || !regexp.MustCompile(`^ORIGIN +SEQ +TIME +TYPE +LEAD +WORKFLOW +ACTOR$`).MatchString(lines[0]) ||
		!strings.HasPrefix(lines[1], "checkout-0 ") || !strings.HasPrefix(lines[2], "web-1.example ") ||
		!strings.Contains(lines[1], "2026-03-02T18:00:00Z") || !strings.Contains(lines[2], "2026-03-02T17:59:00Z") {
		t.Errorf("query table:\n%s", table)
	}
	// Filters and --origin apply; nothing matched is exit 1.
	out := mustRun(t, f.dir, nil, "query", "--json", "--origin", "web-1.example", "--type", "error", "--limit", "100")
	if n := strings.Count(out, `{"origin":"web-1.example","record":{`); n != 20 || strings.Count(out, "\n") != 20 {
		t.Errorf("web-1.example's errors: %d\n%s", n, out)
	}
	if _, stderr, code := tailseal(t, f.dir, nil, "query", "--lead", "L-9-9"); code != 1 || !strings.Contains(stderr, "no events match") {
		t.Errorf("no match: exit %d %s", code, stderr)
	}
}

// errors and performance over the fleet name the origin; performance adds
// a row per operation over all origins.
func TestFleetErrorsAndPerformance(t *testing.T) {
	f := makeFleet(t)
	type errorJSON struct {
		Origin  string `json:"origin"`
		Seq     uint64 `json:"seq"`
		Message string `json:"message"`
	}
	errs := jsonLines[errorJSON](t, mustRun(t, f.dir, nil, "errors", "--json", "--limit", "1000"))
	per := map[string]int{}
	for _, e := range errs {
		per[e.Origin]++
	}
	for _, origin := range fleetOrigins {
		alone := jsonLines[errorJSON](t, mustRun(t, f.originDir(origin), nil, "errors", "--json", "--limit", "1000"))
		if per[origin] != len(alone) || alone[0].Origin != "" {
			t.Errorf("%s: %d errors over the fleet, %d alone (%+v)", origin, per[origin], len(alone), alone[0])
		}
	}
	table := mustRun(t, f.dir, nil, "errors", "--limit", "3")
	if !regexp.MustCompile(`(?s)^ORIGIN +SEQ +TIME +ERROR +LEAD +WORKFLOW +MESSAGE\ncheckout-0 +\d+ +2026-03-02T18:00:00Z +Timeout +L-0-299 +crm_sync +crm timed out on 299\nweb-1\.example +\d+ +2026-03-02T17:59:00Z +Timeout`).MatchString(table) {
		t.Errorf("errors table:\n%s", table)
	}
	verbose := mustRun(t, f.dir, nil, "errors", "--limit", "1", "--verbose")
	if !strings.HasPrefix(verbose, "checkout-0 #") {
		t.Errorf("errors --verbose:\n%s", verbose)
	}

	type opJSON struct {
		Origin    string  `json:"origin"`
		All       bool    `json:"all_origins"`
		Operation string  `json:"operation"`
		Count     int     `json:"count"`
		Max       float64 `json:"max_ms"`
	}
	ops := jsonLines[opJSON](t, mustRun(t, f.dir, nil, "performance", "--json"))
	if len(ops) != 3 {
		t.Fatalf("performance: %+v", ops)
	}
	for i, origin := range fleetOrigins {
		alone := jsonLines[opJSON](t, mustRun(t, f.originDir(origin), nil, "performance", "--json"))
		if ops[i].Origin != origin || ops[i].All || ops[i].Count != alone[0].Count || ops[i].Max != alone[0].Max {
			t.Errorf("%s: %+v, alone %+v", origin, ops[i], alone[0])
		}
	}
	if all := ops[2]; !all.All || all.Origin != "" || all.Count != ops[0].Count+ops[1].Count || all.Max != max(ops[0].Max, ops[1].Max) {
		t.Errorf("over all origins: %+v", all)
	}
	table = mustRun(t, f.dir, nil, "performance")
	if !regexp.MustCompile(`(?m)^ORIGIN +OPERATION +COUNT .*\ncheckout-0 +crm_upsert +\d+ .*\nweb-1\.example +crm_upsert .*\nall 2 origins +crm_upsert `).MatchString(table) {
		t.Errorf("performance table:\n%s", table)
	}
	one := jsonLines[opJSON](t, mustRun(t, f.dir, nil, "performance", "--json", "--origin", "checkout-0"))
	if len(one) != 1 || one[0].Origin != "checkout-0" {
		t.Errorf("--origin checkout-0: %+v", one)
	}
}

// export over the fleet: origin after origin, each in seq order; jsonl and
// json carry {"origin","record"}, csv an origin column.
func TestFleetExport(t *testing.T) {
	f := makeFleet(t)
	dir := t.TempDir()
	var want []string // origin, stored line
	for _, origin := range fleetOrigins {
		alone := filepath.Join(dir, record.OriginToken(origin)+".jsonl")
		mustRun(t, f.originDir(origin), nil, "export", "--format", "jsonl", "--output", alone)
		for _, l := range strings.Split(strings.TrimSpace(string(readFile(t, alone))), "\n") {
			want = append(want, `{"origin":"`+origin+`","record":`+l+`}`)
		}
	}
	jsonl := filepath.Join(dir, "fleet.jsonl")
	mustRun(t, f.dir, nil, "export", "--format", "jsonl", "--output", jsonl)
	if got := strings.Split(strings.TrimSpace(string(readFile(t, jsonl))), "\n"); !slices.Equal(got, want) || len(got) != 500 {
		t.Errorf("jsonl: %d lines, want %d", len(got), len(want))
	}
	var arr []struct {
		Origin string         `json:"origin"`
		Record map[string]any `json:"record"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, f.dir, nil, "export", "--format", "json", "--output", "-")), &arr); err != nil || len(arr) != 500 || arr[300].Origin != "web-1.example" {
		t.Errorf("json: %d records, %v", len(arr), err)
	}
	rows, err := csv.NewReader(strings.NewReader(mustRun(t, f.dir, nil, "export", "--format", "csv", "--output", "-", "--origin", "web-1.example", "--type", "error"))).ReadAll()
	if err != nil || len(rows) != 21 || strings.Join(rows[0], ",") != "origin,"+strings.Join(CSVHeader, ",") || rows[1][0] != "web-1.example" || rows[1][3] != "error" {
		t.Errorf("csv: %v %v", rows[:min(len(rows), 2)], err)
	}
}

// report over the fleet: each origin's pages in <output>/<token>/ with its
// own integrity, and an index.html whose links reach them.
func TestFleetReport(t *testing.T) {
	f := makeFleet(t)
	out := t.TempDir()
	stdout, stderr, code := tailseal(t, f.dir, []string{"TAILSEAL_VERIFIER=" + f.verifier, "TAILSEAL_VERIFY_IDENTITY_FILE=" + f.identity},
		"report", "--json", "--output", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	type page struct {
		Origin string
		File   string
		Events int
	}
	events := map[string]int{}
	for _, p := range jsonLines[page](t, stdout) {
		if filepath.Dir(p.File) != filepath.Join(out, record.OriginToken(p.Origin)) {
			t.Errorf("%s's page %s", p.Origin, p.File)
		}
		if _, err := os.Stat(p.File); err != nil {
			t.Error(err)
		}
		events[p.Origin] += p.Events
	}
	for _, origin := range fleetOrigins {
		if events[origin] != f.events[origin] {
			t.Errorf("%s: pages hold %d events, want %d", origin, events[origin], f.events[origin])
		}
		if !strings.Contains(stderr, "origin "+origin+": ") {
			t.Errorf("stderr names no %s:\n%s", origin, stderr)
		}
		idx := string(readFile(t, filepath.Join(out, record.OriginToken(origin), "index.html")))
		if !strings.Contains(idx, "Intact: ") || !strings.Contains(idx, origin) {
			t.Errorf("%s's index.html shows no intact store:\n%s", origin, idx)
		}
	}
	top := string(readFile(t, filepath.Join(out, "index.html")))
	links := regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(top, -1)
	if len(links) != len(fleetOrigins) || strings.Count(top, "Intact: ") != len(fleetOrigins) {
		t.Fatalf("index.html: %d links\n%s", len(links), top)
	}
	for _, l := range links {
		path, err := url.PathUnescape(l[1]) // as a browser resolves it against the directory
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(out, path)); err != nil {
			t.Errorf("link %s: %v", l[1], err)
		}
	}
}

// A report of one origin into a collector's report directory keeps the
// other origins' rows in its index.html, read back from their own index,
// and exits 1 when the origin reported is not intact.
func TestFleetReportOfOneOriginKeepsTheOthers(t *testing.T) {
	f := makeFleet(t)
	keys := []string{"TAILSEAL_VERIFIER=" + f.verifier, "TAILSEAL_VERIFY_IDENTITY_FILE=" + f.identity}
	out := t.TempDir()
	mustRun(t, f.dir, keys, "report", "--output", out)
	_, stderr, code := tailseal(t, f.dir, keys, "report", "--origin", "checkout-0", "--type", "error", "--output", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	top := string(readFile(t, filepath.Join(out, "index.html")))
	if strings.Count(top, "<a href=") != 2 || strings.Count(top, "Intact: ") != 2 || !strings.Contains(top, ">web-1.example</a></td><td class=\"n\">1</td><td class=\"n\">200</td>") {
		t.Errorf("index.html after a report of one origin:\n%s", top)
	}
	// A store that is not intact: its pages say so, and the exit code.
	bad := filepath.Join(t.TempDir(), "collector")
	copyDir(t, f.dir, bad)
	tamper(t, filepath.Join(bad, "origins", "checkout-0"), `"lead_id":"L-0-5"`, `"lead_id":"L-0-X"`)
	_, stderr, code = tailseal(t, bad, keys, "report", "--output", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "1 of 2 origins are not intact or could not be checked (checkout-0)") {
		t.Errorf("report over a tampered origin: exit %d, %s", code, stderr)
	}
}

// --origin: an unknown origin is exit 2 naming the known ones; on a single
// store only its own origin is accepted.
func TestFleetOriginFlag(t *testing.T) {
	f := makeFleet(t)
	for _, cmd := range [][]string{{"stats"}, {"query"}, {"errors"}, {"performance"}, {"export", "--format", "csv", "--output", "-"},
		{"report", "--output", t.TempDir()}, {"verify"}} {
		_, stderr, code := tailseal(t, f.dir, nil, append(cmd, "--origin", "checkout-0", "--origin", "nope")...)
		if code != 2 || !strings.Contains(stderr, `unknown origin "nope"`) || !strings.Contains(stderr, "checkout-0, web-1.example") {
			t.Errorf("%s --origin nope: exit %d, %s", cmd[0], code, stderr)
		}
	}
	single := f.originDir("checkout-0")
	if out := mustRun(t, single, nil, "stats", "--origin", "checkout-0"); out != mustRun(t, single, nil, "stats") {
		t.Errorf("--origin of the store's own origin changes stats:\n%s", out)
	}
	mustRun(t, single, []string{"TAILSEAL_VERIFY_IDENTITY_FILE=" + f.identity}, "verify", "--origin", "checkout-0")
	// A single store takes a verifier list too: its own key is one of them.
	if out := mustRun(t, single, []string{"TAILSEAL_VERIFY_IDENTITY_FILE=" + f.identity, "TAILSEAL_VERIFIER=" + f.verifier}, "verify"); !strings.HasPrefix(out, "intact: ") {
		t.Errorf("a single store with a verifier list:\n%s", out)
	}
	for _, cmd := range []string{"stats", "verify"} {
		_, stderr, code := tailseal(t, single, nil, cmd, "--origin", "web-1.example")
		if code != 2 || !strings.Contains(stderr, `is origin "checkout-0"`) {
			t.Errorf("%s --origin of another store: exit %d, %s", cmd, code, stderr)
		}
	}
	// An origin directory with no records yet is left out, with a warning.
	empty := filepath.Join(t.TempDir(), "collector")
	copyDir(t, f.dir, empty)
	if err := os.MkdirAll(filepath.Join(empty, "origins", "new-2", "store"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := tailseal(t, empty, nil, "stats", "--json")
	if code != 0 || !strings.Contains(stderr, "origin new-2 has no records yet; left out") || !strings.Contains(out, `"events":500`) {
		t.Errorf("an empty origin: exit %d, %s", code, stderr)
	}
}

// fleetVerdict is what verify --json printed over a collector's origins.
type fleetVerdict struct {
	findings  []map[string]any          // each with its origin
	summaries map[string]map[string]any // origin → summary
	errors    map[string]string         // origin → why not checked
	fleet     map[string]float64        // the line over all
}

// verifyFleetJSON runs verify --json on a collector's data dir.
func verifyFleetJSON(t *testing.T, dir string, env []string, args ...string) (int, fleetVerdict, string) {
	t.Helper()
	out, stderr, code := tailseal(t, dir, env, append([]string{"verify", "--json"}, args...)...)
	v := fleetVerdict{summaries: map[string]map[string]any{}, errors: map[string]string{}}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if l == "" || json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		origin, _ := m["origin"].(string)
		switch {
		case m["fleet"] != nil:
			b, _ := json.Marshal(m["fleet"])
			json.Unmarshal(b, &v.fleet)
		case m["summary"] != nil:
			v.summaries[origin] = m["summary"].(map[string]any)
		case m["error"] != nil:
			v.errors[origin] = m["error"].(string)
		case m["kind"] != nil:
			v.findings = append(v.findings, m)
		}
	}
	return code, v, stderr
}

// tamper edits the first event holding old in origin's active segment.
func tamper(t *testing.T, dataDir, old, repl string) {
	t.Helper()
	segs, err := store.List(filepath.Join(dataDir, "store"))
	if err != nil || len(segs) == 0 {
		t.Fatal(segs, err)
	}
	if !editLine(t, filepath.Join(dataDir, "store", segs[len(segs)-1].Name), old, repl) {
		t.Fatalf("no record holds %s", old)
	}
}

// verify over the fleet checks each origin with its own keys: the
// verifier list holds both agents' keys, the identity opens the sealed
// origin's K0, the other is checked without K0 (not in the collector).
func TestFleetVerify(t *testing.T) {
	f := makeFleet(t)
	keys := []string{"TAILSEAL_VERIFIER=" + f.verifier}
	code, v, stderr := verifyFleetJSON(t, f.dir, keys, "--identity", f.identity)
	if code != 0 || len(v.findings) > 0 || len(v.summaries) != 2 || v.fleet["origins"] != 2 || v.fleet["intact"] != 2 {
		t.Fatalf("intact fleet: exit %d, %+v\n%s", code, v, stderr)
	}
	for _, origin := range fleetOrigins {
		s := v.summaries[origin]
		if s["origin"] != origin || s["checkpoint_signatures_checked"] != true || s["checkpoints"].(float64) < 3 {
			t.Errorf("%s: %v", origin, s)
		}
	}
	if v.summaries["checkout-0"]["signatures_checked"] != true || v.summaries["web-1.example"]["signatures_checked"] != false {
		t.Errorf("signatures: sealed %v, unsealed %v", v.summaries["checkout-0"]["signatures_checked"], v.summaries["web-1.example"]["signatures_checked"])
	}
	// The text: a summary line per origin and one over all; the notes
	// name their origin.
	out, stderr, code := tailseal(t, f.dir, append(keys, "TAILSEAL_VERIFY_IDENTITY_FILE="+f.identity), "verify")
	for _, want := range []string{"\ncheckout-0: intact: ", "\nweb-1.example: intact: ", "\nall 2 origins: intact: ", "web-1.example: origin web-1.example, genesis record sha256 "} {
		if code != 0 || !strings.Contains("\n"+out, want) {
			t.Errorf("verify: exit %d, no %q in\n%s", code, want, out)
		}
	}
	if !strings.Contains(stderr, "note: origin checkout-0: K0 opened from the genesis record") || !strings.Contains(stderr, "note: origin web-1.example: its K0 is not sealed") {
		t.Errorf("notes:\n%s", stderr)
	}
	// Keys one per line in a file, with comments.
	file := filepath.Join(t.TempDir(), "verifiers")
	os.WriteFile(file, []byte("# the fleet's agents\n"+strings.ReplaceAll(f.verifier, ",", "\n# next\n")+"\n"), 0o600)
	if code, v, stderr := verifyFleetJSON(t, f.dir, []string{"TAILSEAL_VERIFIER_FILE=" + file}, "--identity", f.identity); code != 0 || v.fleet["intact"] != 2 {
		t.Errorf("TAILSEAL_VERIFIER_FILE: exit %d %s", code, stderr)
	}
	// One origin, with the K0 its agent kept in its own keys/.
	k0, _ := os.ReadFile(filepath.Join(f.agents["web-1.example"], "keys", "verify.key"))
	code, v, stderr = verifyFleetJSON(t, f.dir, append(keys, "TAILSEAL_VERIFY_KEY="+strings.TrimSpace(string(k0))), "--origin", "web-1.example")
	if code != 0 || len(v.summaries) != 1 || v.summaries["web-1.example"]["signatures_checked"] != true {
		t.Errorf("--origin web-1.example with its K0: exit %d %+v %s", code, v, stderr)
	}
	// ...which makes no sense for two.
	_, stderr, code = tailseal(t, f.dir, append(keys, "TAILSEAL_VERIFY_KEY="+strings.TrimSpace(string(k0))), "verify")
	if code != 2 || !strings.Contains(stderr, "TAILSEAL_VERIFY_KEY is the K0 of one store, and 2 origins are selected") {
		t.Errorf("TAILSEAL_VERIFY_KEY over two origins: exit %d %s", code, stderr)
	}
}

// A tampered record in one origin is a finding of that origin (exit 1);
// a wrong identity, a verifier list without an origin's key, are exit 2
// naming the origin, and the other origins are still checked.
func TestFleetVerifyFindings(t *testing.T) {
	f := makeFleet(t)
	keys := []string{"TAILSEAL_VERIFIER=" + f.verifier, "TAILSEAL_VERIFY_IDENTITY_FILE=" + f.identity}
	for _, origin := range fleetOrigins {
		tampered := filepath.Join(t.TempDir(), "collector")
		copyDir(t, f.dir, tampered)
		tamper(t, filepath.Join(tampered, "origins", record.OriginToken(origin)), `"web_form"`, `"webform"`)
		code, v, stderr := verifyFleetJSON(t, tampered, keys)
		if code != 1 || len(v.findings) == 0 || v.fleet["with_findings"] != 1 || v.fleet["intact"] != 1 {
			t.Fatalf("%s tampered: exit %d, %+v\n%s", origin, code, v, stderr)
		}
		for _, fd := range v.findings {
			if fd["origin"] != origin {
				t.Errorf("%s tampered: a finding of %v: %v", origin, fd["origin"], fd)
			}
		}
		out, _, _ := tailseal(t, tampered, keys, "verify")
		if !strings.Contains(out, "\n"+origin+": NOT intact: ") && !strings.HasPrefix(out, origin+": ") {
			t.Errorf("%s tampered:\n%s", origin, out)
		}
		t.Logf("%s tampered: %v", origin, v.findings[0])
	}

	wrong := filepath.Join(t.TempDir(), "other.key")
	newAgeIdentity(t, wrong)
	code, v, stderr := verifyFleetJSON(t, f.dir, []string{"TAILSEAL_VERIFIER=" + f.verifier}, "--identity", wrong)
	if code != 2 || !strings.Contains(stderr, "origin checkout-0: ") || !strings.Contains(stderr, "does not open this store's sealed K0") ||
		v.errors["checkout-0"] == "" || v.summaries["web-1.example"] == nil {
		t.Errorf("wrong identity: exit %d, %+v\n%s", code, v, stderr)
	}

	// The list without web-1.example's key: checkout-0's key is checkout-0's
	// (its genesis names it) and vouches for no other origin.
	code, v, stderr = verifyFleetJSON(t, f.dir, []string{"TAILSEAL_VERIFIER=" + strings.Split(f.verifier, ",")[0], "TAILSEAL_VERIFY_IDENTITY_FILE=" + f.identity})
	if code != 2 || !strings.Contains(stderr, "origin web-1.example: the checkpoint verifier key does not match any checkpoint") ||
		v.summaries["checkout-0"] == nil || v.fleet["not_checked"] != 1 {
		t.Errorf("verifier list without web-1.example's key: exit %d, %+v\n%s", code, v, stderr)
	}
	// Another key in its place, which no origin names: tried, and it signed
	// none of web-1.example's checkpoints.
	_, other, err := signer.GenerateNoteKey("tailseal")
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr = verifyFleetJSON(t, f.dir, []string{"TAILSEAL_VERIFIER=" + strings.Split(f.verifier, ",")[0] + "," + other, "TAILSEAL_VERIFY_IDENTITY_FILE=" + f.identity})
	if code != 2 || !strings.Contains(stderr, "origin web-1.example: the checkpoint verifier key does not match any checkpoint (it names tailseal+") {
		t.Errorf("an unrelated key for web-1.example: exit %d\n%s", code, stderr)
	}

	// A store filed under another origin's name.
	misfiled := filepath.Join(t.TempDir(), "collector")
	copyDir(t, f.dir, misfiled)
	if err := os.Rename(filepath.Join(misfiled, "origins", record.OriginToken("web-1.example")), filepath.Join(misfiled, "origins", "web-2")); err != nil {
		t.Fatal(err)
	}
	code, v, stderr = verifyFleetJSON(t, misfiled, keys)
	if code != 1 || len(v.findings) != 1 || v.findings[0]["origin"] != "web-2" || v.findings[0]["kind"] != "wrong origin" {
		t.Errorf("misfiled store: exit %d, %+v\n%s", code, v, stderr)
	}
}

// newestAcross keeps each origin's order, takes the latest timestamp
// first, the earlier origin on a tie, and a timestamp that is not RFC 3339
// last (it holds back the rest of its origin).
func TestNewestAcross(t *testing.T) {
	at := func(seq uint64, ts string) record.Record {
		tm, _ := time.Parse(time.RFC3339, ts)
		return record.Record{Seq: seq, Timestamp: ts, Time: tm}
	}
	lists := [][]record.Record{
		{at(9, "2026-01-01T10:05:00Z"), at(8, "2026-01-01T10:03:00Z"), at(7, "2026-01-01T10:01:00Z")},
		{at(5, "2026-01-01T10:04:00Z"), at(4, "2026-01-01T10:03:00Z"), at(3, "yesterday"), at(2, "2026-01-01T10:09:00Z")},
		nil,
	}
	var got []string
	for _, r := range newestAcross(lists, 10) {
		got = append(got, fmt.Sprintf("%d:%d", r.at, r.rec.Seq))
	}
	if want := "[0:9 1:5 0:8 1:4 0:7 1:3 1:2]"; fmt.Sprint(got) != want {
		t.Errorf("merged %v, want %s", got, want)
	}
	if n := len(newestAcross(lists, 3)); n != 3 {
		t.Errorf("limit 3: %d", n)
	}
}

// On a collector's data dir a proof is about one origin: prove and export
// --proofs name the origins when none is chosen (exit 2), and with
// --origin prove one origin's record, checkable with its key alone.
func TestFleetProofs(t *testing.T) {
	f := makeFleet(t)
	env := []string{"TAILSEAL_DATA_DIR=" + f.dir}
	_, stderr, code := tool(t, env, "prove", "--seq", "2")
	if code != 2 || !strings.Contains(stderr, "checkout-0, web-1.example") || !strings.Contains(stderr, "--origin") {
		t.Fatalf("prove without --origin: exit %d, stderr %s", code, stderr)
	}
	_, stderr, code = tool(t, env, "export", "--proofs", "--format", "jsonl", "--output", "-")
	if code != 2 || !strings.Contains(stderr, "--origin") {
		t.Fatalf("export --proofs without --origin: exit %d, stderr %s", code, stderr)
	}
	for _, origin := range fleetOrigins {
		bundle, stderr, code := tool(t, env, "prove", "--seq", "2", "--origin", origin)
		if code != 0 || !strings.HasPrefix(bundle, "c2sp.org/tlog-proof@v1") {
			t.Fatalf("prove --origin %s: exit %d, stderr %s, out %.200s", origin, code, stderr, bundle)
		}
		path := filepath.Join(t.TempDir(), "bundle")
		os.WriteFile(path, []byte(bundle), 0o600)
		if _, stderr, code := tool(t, []string{"TAILSEAL_VERIFIER=" + f.verifier}, "verify-proof", path); code != 0 {
			t.Fatalf("verify-proof of %s's bundle: exit %d, %s", origin, code, stderr)
		}
		if !strings.Contains(bundle, "\n"+origin+"\n") && !strings.Contains(bundle, "\n\n"+origin+"\n") {
			t.Errorf("%s's bundle does not carry its checkpoint:\n%s", origin, bundle)
		}
	}
}

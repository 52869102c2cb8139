package report

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/agent/benchdata"
	"github.com/tailseal/tailseal/agent/query"
)

// Pages split the events by UTC day or ISO week; each page's numbers are
// those of a stats query over its period, and its latest events are the
// period's highest seqs.
func TestPagesMatchQueriesOverTheirPeriod(t *testing.T) {
	data := t.TempDir()
	start := time.Date(2026, 2, 1, 7, 30, 0, 0, time.UTC) // a Sunday morning
	err := benchdata.BuildStore(benchdata.StoreOptions{DataDir: data, Events: 30_000, Start: start, Step: 47 * time.Second,
		SegmentMax: 128 << 10, HMACKey: bytes.Repeat([]byte{1}, 32), PIIKey: bytes.Repeat([]byte{2}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := query.Open(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	for _, weekly := range []bool{false, true} {
		pages, problems := Build(context.Background(), s, Options{Weekly: weekly, Latest: 7, Now: time.Now()})
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		total := 0
		for i, p := range pages {
			total += p.Stats.Events
			want, _ := s.Stats(context.Background(), query.Filter{Since: p.Start, Until: p.End})
			if p.Stats.Events != want.Events || p.Stats.Errors != want.Errors {
				t.Errorf("%s: %d events, %d errors; stats says %d, %d", p.Name(), p.Stats.Events, p.Stats.Errors, want.Events, want.Errors)
			}
			if weekly && p.Start.Weekday() != time.Monday || !weekly && p.Start.Hour() != 0 {
				t.Errorf("%s starts %v", p.Name(), p.Start)
			}
			bucketSum, errSum := 0, 0
			for _, n := range p.Buckets {
				bucketSum += n
			}
			for _, g := range p.Errors {
				errSum += g.Count
			}
			if bucketSum != p.Stats.Events || errSum != p.Stats.Errors {
				t.Errorf("%s: chart sums to %d, error groups to %d", p.Name(), bucketSum, errSum)
			}
			newest, _ := s.Newest(context.Background(), query.Filter{Since: p.Start, Until: p.End, AppOnly: true}, 7)
			if len(newest) != len(p.Latest) {
				t.Fatalf("%s: %d latest events, want %d", p.Name(), len(p.Latest), len(newest))
			}
			for j := range newest {
				if newest[j].Seq != p.Latest[j].Seq {
					t.Errorf("%s: latest[%d] is seq %d, want %d", p.Name(), j, p.Latest[j].Seq, newest[j].Seq)
				}
			}
			var html bytes.Buffer
			if err := p.WriteHTML(&html, "", ""); err != nil {
				t.Fatal(err)
			}
			if i == 0 && !strings.Contains(html.String(), `id="total-events">`+strconv.Itoa(p.Stats.Events)+`<`) {
				t.Errorf("%s: the page does not show its total", p.Name())
			}
		}
		if total != 30_000 {
			t.Errorf("weekly=%v: pages hold %d events, want 30000", weekly, total)
		}
		t.Logf("weekly=%v: %d pages", weekly, len(pages))
	}
}

// A time range chooses whole periods; any other filter names and titles
// its pages, so that a filtered run never replaces a whole period's page;
// the index lists every page in the directory, and previous and next link
// the pages of one kind and filter, those of earlier runs included.
func TestFilteredPagesKeepWholeOnes(t *testing.T) {
	data := t.TempDir()
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	err := benchdata.BuildStore(benchdata.StoreOptions{DataDir: data, Events: 4 * 1440, Start: start, Step: time.Minute,
		SegmentMax: 128 << 10, HMACKey: bytes.Repeat([]byte{1}, 32), PIIKey: bytes.Repeat([]byte{2}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := query.Open(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, out := context.Background(), t.TempDir()
	build := func(f query.Filter) []*Page {
		t.Helper()
		pages, problems := Build(ctx, s, Options{Filter: f, Now: time.Now()})
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		if err := WriteAll(out, pages, Integrity{Summary: "not checked"}); err != nil {
			t.Fatal(err)
		}
		return pages
	}
	build(query.Filter{})
	whole := readFile(t, filepath.Join(out, "2026-02-02.html"))

	// Half of Feb 2 to noon of Feb 3: both days, whole.
	pages := build(query.Filter{Since: start.Add(36 * time.Hour), Until: start.Add(60 * time.Hour)})
	if len(pages) != 2 || pages[0].Name() != "2026-02-02.html" || pages[1].Name() != "2026-02-03.html" ||
		pages[0].Stats.Events != 1440 || pages[1].Stats.Events != 1440 {
		t.Fatalf("a time range gave %d pages: %v", len(pages), pages)
	}

	pages = build(query.Filter{Type: "error", Lead: "LEAD/1"}) // no such lead: no page
	if len(pages) != 0 {
		t.Fatalf("%d pages for a lead that is not there", len(pages))
	}
	pages = build(query.Filter{Type: "error", Since: start.Add(36 * time.Hour)})
	if len(pages) != 3 || pages[0].Name() != "2026-02-02.type-error.html" || !strings.Contains(pages[0].Title(), "only type error") {
		t.Fatalf("filtered pages: %d, %s %q", len(pages), pages[0].Name(), pages[0].Title())
	}
	if !bytes.Equal(readFile(t, filepath.Join(out, "2026-02-02.html"))[:200], whole[:200]) ||
		!bytes.Contains(readFile(t, filepath.Join(out, "2026-02-02.html")), []byte(`id="total-events">1440<`)) {
		t.Error("a filtered run changed the whole day's page")
	}
	page := string(readFile(t, filepath.Join(out, "2026-02-03.type-error.html")))
	for _, want := range []string{`<a href="2026-02-02.type-error.html">`, `<a href="2026-02-04.type-error.html">`, `id="only">Only the events of type error`} {
		if !strings.Contains(page, want) {
			t.Errorf("2026-02-03.type-error.html lacks %s", want)
		}
	}
	index := string(readFile(t, filepath.Join(out, "index.html")))
	for _, name := range []string{"2026-02-01.html", "2026-02-02.html", "2026-02-03.html", "2026-02-04.html",
		"2026-02-02.type-error.html", "2026-02-03.type-error.html", "2026-02-04.type-error.html"} {
		if !strings.Contains(index, `href="`+name+`"`) {
			t.Errorf("index.html does not list %s", name)
		}
	}
	if !strings.Contains(index, `<a href="2026-02-01.html">Sunday, February 1, 2026</a></td><td class="n">1440</td><td class="n">`) ||
		!strings.Contains(index, "Tuesday, February 3, 2026 · only type error</a>") {
		t.Errorf("index.html does not read the pages of earlier runs back:\n%s", index)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A filter value that is no file name character is escaped in the page's
// name (record.OriginToken), and links to the page escape that % again, so
// that a browser opens the file and not another name.
func TestLinksToTaggedPages(t *testing.T) {
	data := t.TempDir()
	err := benchdata.BuildStore(benchdata.StoreOptions{DataDir: data, Events: 3 * 1440, Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		Step: time.Minute, SegmentMax: 256 << 10, HMACKey: bytes.Repeat([]byte{1}, 32), PIIKey: bytes.Repeat([]byte{2}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := query.Open(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := Build(context.Background(), s, Options{Filter: query.Filter{Type: "error"}, Now: time.Now()})
	if len(pages) != 3 {
		t.Fatalf("%d pages", len(pages))
	}
	for _, p := range pages {
		p.Only, p.Tag = "type err.or", "type-err%2Eor" // as describe names a type with a dot
	}
	out := t.TempDir()
	if err := WriteAll(out, pages, Integrity{}); err != nil {
		t.Fatal(err)
	}
	page := string(readFile(t, filepath.Join(out, "2026-02-02.type-err%2Eor.html")))
	index := string(readFile(t, filepath.Join(out, "index.html")))
	for _, want := range []string{`href="2026-02-01.type-err%252Eor.html"`, `href="2026-02-03.type-err%252Eor.html"`} {
		if !strings.Contains(page, want) || !strings.Contains(index, want) {
			t.Errorf("no link %s", want)
		}
	}
	// A subject is named by a digest of its pseudonyms, never by a value.
	only, tag := describe(query.Filter{Type: "err.or", Lead: "L/1", Subjects: []string{"<email:abc>"}})
	if only != "lead L/1, type err.or, one data subject (637ad0d14af8)" || tag != "lead-L%2F1.type-err%2Eor.subject-637ad0d14af8" {
		t.Errorf("describe: %q, %q", only, tag)
	}
}

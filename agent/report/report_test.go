package report

import (
	"bytes"
	"context"
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

package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium finds Debian's Chromium. .ci/run installs it and sets
// TAILSEAL_REQUIRE_CHROMIUM=1, so there a missing browser fails the test;
// on a machine with only Go it is skipped.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("TAILSEAL_REQUIRE_CHROMIUM") != "" {
		t.Fatal("no chromium in PATH and TAILSEAL_REQUIRE_CHROMIUM is set")
	}
	t.Skip("no chromium in PATH (apt-get install chromium); CI runs this test")
	return ""
}

// The HTML report, opened from disk in headless Chromium: no console error,
// no request besides the page itself, a chart with a point per hour, the
// key numbers in the DOM, and it prints.
func TestReportInChromium(t *testing.T) {
	browser := chromium(t)
	data := cliStore(t)
	out := t.TempDir()
	_, stderr, code := cli(t, data, "report", "--output", out)
	if code != 0 {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	stats, _, _ := cli(t, data, "stats", "--json", "--since", "2026-02-03", "--until", "2026-02-04")
	pagePath := filepath.Join(out, "2026-02-03.html")
	if _, err := os.Stat(pagePath); err != nil {
		t.Fatalf("%v; report said: %s", err, stderr)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	var mu sync.Mutex
	var problems, requests []string
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				problems = append(problems, "console "+string(ev.Type))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+ev.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				problems = append(problems, "log: "+ev.Entry.Text)
			}
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *network.EventLoadingFailed:
			problems = append(problems, "loading failed: "+ev.ErrorText)
		}
	}))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	url := "file://" + pagePath
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("chart"))); err != nil {
		t.Fatal(err)
	}
	points := evaluate[int](t, ctx, `document.querySelector('#chart polyline').getAttribute('points').trim().split(/\s+/).length`)
	circles := evaluate[int](t, ctx, `document.querySelectorAll('#chart circle').length`)
	resources := evaluate[int](t, ctx, `performance.getEntriesByType('resource').length`)
	total := evaluate[string](t, ctx, `document.getElementById('total-events').textContent`)
	errorsN := evaluate[string](t, ctx, `document.getElementById('total-errors').textContent`)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	if err != nil {
		t.Fatal(err)
	}
	pdf, err := chromedp.Run(ctx, chromedp.PrintToPDF())
	if err != nil {
		t.Fatal(err)
	}
	if resources != 0 {
		t.Errorf("the page loaded %d resources", resources)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the page had problems: %q", problems)
	}
	for _, r := range requests {
		if r != url {
			t.Errorf("the page requested %s", r)
		}
	}
	if points != 24 || circles != 24 {
		t.Errorf("chart has %d points and %d circles, want 24 hours", points, circles)
	}
	// The numbers on the page are those of tailseal stats for that day.
	for _, want := range []struct{ name, got string }{{"events", total}, {"errors", errorsN}} {
		if !strings.Contains(stats, `"`+want.name+`":`+strings.TrimSpace(want.got)+`,`) {
			t.Errorf("page shows %s %q; stats for the day: %s", want.name, want.got, stats)
		}
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(total)); n != 1440 {
		t.Errorf("page shows %q events for a day of one event a minute", total)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		// FullScreenshot with a quality below 100 gives a JPEG
		if !bytes.HasPrefix(shot, []byte{0xff, 0xd8}) {
			t.Fatalf("screenshot is neither PNG nor JPEG: %v", err)
		}
	} else if img.Bounds().Dy() < 900 {
		t.Errorf("screenshot is %v", img.Bounds())
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF")) || len(pdf) < 10_000 {
		t.Errorf("printing gave %d bytes", len(pdf))
	}
	shotPath := filepath.Join(os.TempDir(), "tailseal-report-screenshot.jpg")
	if err := os.WriteFile(shotPath, shot, 0o644); err == nil {
		t.Logf("screenshot: %s (%d bytes), PDF %d bytes", shotPath, len(shot), len(pdf))
	}
}

func evaluate[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// report --last 2d writes the days it touches whole, beside the pages
// already there, and the index lists them all; on a store that is not
// intact it still writes its pages, with the red box, and exits 1.
func TestReportLastAndIntegrity(t *testing.T) {
	e := newEnv(t)
	p := e.start()
	w := newWriter(t, e.source)
	var b strings.Builder
	day := time.Now().UTC().Truncate(24 * time.Hour)
	for i := range 3 { // two days ago, yesterday, today: one event at the start of each day
		fmt.Fprintf(&b, `{"timestamp":%q,"event_type":"lead_ingested","lead_id":"L-%d"}`+"\n", day.AddDate(0, 0, i-2).Format(time.RFC3339), i)
	}
	w.f.WriteString(b.String())
	e.waitStored(3)
	if _, err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	old := filepath.Join(out, "2020-01-01.html") // a page of an earlier report
	os.WriteFile(old, []byte(`<!DOCTYPE html><html><head><meta name="tailseal-page" data-title="Wednesday, January 1, 2020" data-events="7" data-errors="1"></head></html>`), 0o644)
	// --last 2d reaches back into the day before yesterday, after its
	// event: that day's page is written whole, with it.
	_, stderr, code := tailsealIn(t, e, "report", "--last", "2d", "--output", out)
	if code != 0 || !strings.Contains(stderr, "3 pages") {
		t.Fatalf("report --last 2d: exit %d, %s", code, stderr)
	}
	for i := range 3 {
		page := string(readFile(t, filepath.Join(out, day.AddDate(0, 0, i-2).Format(time.DateOnly)+".html")))
		if !strings.Contains(page, `id="total-events">1<`) || !strings.Contains(page, `class="integrity ok"`) {
			t.Errorf("the page of day %d is not whole or not intact", i-2)
		}
	}
	index := string(readFile(t, filepath.Join(out, "index.html")))
	if !strings.Contains(index, `<a href="2020-01-01.html">Wednesday, January 1, 2020</a></td><td class="n">7</td>`) || strings.Count(index, "<a href=") != 4 {
		t.Errorf("index.html:\n%s", index)
	}

	tamper(t, e.dataDir, `"lead_id":"L-1"`, `"lead_id":"L-X"`)
	_, stderr, code = tailsealIn(t, e, "report", "--output", out)
	page := string(readFile(t, filepath.Join(out, day.Format(time.DateOnly)+".html")))
	if code != 1 || !strings.Contains(stderr, "the store is NOT intact") || !strings.Contains(page, `class="integrity bad"`) {
		t.Errorf("report on a store with a changed record: exit %d, %s", code, stderr)
	}
	if _, stderr, code = tailsealIn(t, e, "report", "--verify=false", "--output", out); code != 0 {
		t.Errorf("report --verify=false: exit %d, %s", code, stderr)
	}
}

// tailsealIn runs a command on e's data dir with its keys as the agent
// left them (keys/), no other TAILSEAL_ variable.
func tailsealIn(t *testing.T, e *env, args ...string) (string, string, int) {
	t.Helper()
	return tailseal(t, e.dataDir, nil, args...)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
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

// chartAtWidth is what the page at a phone's width measures of the chart
// it shows (the one of non-zero width) and of the page.
type chartAtWidth struct {
	Visible     int     // charts shown
	Left, Right float64 // the chart's box, CSS px
	Viewport    float64 // the layout viewport: document.documentElement.clientWidth
	Visual      float64 // window.innerWidth: wider when the browser zooms out to fit a page wider than the screen
	PageWidth   float64 // document.documentElement.scrollWidth
	MinFont     float64 // the smallest label, in CSS px on screen
	Points      int     // circles of the chart shown
	Overlaps    int     // x-axis labels that overlap their neighbour
}

const measureChart = `(() => {
  const shown = [...document.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 0);
  const m = {Visible: shown.length, Viewport: document.documentElement.clientWidth, Visual: innerWidth, PageWidth: document.documentElement.scrollWidth};
  if (shown.length == 0) return JSON.stringify(m);
  const svg = shown[0], box = svg.getBoundingClientRect(), scale = svg.getScreenCTM().a;
  m.Left = box.left; m.Right = box.right; m.Points = svg.querySelectorAll('circle').length;
  const texts = [...svg.querySelectorAll('text')];
  m.MinFont = Math.min(...texts.map(t => parseFloat(getComputedStyle(t).fontSize) * scale));
  const axis = texts.filter(t => t.getAttribute('text-anchor') == 'middle').map(t => t.getBoundingClientRect()).sort((a, b) => a.left - b.left);
  m.Overlaps = axis.filter((r, i) => i > 0 && r.left < axis[i-1].right).length;
  return JSON.stringify(m);
})()`

// The report at a phone's width (390 × 844 CSS px, as an iPhone 14): the
// chart shown fits the screen, its labels are at least 11 px and do not
// overlap, and the page does not scroll sideways. The screenshots are kept
// with go test -artifacts.
func TestReportAtPhoneWidth(t *testing.T) {
	browser := chromium(t)
	data := cliStore(t)
	for _, period := range []string{"daily", "weekly"} {
		t.Run(period, func(t *testing.T) {
			out := t.TempDir()
			if _, stderr, code := cli(t, data, "report", "--verify=false", "--period", period, "--output", out); code != 0 {
				t.Fatalf("report: exit %d: %s", code, stderr)
			}
			page, points := "2026-02-03.html", 24
			if period == "weekly" {
				page, points = "2026-W06.html", 28
			}
			opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
				chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true), chromedp.UserDataDir(t.TempDir()))
			actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
			defer cancel()
			ctx, cancel := chromedp.NewContext(actx)
			defer cancel()
			ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			// The viewport is set once a page is open (in the first run,
			// chromedp waits for a target that is not there yet), then
			// the page is loaded again on it.
			url := "file://" + filepath.Join(out, page)
			if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
				t.Fatal(err)
			}
			err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
				chromedp.Navigate(url), chromedp.WaitReady("body"))
			if err != nil {
				t.Fatal(err)
			}
			var m chartAtWidth
			if err := json.Unmarshal([]byte(evaluate[string](t, ctx, measureChart)), &m); err != nil {
				t.Fatal(err)
			}
			evaluate[bool](t, ctx, `[...document.querySelectorAll('svg')].some(s => s.getBoundingClientRect().width > 0 && (s.scrollIntoView({block: 'center'}), true))`)
			shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.ArtifactDir(), "report-390x844-"+period+".png")
			if err := os.WriteFile(path, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v; screenshot %s", m, path)
			if m.Viewport != 390 || m.Visible != 1 || m.Points != points {
				t.Fatalf("viewport %v, %d charts shown with %d points; want 390, 1 with %d", m.Viewport, m.Visible, m.Points, points)
			}
			if m.Left < 0 || m.Right > m.Viewport {
				t.Errorf("the chart spans %.0f to %.0f px of a %.0f px screen", m.Left, m.Right, m.Viewport)
			}
			if m.MinFont < 11 {
				t.Errorf("the chart's smallest label is %.1f px on screen, want at least 11", m.MinFont)
			}
			if m.Overlaps > 0 {
				t.Errorf("%d x-axis labels overlap", m.Overlaps)
			}
			if m.PageWidth > m.Viewport || m.Visual > m.Viewport {
				t.Errorf("the page is %.0f px wide on a %.0f px screen (the browser shows %.0f px): it is zoomed out or scrolls sideways", m.PageWidth, m.Viewport, m.Visual)
			}
		})
	}
}

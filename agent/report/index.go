package report

import (
	"bytes"
	"html"
	"html/template"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tailseal/tailseal/agent/atomicfile"
)

// A directory's index.html lists every page the directory holds: those
// written now and those of earlier runs (other periods, filters, weeks),
// whose numbers are read back from the <meta name="tailseal-page"> each
// page carries in its head. A collector's index reads each origin's
// index.html the same way (<meta name="tailseal-index">).

// Entry is one page of an index.
type Entry struct {
	Name, Title, Only string
	Counted           bool // the page says its numbers (one written before pages did, does not)
	Events, Errors    int
}

// Href is the link to the page: its name as one path segment (a tag may
// hold a %).
func (e Entry) Href() string { return url.PathEscape(e.Name) }

// pageName matches the file names of pages (see Page.Name).
var pageName = regexp.MustCompile(`^\d{4}-(\d{2}-\d{2}|W\d{2})(\.[^/]+)?\.html$`)

// siblings are the pages that link to each other as previous and next:
// those of the same kind of period and the same filter.
func siblings(name string) string {
	period, tag, _ := strings.Cut(strings.TrimSuffix(name, ".html"), ".")
	return strconv.FormatBool(strings.Contains(period, "W")) + "/" + tag
}

// WriteAll writes every page and the index.html of dir, each file whole
// or not at all. The index lists the pages written and every other page
// dir holds; previous and next link the pages of the same period kind and
// filter, those already there included.
func WriteAll(dir string, pages []*Page, integrity Integrity) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	written := map[string]*Page{}
	for _, p := range pages {
		written[p.Name()] = p
	}
	names := slices.Collect(maps.Keys(written))
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if pageName.MatchString(e.Name()) && written[e.Name()] == nil {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for i, name := range names {
		p := written[name]
		if p == nil {
			continue
		}
		prev, next := "", ""
		for j := i - 1; j >= 0 && prev == ""; j-- {
			if siblings(names[j]) == siblings(name) {
				prev = names[j]
			}
		}
		for j := i + 1; j < len(names) && next == ""; j++ {
			if siblings(names[j]) == siblings(name) {
				next = names[j]
			}
		}
		var buf bytes.Buffer
		if err := p.WriteHTML(&buf, url.PathEscape(prev), url.PathEscape(next)); err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	index := indexView{Integrity: integrity, Pages: len(pages)}
	for _, name := range names {
		if p := written[name]; p != nil {
			index.Entries = append(index.Entries, Entry{Name: name, Title: p.Title(), Only: p.Only, Counted: true, Events: p.Stats.Events, Errors: p.Stats.Errors})
			index.Origin = p.Origin
			index.Events += p.Stats.Events
			index.Errors += p.Stats.Errors
			continue
		}
		index.Entries = append(index.Entries, readEntry(dir, name))
	}
	var buf bytes.Buffer
	if err := indexTmpl().Execute(&buf, index); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "index.html"), buf.Bytes(), 0o644)
}

// readEntry is the index entry of a page found in dir.
func readEntry(dir, name string) Entry {
	e := Entry{Name: name, Title: strings.TrimSuffix(name, ".html")}
	m := readMeta(filepath.Join(dir, name), pageMeta)
	if m["title"] != "" {
		e.Title, e.Only = m["title"], m["only"]
	}
	events, err1 := strconv.Atoi(m["events"])
	errs, err2 := strconv.Atoi(m["errors"])
	if err1 == nil && err2 == nil {
		e.Counted, e.Events, e.Errors = true, events, errs
	}
	return e
}

var (
	pageMeta  = regexp.MustCompile(`<meta name="tailseal-page"([^>]*)>`)
	indexMeta = regexp.MustCompile(`<meta name="tailseal-index"([^>]*)>`)
	metaAttr  = regexp.MustCompile(`data-([a-z]+)="([^"]*)"`)
)

// readMeta reads the data- attributes of the meta tag (pageMeta,
// indexMeta) in the head of the HTML file at path; nil when it has none.
func readMeta(path string, meta *regexp.Regexp) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	head := make([]byte, 16<<10)
	n, _ := io.ReadFull(f, head)
	tag := meta.FindSubmatch(head[:n])
	if tag == nil {
		return nil
	}
	out := map[string]string{}
	for _, a := range metaAttr.FindAllSubmatch(tag[1], -1) {
		out[string(a[1])] = html.UnescapeString(string(a[2]))
	}
	return out
}

// indexView is what indexHTML is executed with: the entries, and this
// run's figures, which a collector's index reads back.
type indexView struct {
	Origin                string
	Integrity             Integrity
	Entries               []Entry
	Pages, Events, Errors int // of the pages written now
}

var indexTmpl = sync.OnceValue(func() *template.Template { return template.Must(template.New("index").Parse(indexHTML)) })

const indexHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="tailseal-index" data-origin="{{.Origin}}" data-pages="{{.Pages}}" data-events="{{.Events}}" data-errors="{{.Errors}}" data-checked="{{.Integrity.Checked}}" data-ok="{{.Integrity.OK}}" data-summary="{{.Integrity.Summary}}">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>tailseal reports{{with .Origin}} · {{.}}{{end}}</title>
<style>body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1d232b;background:#f6f7f9}main{max-width:800px;margin:0 auto;padding:24px 20px}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #dfe3e8}td.n{text-align:right}a{color:#2457c5}
.muted{color:#5b6673}@media (max-width:600px){main{padding:16px 10px}th,td{padding:5px 6px}}</style>
</head><body><main><h1>tailseal reports{{with .Origin}} · {{.}}{{end}}</h1><p>{{.Integrity.Summary}}</p>
<table><tr><th>Period</th><th>Events</th><th>Errors</th></tr>
{{range .Entries}}<tr><td><a href="{{.Href}}">{{.Title}}</a></td>{{if .Counted}}<td class="n">{{.Events}}</td><td class="n">{{.Errors}}</td>{{else}}<td class="n muted">–</td><td class="n muted">–</td>{{end}}</tr>
{{end}}</table>
<p class="muted">Every page in this directory. A page marked "only …" holds the events of that filter alone; the others cover their whole day or week.</p></main></body></html>
`

// OriginIndex is one origin's row in the index of a collector's report:
// its pages are in Dir, below the index.
type OriginIndex struct {
	Origin         string
	Dir            string // a directory name (the origin's token)
	Pages          int
	Events, Errors int
	Integrity      Integrity
}

// Href is the link to the origin's index.html: Dir as one path segment,
// so that a % in a token is a file name's, not an escape.
func (o OriginIndex) Href() string { return url.PathEscape(o.Dir) + "/index.html" }

var fleetTmpl = sync.OnceValue(func() *template.Template { return template.Must(template.New("fleet").Parse(fleetHTML)) })

const fleetHTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>tailseal reports · {{len .}} origins</title>
<style>body{margin:0;font:15px/1.45 system-ui,sans-serif;color:#1d232b;background:#f6f7f9}main{max-width:1000px;margin:0 auto;padding:24px 20px}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #dfe3e8;vertical-align:top}td.n{text-align:right}a{color:#2457c5}
td.ok{border-left:6px solid #1e7b3a}td.bad{border-left:6px solid #b3261e}td.unchecked{border-left:6px solid #5b6673}
.muted{color:#5b6673}@media (max-width:600px){main{padding:16px 10px}th,td{padding:5px 6px}}</style>
</head><body><main><h1>tailseal reports · {{len .}} origins</h1>
<table><tr><th>Origin</th><th>Pages</th><th>Events</th><th>Errors</th><th>Integrity</th></tr>
{{range .}}<tr><td><a href="{{.Href}}">{{.Origin}}</a></td><td class="n">{{.Pages}}</td><td class="n">{{.Events}}</td><td class="n">{{.Errors}}</td>
<td class="{{if not .Integrity.Checked}}unchecked{{else if .Integrity.OK}}ok{{else}}bad{{end}}">{{.Integrity.Summary}}</td></tr>
{{end}}</table>
<p class="muted">Every origin in this directory, with the pages, events, errors and integrity of its latest report; its index lists all its pages.</p></main></body></html>
`

// WriteFleetIndex writes the index.html of a collector's report into dir:
// a row per origin, linking to the index of its pages. The origins of
// earlier reports into dir (another --origin) keep their rows, read back
// from their own index.html.
func WriteFleetIndex(dir string, origins []OriginIndex) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rows := slices.Clone(origins)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !e.IsDir() || slices.ContainsFunc(rows, func(o OriginIndex) bool { return o.Dir == e.Name() }) {
			continue
		}
		m := readMeta(filepath.Join(dir, e.Name(), "index.html"), indexMeta)
		if m["origin"] == "" {
			continue
		}
		o := OriginIndex{Origin: m["origin"], Dir: e.Name(), Integrity: Integrity{Checked: m["checked"] == "true", OK: m["ok"] == "true", Summary: m["summary"]}}
		o.Pages, _ = strconv.Atoi(m["pages"])
		o.Events, _ = strconv.Atoi(m["events"])
		o.Errors, _ = strconv.Atoi(m["errors"])
		rows = append(rows, o)
	}
	slices.SortStableFunc(rows, func(a, b OriginIndex) int { return strings.Compare(a.Origin, b.Origin) })
	var buf bytes.Buffer
	if err := fleetTmpl().Execute(&buf, rows); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "index.html"), buf.Bytes(), 0o644)
}

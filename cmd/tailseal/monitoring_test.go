package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tailseal/tailseal/sinks/sinkstest"
	"sigs.k8s.io/yaml"
)

// notExported are the metrics the rules and the dashboard query that no
// agent serves: Prometheus's own.
var notExported = []string{"up"}

// The alerting rules and the dashboard query only metrics that a running
// agent exports: an agent with every kind of sink configured serves
// /metrics, and every metric each expression selects, and every
// tailseal_* name the files mention anywhere (descriptions, templates),
// is among them.
func TestAlertRulesAndDashboardUseExportedMetrics(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer hook.Close()
	chat := sinkstest.NewChat(t, false)
	port := sinkstest.FreePort(t)
	e := newEnv(t, "TAILSEAL_LISTEN=127.0.0.1:"+strconv.Itoa(port), "TAILSEAL_WEBHOOK_URLS="+hook.URL,
		"TAILSEAL_SLACK_WEBHOOK="+chat.URL(), "TAILSEAL_DISCORD_WEBHOOK="+chat.URL(), "TAILSEAL_ALERTMANAGER_URL=http://127.0.0.1:1",
		"TAILSEAL_SMTP_ADDR=127.0.0.1:1", "TAILSEAL_SMTP_FROM=tailseal@example.com", "TAILSEAL_SMTP_TO=ops@example.com", "TAILSEAL_SMTP_TLS=none")
	w := newWriter(t, e.source)
	e.start()
	w.write(3)
	e.waitStored(3)
	exported := map[string]bool{}
	waitFor(t, "/metrics", 10*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			// # TYPE name kind: a histogram or a summary is queried by its series' names.
			f := strings.Fields(sc.Text())
			if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
				continue
			}
			exported[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					exported[f[2]+s] = true
				}
			}
		}
		return resp.StatusCode == 200 && exported["tailseal_build_info"]
	})
	for _, name := range []string{"tailseal_events_by_type_total", "tailseal_alert_notifications_total", "tailseal_pii_key_configured"} {
		if !exported[name] {
			t.Errorf("the agent does not export %s", name)
		}
	}
	check := func(file, expr string) {
		for _, name := range metricNames(expr) {
			if !exported[name] && !slices.Contains(notExported, name) {
				t.Errorf("%s queries %s, which the agent does not export: %s", file, name, expr)
			}
		}
	}

	rulesFile := filepath.Join("..", "..", "deploy", "prometheus", "rules.yaml")
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			check(rulesFile, r.Expr)
			n++
		}
	}
	for _, name := range mentioned(b) {
		check(rulesFile, name)
	}

	dashFile := filepath.Join("..", "..", "deploy", "grafana", "tailseal.json")
	b, err = os.ReadFile(dashFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			check(dashFile, q.Expr)
			n++
		}
	}
	for _, name := range mentioned(b) {
		check(dashFile, name)
	}
	if n < 20 {
		t.Fatalf("only %d expressions read: the files' layout changed?", n)
	}
}

// mentioned is every tailseal_* name in b, once.
func mentioned(b []byte) []string {
	names := regexp.MustCompile(`\btailseal_[a-z0-9_]+`).FindAllString(string(b), -1)
	slices.Sort(names)
	return slices.Compact(names)
}

var (
	promqlString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlBraces   = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlName     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames are the metric names a PromQL expression selects, for the
// PromQL that rules and dashboards are written in: strings are quoted,
// label matchers sit in {…}, ranges in […], label lists in the (…) after
// by, without, on, ignoring, group_left and group_right; a name followed
// by "(" is a function or an aggregation; a name right after a digit is
// part of a number.
func metricNames(expr string) []string {
	expr = promqlString.ReplaceAllString(expr, `""`)
	expr = promqlBraces.ReplaceAllString(expr, " ")
	expr = promqlGrouping.ReplaceAllString(expr, " ")
	var names []string
	for _, loc := range promqlName.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		rest := strings.TrimLeft(expr[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || slices.Contains(promqlKeywords, strings.ToLower(name)) ||
			loc[0] > 0 && (expr[loc[0]-1] >= '0' && expr[loc[0]-1] <= '9' || expr[loc[0]-1] == '.') {
			continue
		}
		names = append(names, name)
	}
	return names
}

// metricNames reads the PromQL of the rules and the dashboard right.
func TestMetricNames(t *testing.T) {
	for expr, want := range map[string]string{
		`tailseal_source_lag_bytes > 0 and rate(tailseal_events_stored_total[5m]) == 0`:                                    "tailseal_source_lag_bytes tailseal_events_stored_total",
		`sum by (job, instance, sink) (rate(tailseal_sink_retries_total{reason!="x"}[10m])) > 1e3`:                         "tailseal_sink_retries_total",
		`histogram_quantile(0.99, sum by (le) (rate(tailseal_store_fsync_duration_seconds_bucket{instance=~"$i"}[$__r])))`: "tailseal_store_fsync_duration_seconds_bucket",
		`a / b * on(instance) group_left(origin) c{x="y"} unless up == 0 offset 5m`:                                        "a b c up",
		"predict_linear(x[6h], 24 * 3600) < 0":                                                                             "x",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("%s: %q, want %q", expr, got, want)
		}
	}
}

// Package grafana holds a Grafana dashboard for tailseal agents,
// tailseal.json, built on the metrics the agent serves and the alerting
// rules of deploy/prometheus. Its test holds the dashboard to what Grafana
// needs to import it, and every query to PromQL that Prometheus parses
// (with promtool); cmd/tailseal's TestAlertRulesAndDashboardUseExportedMetrics
// holds every metric it queries to one a running agent exports.
package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dashboard is the part of Grafana's dashboard model the checks read.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("tailseal.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatal("tailseal.json is not valid JSON")
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// The dashboard imports: a title and uid, unique panel ids, panels that
// tile the 24-column grid without overlapping, every query on the
// datasource variable, with a unique refId, using only defined variables.
func TestDashboard(t *testing.T) {
	d := load(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 {
		t.Errorf("title %q, uid %q, schemaVersion %d", d.Title, d.UID, d.SchemaVersion)
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] {
		t.Error("no datasource variable: the dashboard would be bound to one Prometheus")
	}
	used := regexp.MustCompile(`\$\{?(\w+)`)
	ids := map[int]bool{}
	var cells []panel
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%q: gridPos %+v outside the 24 columns", p.Title, g)
		}
		for _, q := range cells {
			if q.GridPos.X < g.X+g.W && g.X < q.GridPos.X+q.GridPos.W && q.GridPos.Y < g.Y+g.H && g.Y < q.GridPos.Y+q.GridPos.H {
				t.Errorf("%q and %q overlap", q.Title, p.Title)
			}
		}
		cells = append(cells, p)
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("%q: datasource %+v, %d queries; want ${datasource} and at least one", p.Title, p.Datasource, len(p.Targets))
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			queries++
			if q.Expr == "" || q.RefID == "" || refs[q.RefID] || q.Datasource == nil || q.Datasource.UID != "${datasource}" {
				t.Errorf("%q: query %+v", p.Title, q)
			}
			refs[q.RefID] = true
			for _, m := range used.FindAllStringSubmatch(q.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("%q: $%s is no variable of the dashboard", p.Title, m[1])
				}
			}
		}
	}
	if queries == 0 {
		t.Fatal("no queries")
	}
}

// Every query is PromQL that Prometheus parses: promtool checks them as
// recording rules, Grafana's variables replaced by what they stand for.
func TestQueriesParse(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (apt-get install prometheus; .ci/run does)")
	}
	d := load(t)
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$instance", ".*", "$origin", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			e, _ := json.Marshal(vars.Replace(q.Expr)) // a JSON string is a YAML string
			fmt.Fprintf(&rules, "      - record: panel_%d_%s\n        expr: %s\n", p.ID, q.RefID, e)
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yaml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

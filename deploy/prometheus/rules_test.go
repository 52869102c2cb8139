// Package prometheus holds the Prometheus alerting rules for tailseal
// agents (rules.yaml) and promtool's unit tests of them (rules_test.yaml).
// Its Go test runs promtool on both, and holds every rule to what an
// on-call reader needs: a severity, a summary and a description.
package prometheus

import (
	"os"
	"os/exec"
	"testing"

	"sigs.k8s.io/yaml"
)

// promtool is promtool's path: Debian's prometheus package puts it there,
// and .ci/run installs that package.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	t.Fatal("promtool not found: install Debian's prometheus package (apt-get install prometheus; .ci/run does)")
	return ""
}

// promtool check rules parses every expression and template; promtool
// test rules evaluates the alerts on series that should and should not
// make them fire.
func TestAlertRulesPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// ruleFile is a Prometheus rule file, the fields the checks read; decoded
// strictly, so that a misspelt field fails.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func TestAlertRulesSayHowBadAndWhat(t *testing.T) {
	b, err := os.ReadFile("rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			n++
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: a summary and a description, please", r.Alert)
			}
		}
	}
	if n == 0 {
		t.Fatal("no rules")
	}

	// Every alert has a promtool test that makes it fire.
	b, err = os.ReadFile("rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			fired[a.Alertname] = fired[a.Alertname] || len(a.ExpAlerts) > 0
		}
	}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if !fired[r.Alert] {
				t.Errorf("%s: no test in rules_test.yaml makes it fire", r.Alert)
			}
		}
	}
}

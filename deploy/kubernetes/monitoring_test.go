package kubernetes

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "write monitoring/prometheusrule.yaml from deploy/prometheus/rules.yaml")

// The Prometheus Operator's objects, the fields this test reads: decoded
// strictly, a field they do not have fails.
type podMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

// ruleGroup is a group of a Prometheus rule file, as rules.yaml writes
// them.
type ruleGroup struct {
	Name  string `json:"name"`
	Rules []struct {
		Alert       string            `json:"alert"`
		Expr        string            `json:"expr"`
		For         string            `json:"for,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"rules"`
}

const monitoringAPI = "monitoring.coreos.com/v1"

// rulesFile is deploy/prometheus/rules.yaml, the one home of the rules.
var rulesFile = filepath.Join("..", "prometheus", "rules.yaml")

// withMonitoring is an in-memory copy of this directory in which the
// overlay lists the monitoring component after the base, as the README
// says to; paths are the same absolute paths as on disk.
func withMonitoring(t *testing.T, overlay string) (filesys.FileSystem, string) {
	t.Helper()
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	mem := filesys.MakeFsInMemory()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			err = mem.WriteFile(p, b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "overlays", overlay)
	k := filepath.Join(dir, "kustomization.yaml")
	b, err := mem.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	const base = "components:\n  - ../../base\n"
	if !strings.Contains(string(b), base) {
		t.Fatalf("%s: no %q to add the monitoring component after", k, base)
	}
	if err := mem.WriteFile(k, []byte(strings.Replace(string(b), base, base+"  - ../../monitoring\n", 1))); err != nil {
		t.Fatal(err)
	}
	return mem, dir
}

// The default overlays apply without the Prometheus Operator: no
// monitoring.coreos.com object unless the component is added.
func TestKustomizeMonitoringIsOptional(t *testing.T) {
	for name := range overlays {
		if b := build(t, filesys.MakeFsOnDisk(), filepath.Join("overlays", name)); len(b.podMonitors)+len(b.prometheusRules) > 0 {
			t.Errorf("%s: %d PodMonitors and %d PrometheusRules without the monitoring component", name, len(b.podMonitors), len(b.prometheusRules))
		}
	}
}

// With the monitoring component each overlay gets one PodMonitor that
// selects its pods, and no others, on the port the agent serves /metrics
// on, and one PrometheusRule with exactly the groups of rules.yaml.
func TestKustomizeMonitoring(t *testing.T) {
	want := readRules(t)
	for name, ov := range overlays {
		t.Run(name, func(t *testing.T) {
			fsys, dir := withMonitoring(t, name)
			b := build(t, fsys, dir)
			w := theWorkload(t, b, ov.kind)
			if len(b.podMonitors) != 1 || len(b.prometheusRules) != 1 {
				t.Fatalf("%d PodMonitors, %d PrometheusRules; want one each", len(b.podMonitors), len(b.prometheusRules))
			}
			pm, pr := b.podMonitors[0], b.prometheusRules[0]
			if pm.APIVersion != monitoringAPI || pr.APIVersion != monitoringAPI {
				t.Errorf("apiVersion %s and %s, want %s", pm.APIVersion, pr.APIVersion, monitoringAPI)
			}
			sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(w.template.Labels)) {
				t.Errorf("the PodMonitor's selector %v does not select the pods %v (%v)", pm.Spec.Selector, w.template.Labels, err)
			}
			if sel != nil && sel.Matches(labels.Set{"app": "something-else"}) {
				t.Errorf("the PodMonitor's selector %v selects pods without tailseal", pm.Spec.Selector)
			}
			ts := sidecar(t, w.template.Spec)
			if len(pm.Spec.PodMetricsEndpoints) != 1 {
				t.Fatalf("endpoints %+v", pm.Spec.PodMetricsEndpoints)
			}
			ep := pm.Spec.PodMetricsEndpoints[0]
			port := -1
			for _, p := range ts.Ports {
				if p.Name == ep.Port {
					port = int(p.ContainerPort)
				}
			}
			if port < 0 || !strings.HasSuffix(env(ts, "TAILSEAL_LISTEN"), ":"+strconv.Itoa(port)) {
				t.Errorf("the PodMonitor scrapes port %q, which is not where TAILSEAL_LISTEN %q serves", ep.Port, env(ts, "TAILSEAL_LISTEN"))
			}
			checkEndpoints(t, []string{ep.Path})
			if !reflect.DeepEqual(pr.Spec.Groups, want) {
				t.Errorf("the PrometheusRule's groups are not those of %s: run go test ./deploy/kubernetes -run TestPrometheusRuleFile -update", rulesFile)
			}
		})
	}
}

// monitoring/prometheusrule.yaml is rules.yaml's groups in a
// PrometheusRule; -update writes it.
func TestPrometheusRuleFile(t *testing.T) {
	path := filepath.Join("monitoring", "prometheusrule.yaml")
	groups := readRules(t)
	if *update {
		var pr prometheusRule
		pr.APIVersion, pr.Kind, pr.Metadata.Name, pr.Spec.Groups = monitoringAPI, "PrometheusRule", "tailseal", groups
		b, err := yaml.Marshal(pr)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.Replace(string(b), "  creationTimestamp: null\n", "", 1))
		header := "# The alerting rules of deploy/prometheus/rules.yaml, for the Prometheus\n" +
			"# Operator. Written by `go test ./deploy/kubernetes -run TestPrometheusRuleFile\n" +
			"# -update` from that file: edit it there, then run that.\n"
		if err := os.WriteFile(path, append([]byte(header), b...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(b, &pr); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if pr.Kind != "PrometheusRule" || pr.APIVersion != monitoringAPI || !reflect.DeepEqual(pr.Spec.Groups, groups) {
		t.Errorf("%s is not %s's groups in a PrometheusRule: run go test ./deploy/kubernetes -run TestPrometheusRuleFile -update", path, rulesFile)
	}
}

func readRules(t *testing.T) []ruleGroup {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []ruleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(f.Groups) == 0 {
		t.Fatalf("%s: no groups", rulesFile)
	}
	return f.Groups
}

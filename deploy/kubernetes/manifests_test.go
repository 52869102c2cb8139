// Package kubernetes holds the example manifests; its test decodes them
// strictly into the Kubernetes API types and checks what a sidecar needs.
package kubernetes

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent/httpapi"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func decode(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

func TestKustomizationResourcesExist(t *testing.T) {
	var k kustomization
	decode(t, "kustomization.yaml", &k)
	if k.Kind != "Kustomization" || len(k.Resources) == 0 {
		t.Fatalf("kustomization: %+v", k)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(r); err != nil {
			t.Errorf("resource %s: %v", r, err)
		}
	}
	var pvc corev1.PersistentVolumeClaim
	decode(t, "pvc.yaml", &pvc)
	var secret corev1.Secret
	decode(t, "secret.yaml", &secret)
	for _, k := range []string{"checkpoint-key", "pii-key"} {
		if _, ok := secret.StringData[k]; !ok {
			t.Errorf("secret has no %s", k)
		}
	}
}

// sidecar returns the tailseal container: a regular one, or (native) an
// init container that restarts always.
func sidecar(t *testing.T, spec corev1.PodSpec, native bool) corev1.Container {
	t.Helper()
	list := spec.Containers
	if native {
		list = spec.InitContainers
	}
	for _, c := range list {
		if c.Name == "tailseal" {
			if native && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				t.Error("native sidecar: the init container needs restartPolicy Always")
			}
			return c
		}
	}
	t.Fatal("no tailseal container")
	return corev1.Container{}
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func TestDeployments(t *testing.T) {
	for _, tt := range []struct {
		file   string
		native bool
	}{{"deployment.yaml", false}, {"native-sidecar.yaml", true}} {
		t.Run(tt.file, func(t *testing.T) {
			var d appsv1.Deployment
			decode(t, tt.file, &d)
			spec := d.Spec.Template.Spec
			ts := sidecar(t, spec, tt.native)
			var app corev1.Container
			for _, c := range spec.Containers {
				if c.Name == "app" {
					app = c
				}
			}

			// The log directory, not the file, is shared: rotation works.
			source := env(ts, "TAILSEAL_SOURCE")
			shared := false
			for _, am := range app.VolumeMounts {
				for _, sm := range ts.VolumeMounts {
					if am.Name == sm.Name && am.MountPath == filepath.Dir(source) && sm.MountPath == am.MountPath &&
						am.SubPath == "" && sm.SubPath == "" {
						shared = true
					}
				}
			}
			if !shared {
				t.Errorf("the app and tailseal do not share the directory of %s", source)
			}
			if !strings.HasPrefix(env(ts, "TAILSEAL_LISTEN"), "0.0.0.0:9464") {
				t.Errorf("TAILSEAL_LISTEN %q: the kubelet probes the pod IP on 9464", env(ts, "TAILSEAL_LISTEN"))
			}
			if len(ts.Ports) == 0 || ts.Ports[0].ContainerPort != 9464 || ts.Ports[0].Name != "metrics" {
				t.Errorf("ports %+v", ts.Ports)
			}
			if ts.LivenessProbe == nil || ts.ReadinessProbe == nil {
				t.Fatal("probes missing")
			}
			probes := map[string]*corev1.Probe{"/healthz": ts.LivenessProbe, "/readyz": ts.ReadinessProbe}
			for path, p := range probes {
				if p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "metrics" {
					t.Errorf("probe for %s: %+v", path, p.HTTPGet)
				}
			}
			checkEndpoints(t, []string{ts.LivenessProbe.HTTPGet.Path, ts.ReadinessProbe.HTTPGet.Path})

			sc := ts.SecurityContext
			nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
				(spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot)
			if !nonRoot || sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
				t.Errorf("security context %+v: want non-root, read-only root, no escalation, drop ALL", sc)
			}
			if ts.Resources.Requests.Memory().IsZero() || ts.Resources.Limits.Memory().IsZero() || ts.Resources.Requests.Cpu().IsZero() {
				t.Errorf("resources %+v", ts.Resources)
			}
			store := false
			for _, m := range ts.VolumeMounts {
				if m.MountPath == env(ts, "TAILSEAL_DATA_DIR") {
					for _, v := range spec.Volumes {
						store = store || v.Name == m.Name && v.PersistentVolumeClaim != nil
					}
				}
			}
			if !store {
				t.Error("the data dir is not on a PersistentVolumeClaim")
			}
		})
	}
}

// checkEndpoints asks the agent's real HTTP server for the probe paths.
func checkEndpoints(t *testing.T, paths []string) {
	t.Helper()
	srv, err := httpapi.Start("127.0.0.1:0", prometheus.NewRegistry(), func() bool { return true }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	for _, p := range paths {
		resp, err := http.Get("http://" + srv.Addr() + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d: the probe points at no real endpoint", p, resp.StatusCode)
		}
	}
}

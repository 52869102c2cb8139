// Package kubernetes holds the example manifests: base/, a kustomize
// Component with the one Secret and the tailseal native sidecar, one
// overlay per way to run it under overlays/, monitoring/, an optional
// Component with a PodMonitor and the alerting rules as a PrometheusRule
// (Prometheus Operator), and collector/, tailseal collect with its own
// Secret. Its test builds every overlay with kustomize, with and without
// monitoring, and the collector, decodes the result strictly into the
// Kubernetes API types (the operator's into local types) and checks what
// a sidecar and a collector need.
package kubernetes

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tailseal/tailseal/agent/httpapi"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// storeKind is where an overlay keeps the data dir.
type storeKind int

const (
	onClaim     storeKind = iota // a PersistentVolumeClaim of the overlay
	perPodClaim                  // a claim per pod, from volumeClaimTemplates
	onEmptyDir                   // an emptyDir, gone with the pod
)

// overlays are the ways to run tailseal that the README names. An overlay
// directory without an entry here fails the test.
var overlays = map[string]struct {
	kind      string
	store     storeKind
	podOrigin bool // TAILSEAL_ORIGIN is the pod's name, not a fixed value
	nats      bool // the JetStream sink is wired, from the Secret: the store alone does not outlive the pod
}{
	"sidecar":     {kind: "Deployment", store: onClaim},
	"statefulset": {kind: "StatefulSet", store: perPodClaim, podOrigin: true},
	"emptydir":    {kind: "Deployment", store: onEmptyDir, podOrigin: true, nats: true},
}

// keyEnvs are the key material every pod reads from the one Secret, each
// as NAME (a secretKeyRef) or NAME_FILE (a file of the Secret's volume).
var keyEnvs = []string{"TAILSEAL_VERIFY_RECIPIENT", "TAILSEAL_CHECKPOINT_KEY", "TAILSEAL_PII_KEY"}

// natsEnvs are the JetStream settings that come from a Secret, the same
// way: where the servers are (TAILSEAL_NATS_URL has no _FILE form, so a
// secretKeyRef) and the token.
var natsEnvs = []string{"TAILSEAL_NATS_URL", "TAILSEAL_NATS_TOKEN"}

func TestOverlayList(t *testing.T) {
	entries, err := os.ReadDir("overlays")
	if err != nil {
		t.Fatal(err)
	}
	var dirs, want []string
	for _, e := range entries {
		dirs = append(dirs, e.Name())
	}
	for name := range overlays {
		want = append(want, name)
	}
	slices.Sort(want)
	if !slices.Equal(dirs, want) {
		t.Errorf("overlays/ holds %v; the test checks %v", dirs, want)
	}
}

// TestEveryManifestIsUsed: no YAML file lies around that neither an
// overlay (alone, or with the optional monitoring component) nor the
// collector builds from, such as a flat manifest left over from before the
// overlays.
func TestEveryManifestIsUsed(t *testing.T) {
	fsys := readRecorder{filesys.MakeFsOnDisk(), map[string]bool{}}
	build(t, fsys, collectorDir)
	for name := range overlays {
		build(t, fsys, filepath.Join("overlays", name))
		mem, dir := withMonitoring(t, name)
		build(t, readRecorder{mem, fsys.read}, dir)
	}
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") {
			return err
		}
		abs, err := filepath.Abs(p)
		if err == nil && !fsys.read[abs] {
			t.Errorf("%s: neither an overlay nor the collector uses it", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOverlays(t *testing.T) {
	for name, ov := range overlays {
		t.Run(name, func(t *testing.T) {
			b := build(t, filesys.MakeFsOnDisk(), filepath.Join("overlays", name))
			w := theWorkload(t, b, ov.kind)
			spec := w.template.Spec
			ts := sidecar(t, spec)
			app := container(spec.Containers, "app")
			if app == nil {
				t.Fatal("no app container")
			}

			if sel, err := metav1.LabelSelectorAsSelector(w.selector); err != nil || sel.Empty() ||
				!sel.Matches(labels.Set(w.template.Labels)) {
				t.Errorf("selector %v does not select the pod labels %v (%v)", w.selector, w.template.Labels, err)
			}

			// The log directory, not the file, is shared: rotation works.
			source := env(ts, "TAILSEAL_SOURCE")
			shared := false
			for _, am := range app.VolumeMounts {
				for _, sm := range ts.VolumeMounts {
					if am.Name == sm.Name && am.MountPath == path.Dir(source) && sm.MountPath == am.MountPath &&
						am.SubPath == "" && sm.SubPath == "" {
						shared = true
					}
				}
			}
			if !shared {
				t.Errorf("the app and tailseal do not share the directory of %s", source)
			}
			checkHTTP(t, ts)
			checkSecurity(t, ts, spec)
			checkStore(t, b, w, ts, ov.store)
			checkOrigin(t, ts, ov.podOrigin)
			checkKeys(t, b, ts, spec)
			if ov.nats {
				// The store dies with the pod: the records live on in
				// JetStream, whose servers and token are the Secret's.
				fromSecret(t, b.secrets[0], ts, spec, natsEnvs)
			}

			// The app stops first (a native sidecar outlives the main
			// containers); the agent then needs its drain timeout inside
			// what is left of the grace period.
			drain, err := time.ParseDuration(env(ts, "TAILSEAL_DRAIN_TIMEOUT"))
			if err != nil {
				t.Errorf("TAILSEAL_DRAIN_TIMEOUT: %v; set it, so that the grace period can be checked against it", err)
			}
			if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= drain {
				t.Errorf("terminationGracePeriodSeconds %s: not above TAILSEAL_DRAIN_TIMEOUT %v", grace(g), drain)
			}

			switch {
			case ov.store == onClaim:
				// One claim, one store, one writer at a time.
				if w.replicas != 1 || w.deployment == nil || w.deployment.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
					t.Errorf("%s with %d replicas: one store on one claim wants a Deployment of 1 replica with strategy Recreate",
						w.kind, w.replicas)
				}
			case w.replicas < 2:
				t.Errorf("%d replicas: the overlay is the example of several pods", w.replicas)
			}
			if w.sts != nil {
				checkHeadless(t, b, w)
			}
		})
	}
}

// TestStatefulSetPodsGetDistinctOrigins renders the pods the StatefulSet
// controller makes (named <name>-<ordinal>, claims <template>-<pod>) and
// resolves each one's tailseal environment from the manifest as the kubelet
// would: every pod gets its own origin and its own store.
func TestStatefulSetPodsGetDistinctOrigins(t *testing.T) {
	b := build(t, filesys.MakeFsOnDisk(), filepath.Join("overlays", "statefulset"))
	w := theWorkload(t, b, "StatefulSet")
	if len(b.secrets) != 1 {
		t.Fatalf("%d Secrets", len(b.secrets))
	}
	spec := w.template.Spec
	ts := sidecar(t, spec)
	store := mountAt(ts, env(ts, "TAILSEAL_DATA_DIR"))
	if store == nil {
		t.Fatal("no mount at the data dir")
	}
	start := int32(0)
	if o := w.sts.Spec.Ordinals; o != nil {
		start = o.Start
	}
	origins, claims := map[string]string{}, map[string]string{}
	for i := start; i < start+w.replicas; i++ {
		pod := metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", w.name, i), Namespace: "default", Labels: w.template.Labels}
		vars, err := podEnv(*ts, spec, pod, b.secrets[0], t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		origin := vars["TAILSEAL_ORIGIN"]
		if origin == "" {
			t.Fatalf("pod %s: no origin", pod.Name)
		}
		if other, dup := origins[origin]; dup {
			t.Errorf("pods %s and %s get the same origin %q", other, pod.Name, origin)
		}
		origins[origin] = pod.Name
		claim := store.Name + "-" + pod.Name
		if other, dup := claims[claim]; dup {
			t.Errorf("pods %s and %s share the claim %s", other, pod.Name, claim)
		}
		claims[claim] = pod.Name
	}
	if len(origins) < 2 || len(origins) != int(w.replicas) {
		t.Errorf("%d replicas, %d distinct origins %v", w.replicas, len(origins), origins)
	}
}

// grace prints a terminationGracePeriodSeconds.
func grace(g *int64) string {
	if g == nil {
		return "unset"
	}
	return fmt.Sprint(*g)
}

func theWorkload(t *testing.T, b built, kind string) workload {
	t.Helper()
	if len(b.workloads) != 1 || b.workloads[0].kind != kind {
		t.Fatalf("want one %s, got %+v", kind, b.workloads)
	}
	return b.workloads[0]
}

// sidecar returns the tailseal container, which must be a native sidecar:
// an init container that restarts always, so it starts before the app and
// stops after it.
func sidecar(t *testing.T, spec corev1.PodSpec) *corev1.Container {
	t.Helper()
	if container(spec.Containers, "tailseal") != nil {
		t.Error("tailseal is a main container: it would stop together with the app, not after it")
	}
	c := container(spec.InitContainers, "tailseal")
	if c == nil {
		t.Fatal("no tailseal init container")
	}
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("native sidecar: the init container needs restartPolicy Always")
	}
	return c
}

func container(list []corev1.Container, name string) *corev1.Container {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func envVar(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func env(c *corev1.Container, name string) string {
	if e := envVar(c, name); e != nil {
		return e.Value
	}
	return ""
}

func mountAt(c *corev1.Container, dir string) *corev1.VolumeMount {
	for i, m := range c.VolumeMounts {
		if dir != "" && path.Clean(m.MountPath) == path.Clean(dir) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// checkHTTP: the agent listens where the kubelet probes, and the probes
// ask for endpoints that the agent's real HTTP server has.
func checkHTTP(t *testing.T, ts *corev1.Container) {
	t.Helper()
	if !strings.HasPrefix(env(ts, "TAILSEAL_LISTEN"), "0.0.0.0:9464") {
		t.Errorf("TAILSEAL_LISTEN %q: the kubelet probes the pod IP on 9464", env(ts, "TAILSEAL_LISTEN"))
	}
	if len(ts.Ports) == 0 || ts.Ports[0].ContainerPort != 9464 || ts.Ports[0].Name != "metrics" {
		t.Errorf("ports %+v", ts.Ports)
	}
	if ts.LivenessProbe == nil || ts.ReadinessProbe == nil || ts.StartupProbe == nil {
		t.Fatal("probes missing")
	}
	for _, p := range []struct {
		path  string
		probe *corev1.Probe
	}{{"/healthz", ts.LivenessProbe}, {"/readyz", ts.ReadinessProbe}, {"/readyz", ts.StartupProbe}} {
		if h := p.probe.HTTPGet; h == nil || h.Path != p.path || h.Port.String() != "metrics" {
			t.Errorf("probe for %s: %+v", p.path, h)
		}
	}
	checkEndpoints(t, []string{ts.LivenessProbe.HTTPGet.Path, ts.ReadinessProbe.HTTPGet.Path, ts.StartupProbe.HTTPGet.Path})
}

func checkSecurity(t *testing.T, ts *corev1.Container, spec corev1.PodSpec) {
	t.Helper()
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
}

// checkStore: the data dir is mounted writable from where the overlay
// keeps stores.
func checkStore(t *testing.T, b built, w workload, ts *corev1.Container, kind storeKind) {
	t.Helper()
	m := mountAt(ts, env(ts, "TAILSEAL_DATA_DIR"))
	if m == nil || m.ReadOnly || m.SubPath != "" {
		t.Fatalf("mount of the data dir %q: %+v", env(ts, "TAILSEAL_DATA_DIR"), m)
	}
	v := volume(w.template.Spec, m.Name)
	switch kind {
	case onClaim:
		if v == nil || v.PersistentVolumeClaim == nil {
			t.Fatalf("the data dir is on %+v, not a PersistentVolumeClaim", v)
		}
		i := slices.IndexFunc(b.pvcs, func(p corev1.PersistentVolumeClaim) bool { return p.Name == v.PersistentVolumeClaim.ClaimName })
		if i < 0 {
			t.Fatalf("the claim %s is not in the overlay", v.PersistentVolumeClaim.ClaimName)
		}
		checkRWO(t, b.pvcs[i])
	case perPodClaim:
		if v != nil {
			t.Errorf("a pod volume %s shadows the claim template of the same name", m.Name)
		}
		i := slices.IndexFunc(w.sts.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == m.Name })
		if i < 0 {
			t.Fatalf("no volumeClaimTemplate %s for the data dir", m.Name)
		}
		checkRWO(t, w.sts.Spec.VolumeClaimTemplates[i])
	case onEmptyDir:
		if v == nil || v.EmptyDir == nil {
			t.Errorf("the data dir is on %+v, not an emptyDir", v)
		}
	}
}

func checkRWO(t *testing.T, p corev1.PersistentVolumeClaim) {
	t.Helper()
	if !slices.Equal(p.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) ||
		p.Spec.Resources.Requests.Storage().IsZero() {
		t.Errorf("claim %s: %v, %v; want ReadWriteOnce and a size", p.Name, p.Spec.AccessModes, p.Spec.Resources.Requests)
	}
}

// checkOrigin: with one pod on one claim the origin is a fixed name (a
// Deployment's pod name changes on every restart, and a store refuses
// another origin than its genesis one); with several pods it is each pod's
// name.
func checkOrigin(t *testing.T, ts *corev1.Container, fromPod bool) {
	t.Helper()
	o := envVar(ts, "TAILSEAL_ORIGIN")
	switch {
	case o == nil:
		t.Error("TAILSEAL_ORIGIN is not set")
	case fromPod && (o.Value != "" || o.ValueFrom == nil || o.ValueFrom.FieldRef == nil || o.ValueFrom.FieldRef.FieldPath != "metadata.name"):
		t.Errorf("TAILSEAL_ORIGIN %+v: want the pod's name (fieldRef metadata.name)", o)
	case !fromPod && (o.ValueFrom != nil || o.Value == ""):
		t.Errorf("TAILSEAL_ORIGIN %+v: want a fixed value", o)
	}
}

// checkKeys: every key variable comes from the one Secret of the overlay,
// and none is written into the manifest.
func checkKeys(t *testing.T, b built, ts *corev1.Container, spec corev1.PodSpec) {
	t.Helper()
	if len(b.secrets) != 1 {
		t.Fatalf("%d Secrets: want the one all pods share", len(b.secrets))
	}
	fromSecret(t, b.secrets[0], ts, spec, keyEnvs)
}

// fromSecret: each of names is set in container ts, as NAME from a key of
// the Secret s or as NAME_FILE, a file of s's volume, and s has that key.
func fromSecret(t *testing.T, s corev1.Secret, ts *corev1.Container, spec corev1.PodSpec, names []string) {
	t.Helper()
	for _, name := range names {
		plain, file := envVar(ts, name), envVar(ts, name+"_FILE")
		var key string
		switch {
		case plain != nil && file != nil:
			t.Errorf("both %s and %s_FILE are set", name, name)
			continue
		case plain != nil:
			if plain.ValueFrom == nil || plain.ValueFrom.SecretKeyRef == nil || plain.ValueFrom.SecretKeyRef.Name != s.Name {
				t.Errorf("%s: %+v, not from the Secret %s", name, plain, s.Name)
				continue
			}
			key = plain.ValueFrom.SecretKeyRef.Key
		case file != nil:
			dir, base := path.Split(file.Value)
			m := mountAt(ts, dir)
			var v *corev1.Volume
			if m != nil && m.SubPath == "" {
				v = volume(spec, m.Name)
			}
			if file.ValueFrom != nil || v == nil || v.Secret == nil || v.Secret.SecretName != s.Name {
				t.Errorf("%s_FILE %q: not a file of the Secret %s's volume", name, file.Value, s.Name)
				continue
			}
			key = base
			if len(v.Secret.Items) > 0 {
				i := slices.IndexFunc(v.Secret.Items, func(k corev1.KeyToPath) bool { return k.Path == base })
				if i < 0 {
					t.Errorf("%s_FILE %q: the volume projects no such file", name, file.Value)
					continue
				}
				key = v.Secret.Items[i].Key
			}
		default:
			t.Errorf("%s is not set", name)
			continue
		}
		if _, ok := secretValue(s, key); !ok {
			t.Errorf("%s: the Secret %s has no key %s", name, s.Name, key)
		}
	}
}

// checkHeadless: the StatefulSet's serviceName is a headless Service of
// the overlay that selects its pods.
func checkHeadless(t *testing.T, b built, w workload) {
	t.Helper()
	i := slices.IndexFunc(b.services, func(s corev1.Service) bool { return s.Name == w.sts.Spec.ServiceName })
	if i < 0 {
		t.Fatalf("serviceName %q: no such Service in the overlay", w.sts.Spec.ServiceName)
	}
	s := b.services[i]
	if s.Spec.ClusterIP != corev1.ClusterIPNone || len(s.Spec.Selector) == 0 ||
		!labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
		t.Errorf("Service %s: clusterIP %q, selector %v; want headless, selecting %v", s.Name, s.Spec.ClusterIP, s.Spec.Selector, w.template.Labels)
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

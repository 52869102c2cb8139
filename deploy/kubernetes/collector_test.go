package kubernetes

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tailseal/tailseal/agent/config"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// collectorDir is tailseal collect's kustomization: not an overlay of the
// base, which is the agents' sidecar and their keys.
const collectorDir = "collector"

// podIndexLabel is the label the StatefulSet controller puts on each pod
// (Kubernetes 1.28+): its ordinal.
const podIndexLabel = "apps.kubernetes.io/pod-index"

// agentKeys are the Secret keys the agents sign and pseudonymize with,
// which a collector has no use for.
var agentKeys = []string{"checkpoint-key", "pii-key"}

// TestCollectorManifest: the collector runs `tailseal collect`, not the agent,
// as the only container; its data dir is on a claim per pod; its probes
// are the real endpoints, with /readyz gating readiness only; the
// security context is the sidecar's; NATS comes from its own Secret,
// which holds no agent key; and its partition of the fleet is its pod's.
func TestCollectorManifest(t *testing.T) {
	b := build(t, filesys.MakeFsOnDisk(), collectorDir)
	w := theWorkload(t, b, "StatefulSet")
	spec := w.template.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("%d containers, %d init containers: want the collector alone", len(spec.Containers), len(spec.InitContainers))
	}
	c := &spec.Containers[0]
	if !slices.Equal(c.Args, []string{"collect"}) || len(c.Command) != 0 {
		t.Errorf("command %q, args %q: want the image's tailseal with args [collect]", c.Command, c.Args)
	}
	if envVar(c, "TAILSEAL_SOURCE") != nil {
		t.Error("TAILSEAL_SOURCE is set: the collector tails no file")
	}

	checkStore(t, b, w, c, perPodClaim)
	checkHeadless(t, b, w)
	checkCollectorHTTP(t, c)
	checkSecurity(t, c, spec)
	if fsg := spec.SecurityContext; fsg == nil || fsg.FSGroup == nil || c.SecurityContext.RunAsUser == nil || *fsg.FSGroup != *c.SecurityContext.RunAsUser {
		t.Errorf("pod security context %+v: want fsGroup = the container's UID, so that the claim is writable", fsg)
	}

	if len(b.secrets) != 1 {
		t.Fatalf("%d Secrets: want the collector's own", len(b.secrets))
	}
	s := b.secrets[0]
	if s.Name == "tailseal" {
		t.Error("the collector reads the agents' Secret: give it its own, without their keys, for its own NATS user")
	}
	for _, k := range agentKeys {
		if _, ok := secretValue(s, k); ok {
			t.Errorf("the collector's Secret %s holds the agents' %s", s.Name, k)
		}
	}
	fromSecret(t, s, c, spec, natsEnvs)
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName != s.Name {
			t.Errorf("volume %s mounts the Secret %s", v.Name, v.Secret.SecretName)
		}
	}

	if p := env(c, "TAILSEAL_COLLECT_PARTITIONS"); p != strconv.Itoa(int(w.replicas)) {
		t.Errorf("TAILSEAL_COLLECT_PARTITIONS %q with %d replicas: each partition wants its collector, and no collector is without one", p, w.replicas)
	}
	part := envVar(c, "TAILSEAL_COLLECT_PARTITION")
	if part == nil || part.ValueFrom == nil || part.ValueFrom.FieldRef == nil ||
		part.ValueFrom.FieldRef.FieldPath != "metadata.labels['"+podIndexLabel+"']" {
		t.Errorf("TAILSEAL_COLLECT_PARTITION %+v: want the pod's index (fieldRef metadata.labels['%s'])", part, podIndexLabel)
	}
	if w.sts.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("podManagementPolicy %q: the partitions are independent, and an unready collector (no stream yet) must not hold the next one back",
			w.sts.Spec.PodManagementPolicy)
	}
}

// checkCollectorHTTP: the collector listens where the kubelet probes; the
// liveness probe asks /healthz and readiness /readyz, endpoints the real
// HTTP server has. No probe that restarts the container asks /readyz:
// the collector is not ready until the stream exists, which may be long
// before any agent publishes.
func checkCollectorHTTP(t *testing.T, c *corev1.Container) {
	t.Helper()
	if env(c, "TAILSEAL_LISTEN") != "0.0.0.0:9464" {
		t.Errorf("TAILSEAL_LISTEN %q: the kubelet probes the pod IP on 9464", env(c, "TAILSEAL_LISTEN"))
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 9464 || c.Ports[0].Name != "metrics" {
		t.Errorf("ports %+v", c.Ports)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Fatal("probes missing")
	}
	for _, p := range []struct {
		path  string
		probe *corev1.Probe
	}{{"/healthz", c.LivenessProbe}, {"/readyz", c.ReadinessProbe}} {
		if h := p.probe.HTTPGet; h == nil || h.Path != p.path || h.Port.String() != "metrics" {
			t.Errorf("probe for %s: %+v", p.path, h)
		}
	}
	if p := c.StartupProbe; p != nil && (p.HTTPGet == nil || p.HTTPGet.Path != "/healthz") {
		t.Errorf("startup probe %+v: a collector waiting for the stream would be restarted", p.HTTPGet)
	}
	checkEndpoints(t, []string{c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path})
}

// TestCollectorManifestPartitions scales the collector to n replicas with n
// partitions, as statefulset.yaml says to, and resolves each pod's
// environment as the kubelet would, with the labels the StatefulSet
// controller gives its pods: pod k gets partition k of n, its own claim
// and its own durable consumer, and config takes each one.
func TestCollectorManifestPartitions(t *testing.T) {
	b := build(t, filesys.MakeFsOnDisk(), collectorDir)
	w := theWorkload(t, b, "StatefulSet")
	s := filledCollectorSecret(t, b, "nats://nats.nats.svc:4222", "")
	const n = 3
	spec := w.template.Spec.DeepCopy()
	c := &spec.Containers[0]
	envVar(c, "TAILSEAL_COLLECT_PARTITIONS").Value = strconv.Itoa(n)
	store := mountAt(c, env(c, "TAILSEAL_DATA_DIR"))
	if store == nil {
		t.Fatal("no mount at the data dir")
	}
	partitions, claims := map[int]string{}, map[string]string{}
	for i := range n {
		pod := collectorPod(w.name, w.template.Labels, i)
		cfg, err := loadConfig(t, *c, *spec, pod, s)
		if err == nil {
			err = cfg.CheckCollect()
		}
		if err != nil {
			t.Fatalf("pod %s: %v", pod.Name, err)
		}
		if cfg.CollectPartitions != n {
			t.Errorf("pod %s: partition of %d, want of %d", pod.Name, cfg.CollectPartitions, n)
		}
		if other, dup := partitions[cfg.CollectPartition]; dup {
			t.Errorf("pods %s and %s both keep partition %d", other, pod.Name, cfg.CollectPartition)
		}
		partitions[cfg.CollectPartition] = pod.Name
		claim := store.Name + "-" + pod.Name
		if other, dup := claims[claim]; dup {
			t.Errorf("pods %s and %s share the claim %s", other, pod.Name, claim)
		}
		claims[claim] = pod.Name
	}
	for k := range n {
		if _, ok := partitions[k]; !ok {
			t.Errorf("no collector keeps partition %d of %d: its origins would not be collected (%v)", k, n, partitions)
		}
	}
}

// TestCollectorManifestConfig loads the collector's environment, as
// the kubelet gives it, with the configuration code tailseal collect
// runs: the committed placeholder is refused, and an empty nats-url too
// (collect needs servers); with the servers in, and a token or none, it
// starts as partition 0 of 1 on the stream the agents fill.
func TestCollectorManifestConfig(t *testing.T) {
	b := build(t, filesys.MakeFsOnDisk(), collectorDir)
	w := theWorkload(t, b, "StatefulSet")
	spec := w.template.Spec
	pod := collectorPod(w.name, w.template.Labels, 0)
	load := func(s corev1.Secret) (*config.Config, error) {
		cfg, err := loadConfig(t, spec.Containers[0], spec, pod, s)
		if err == nil {
			err = cfg.CheckCollect()
		}
		return cfg, err
	}
	if _, err := load(b.secrets[0]); err == nil || !strings.Contains(err.Error(), "TAILSEAL_NATS_URL") {
		t.Errorf("the placeholder nats-url of collector/secret.yaml: %v; want it refused", err)
	}
	if _, err := load(filledCollectorSecret(t, b, "", "")); err == nil || !strings.Contains(err.Error(), "TAILSEAL_NATS_URL") {
		t.Errorf("an empty nats-url: %v; want it refused", err)
	}
	for _, token := range []string{"", "s3cret-token"} {
		cfg, err := load(filledCollectorSecret(t, b, "nats://nats-0.nats:4222,nats://nats-1.nats:4222", token))
		if err != nil {
			t.Fatalf("with servers and token %q: %v", token, err)
		}
		if !slices.Equal(cfg.NATSServers(), []string{"nats://nats-0.nats:4222", "nats://nats-1.nats:4222"}) || cfg.NATSToken != token ||
			cfg.NATSStream != "TAILSEAL" || cfg.CollectPartition != 0 || cfg.CollectPartitions != 1 || cfg.DataDir != "/var/lib/tailseal" {
			t.Errorf("servers %v, token set %v, stream %s, partition %d of %d, data dir %s", cfg.NATSServers(), cfg.NATSToken != "",
				cfg.NATSStream, cfg.CollectPartition, cfg.CollectPartitions, cfg.DataDir)
		}
	}
}

// collectorPod is pod i of the collector's StatefulSet, labelled as the
// controller labels it.
func collectorPod(name string, labels map[string]string, i int) metav1.ObjectMeta {
	l := map[string]string{podIndexLabel: strconv.Itoa(i), "statefulset.kubernetes.io/pod-name": fmt.Sprintf("%s-%d", name, i)}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Namespace: "default", Labels: l}
}

// filledCollectorSecret is the collector's Secret with url and token in
// place of its placeholders.
func filledCollectorSecret(t *testing.T, b built, url, token string) corev1.Secret {
	t.Helper()
	if len(b.secrets) != 1 {
		t.Fatalf("%d Secrets", len(b.secrets))
	}
	s := b.secrets[0].DeepCopy()
	s.StringData["nats-url"], s.StringData["nats-token"] = url, token
	return *s
}

package kubernetes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// built is what one overlay gives kubectl apply -k, decoded.
type built struct {
	workloads []workload
	secrets   []corev1.Secret
	pvcs      []corev1.PersistentVolumeClaim
	services  []corev1.Service
	// With the monitoring component (monitoring_test.go).
	podMonitors     []podMonitor
	prometheusRules []prometheusRule
}

// workload is the part of a Deployment or a StatefulSet that the checks
// read.
type workload struct {
	kind, name string
	replicas   int32
	selector   *metav1.LabelSelector
	template   corev1.PodTemplateSpec
	deployment *appsv1.Deployment  // when kind is Deployment
	sts        *appsv1.StatefulSet // when kind is StatefulSet
}

// readRecorder is the disk, noting every file a build reads, so that a
// manifest that no overlay uses is found.
type readRecorder struct {
	filesys.FileSystem
	read map[string]bool
}

func (r readRecorder) ReadFile(path string) ([]byte, error) {
	if abs, err := filepath.Abs(path); err == nil {
		r.read[abs] = true
	}
	return r.FileSystem.ReadFile(path)
}

// build runs kustomize on dir as kubectl apply -k would and decodes every
// resulting object strictly into its Kubernetes API type: a field the type
// does not have (a typo, a wrong indentation) fails, although kustomize
// and a lenient apply would pass it on.
func build(t *testing.T, fsys filesys.FileSystem, dir string) built {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var b built
	for _, r := range m.Resources() {
		data, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s %s/%s", dir, r.GetKind(), r.GetName())
		strict := func(into any) {
			if err := yaml.UnmarshalStrict(data, into); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
		switch r.GetKind() {
		case "Deployment":
			d := new(appsv1.Deployment)
			strict(d)
			b.workloads = append(b.workloads, workload{kind: d.Kind, name: d.Name, replicas: replicas(d.Spec.Replicas),
				selector: d.Spec.Selector, template: d.Spec.Template, deployment: d})
		case "StatefulSet":
			s := new(appsv1.StatefulSet)
			strict(s)
			b.workloads = append(b.workloads, workload{kind: s.Kind, name: s.Name, replicas: replicas(s.Spec.Replicas),
				selector: s.Spec.Selector, template: s.Spec.Template, sts: s})
		case "Secret":
			var s corev1.Secret
			strict(&s)
			b.secrets = append(b.secrets, s)
		case "PersistentVolumeClaim":
			var p corev1.PersistentVolumeClaim
			strict(&p)
			b.pvcs = append(b.pvcs, p)
		case "Service":
			var s corev1.Service
			strict(&s)
			b.services = append(b.services, s)
		case "PodMonitor":
			var p podMonitor
			strict(&p)
			b.podMonitors = append(b.podMonitors, p)
		case "PrometheusRule":
			var p prometheusRule
			strict(&p)
			b.prometheusRules = append(b.prometheusRules, p)
		default:
			t.Errorf("%s: a kind this test does not decode; add it", id)
		}
	}
	return b
}

// replicas is what the API server defaults an unset replica count to.
func replicas(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}

// secretValue is key's value in s, from data or stringData.
func secretValue(s corev1.Secret, key string) (string, bool) {
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

// podEnv is the environment the kubelet gives container c of a pod with
// meta: values, the downward API (metadata.name, metadata.namespace, a
// label) and keys of the Secret s. Files of volumes from s are written below dir, and
// variables pointing into their mounts point there instead.
func podEnv(c corev1.Container, spec corev1.PodSpec, meta metav1.ObjectMeta, s corev1.Secret, dir string) (map[string]string, error) {
	mounts := map[string]string{} // mount path in the pod → directory here
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.Secret == nil || v.Secret.SecretName != s.Name {
				continue
			}
			local := filepath.Join(dir, m.Name)
			if err := os.MkdirAll(local, 0o700); err != nil {
				return nil, err
			}
			for _, k := range secretKeys(s) {
				val, _ := secretValue(s, k)
				if err := os.WriteFile(filepath.Join(local, k), []byte(val), 0o600); err != nil {
					return nil, err
				}
			}
			mounts[m.MountPath] = local
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		v, err := resolve(e, meta, s)
		if err != nil {
			return nil, err
		}
		for pod, local := range mounts {
			if rest, ok := strings.CutPrefix(v, pod+"/"); ok {
				v = filepath.Join(local, rest)
			}
		}
		env[e.Name] = v
	}
	return env, nil
}

// resolve is the value of one env entry in a pod with meta.
func resolve(e corev1.EnvVar, meta metav1.ObjectMeta, s corev1.Secret) (string, error) {
	switch f := e.ValueFrom; {
	case f == nil:
		return e.Value, nil
	case e.Value != "":
		return "", fmt.Errorf("%s has both value and valueFrom", e.Name)
	case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.name":
		return meta.Name, nil
	case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.namespace":
		return meta.Namespace, nil
	case f.FieldRef != nil && strings.HasPrefix(f.FieldRef.FieldPath, "metadata.labels['") && strings.HasSuffix(f.FieldRef.FieldPath, "']"):
		key := strings.TrimSuffix(strings.TrimPrefix(f.FieldRef.FieldPath, "metadata.labels['"), "']")
		v, ok := meta.Labels[key]
		if !ok {
			return "", fmt.Errorf("%s: the pod has no label %s", e.Name, key)
		}
		return v, nil
	case f.SecretKeyRef != nil && f.SecretKeyRef.Name == s.Name:
		v, ok := secretValue(s, f.SecretKeyRef.Key)
		if !ok {
			return "", fmt.Errorf("%s: the Secret %s has no key %s", e.Name, s.Name, f.SecretKeyRef.Key)
		}
		return v, nil
	}
	return "", fmt.Errorf("%s: a valueFrom this test does not resolve: %+v", e.Name, e.ValueFrom)
}

func secretKeys(s corev1.Secret) []string {
	var keys []string
	for k := range s.StringData {
		keys = append(keys, k)
	}
	for k := range s.Data {
		if _, dup := s.StringData[k]; !dup {
			keys = append(keys, k)
		}
	}
	return keys
}

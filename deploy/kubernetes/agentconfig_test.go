package kubernetes

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/tailseal/tailseal/agent/config"
	"golang.org/x/mod/sumdb/note"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// TestAgentConfigFromTheSecret resolves each overlay's tailseal
// environment as the kubelet would (values, the pod's name, the Secret's
// keys and files) and loads it with the agent's own configuration code:
// the Secret as committed holds placeholders the agent refuses, so that
// nobody runs on them, and once they are replaced with keys made as the
// README says, the agent takes the pod's environment.
func TestAgentConfigFromTheSecret(t *testing.T) {
	for name := range overlays {
		t.Run(name, func(t *testing.T) {
			b := build(t, filesys.MakeFsOnDisk(), filepath.Join("overlays", name))
			if len(b.workloads) != 1 || len(b.secrets) != 1 {
				t.Fatalf("%d workloads, %d Secrets", len(b.workloads), len(b.secrets))
			}
			w, s := b.workloads[0], b.secrets[0]
			pod := metav1.ObjectMeta{Name: w.name + "-0", Namespace: "default", Labels: w.template.Labels}

			err := loadAgentConfig(t, w.template.Spec, pod, s)
			if err == nil {
				t.Fatal("the agent starts on the placeholder keys of secret.yaml")
			}
			for _, v := range []string{"TAILSEAL_VERIFY_RECIPIENT", "TAILSEAL_CHECKPOINT_KEY", "TAILSEAL_PII_KEY"} {
				if !strings.Contains(err.Error(), v) {
					t.Errorf("the placeholder for %s passes: %v", v, err)
				}
			}

			filled := s.DeepCopy()
			filled.StringData["verify-recipient"], filled.StringData["checkpoint-key"], filled.StringData["pii-key"] = newKeys(t)
			if err := loadAgentConfig(t, w.template.Spec, pod, *filled); err != nil {
				t.Errorf("with real keys in the Secret: %v", err)
			}
		})
	}
}

// newKeys makes what the README's recipe puts into the Secret: the
// auditor's age recipient, a checkpoint signer key, a pii key.
func newKeys(t *testing.T) (recipient, checkpointKey, piiKey string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, "tailseal")
	if err != nil {
		t.Fatal(err)
	}
	k := make([]byte, 32)
	rand.Read(k)
	return id.Recipient().String(), skey, hex.EncodeToString(k)
}

// loadAgentConfig runs config.Load in the environment the tailseal
// container of spec gets in pod, with s as the Secret; nothing else of
// the test process's TAILSEAL_ variables is seen.
func loadAgentConfig(t *testing.T, spec corev1.PodSpec, pod metav1.ObjectMeta, s corev1.Secret) error {
	t.Helper()
	ts := sidecar(t, spec)
	vars, err := podEnv(*ts, spec, pod, s, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.Prefix+"_") {
			t.Setenv(k, "") // restored when the test ends
			os.Unsetenv(k)
		}
	}
	for k, v := range vars {
		if strings.HasPrefix(k, config.Prefix+"_") {
			t.Setenv(k, v)
		}
	}
	_, err = config.Load()
	return err
}
